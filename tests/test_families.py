"""Each look-alike model family end to end on CPU, through the real tools:

    lf-wrap model tiny --family F → data register (the demo dataset) → train (the demo project
    file with the family's LLaMA-Factory template) → export → serve --detach (vLLM CPU) → check
    (golden answers, finish_reason "stop", reasoning apart from the answer)

What each family exercises, and what a user of the real model has to do (the same here):
- qwen2.5: the demo itself.
- qwen3: a thinking template: the answer comes behind an empty `<think>` block that vLLM's
  qwen3 reasoning parser takes out. LLaMA-Factory's default multi-turn encoding keeps empty
  think blocks in earlier turns where Qwen3's template drops them; the demo data is
  single-turn, so the template check shows that difference without counting it (a
  multi-turn dataset would be refused, with `mask_history: true` as the proven fix).
  qwen3-nothink: the same model trained with `enable_thinking: false` (the empty think block
  is part of the prompt), served with `--default-chat-template-kwargs '{"enable_thinking":
  false}'` — and the template check compares against exactly that serving.
- deepseek-r1-distill: the real tokenizer_config.json's `LlamaTokenizerFast` makes `train`
  refuse the model (transformers 5 drops the spaces); the test applies the printed fix. R1's
  generation prompt ends with `<think>\n`, which cuts the "\n\n" token training puts after
  `<think>`: the same text, other token ids, so `train` refuses it (measured on this model:
  39/56 golden answers served with the model's template, 54/56 with the training one) and
  the test applies the printed fix, `chat_template: training`.
- llama3: a list of EOS ids, and a "Cutting Knowledge / Today Date: <serving day>" system
  block that the model's template always writes and LLaMA-Factory's `llama3` template never
  trains (0/56 golden answers served that way). A default_system cannot match a date that
  changes daily, so the refusal's fix is `chat_template: training`, applied here.

num_train_epochs is lowered from the demo's value for time; every family still passes the
golden check (52-56 of 56 answers measured at 40 epochs).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lf_wrap.util.paths import demo_project

from .conftest import DATASETS
from .helpers import Served, lfw

pytestmark = pytest.mark.slow

EPOCHS = 40


@dataclass(frozen=True)
class Case:
    family: str  # lf-wrap model tiny --family
    template: str  # the LLaMA-Factory template a user trains that family with
    parser: str | None = None  # the vLLM reasoning parser lf-wrap serves it with
    sets: tuple[str, ...] = ()  # training settings of this case
    refusal: str = ""  # without `sets`, `train` refuses the model's template and prints this fix


# The demo data is single-turn without system prompts: the template check counts only what
# it trains (lf_wrap/data/shape.py), so thinking templates keeping empty think blocks in
# earlier turns (Qwen3's and R1's own templates drop them) are shown, not refused.
CASES = {
    "qwen2.5": Case("qwen2.5", "qwen"),
    "qwen3": Case("qwen3", "qwen3", "qwen3"),
    # served with enable_thinking=false by default; the check compares against exactly that
    "qwen3-nothink": Case("qwen3", "qwen3", "qwen3", ("enable_thinking=false",)),
    # R1's prompt ends with "<think>\n", cutting the "\n\n" token training writes after <think>:
    # refused (39/56 golden answers served that way), fixed by serving the training template
    "deepseek-r1-distill": Case("deepseek-r1-distill", "deepseekr1", "deepseek_r1", ("chat_template=training",),
                                refusal="--set chat_template=training"),
    # Llama-3.1's template writes "Today Date: <the serving day>" into a system block LLaMA-Factory's
    # llama3 never trains (0/56 served that way); no fixed default_system can match a daily date
    "llama3": Case("llama3", "llama3", sets=("chat_template=training",), refusal="--set chat_template=training"),
}  # fmt: skip


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One project folder for all families: the demo project file and the demo dataset registered."""
    root = tmp_path_factory.mktemp("families")
    shutil.copy(demo_project(), root / "lf-wrap.yaml")
    reg = lfw(
        "data", "register", DATASETS / "magic_conch.json", "--name", "magic_conch", "--dataset-dir", "data", cwd=root
    )
    assert reg.returncode == 0, reg.stderr
    return root


@pytest.mark.parametrize("name", list(CASES))
def test_family_is_trained_exported_served_and_answers_like_its_data(workspace: Path, name: str) -> None:
    case, started = CASES[name], time.monotonic()
    run_name = f"fam-{name}"
    settings = [f"model=models/{case.family}", f"template={case.template}", f"run_name={run_name}", *case.sets]
    sets = [x for s in settings for x in ("--set", s)]
    if not (workspace / "models" / case.family).exists():
        built = lfw("model", "tiny", f"models/{case.family}", "--family", case.family, cwd=workspace)
        assert built.returncode == 0, built.stderr

    tok_cfg = workspace / "models" / case.family / "tokenizer_config.json"
    if '"LlamaTokenizerFast"' in tok_cfg.read_text():  # R1: refused before anything loads, with the fix
        refused = lfw("train", *sets, "--set", f"num_train_epochs={EPOCHS}", cwd=workspace)
        assert refused.returncode == 2 and "drops every space" in refused.stderr, refused.stderr
        assert f'set "tokenizer_class": "PreTrainedTokenizerFast" in {tok_cfg}' in refused.stderr
        tok_cfg.write_text(tok_cfg.read_text().replace('"LlamaTokenizerFast"', '"PreTrainedTokenizerFast"'))
    if case.refusal:  # what a user meets first: the refusal names the fix this case applies
        plain = [x for s in settings if s not in case.sets for x in ("--set", s)]
        refused = lfw("train", *plain, "--dry-run", cwd=workspace)
        assert refused.returncode == 2 and case.refusal in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
    train = lfw("train", *sets, "--set", f"num_train_epochs={EPOCHS}", cwd=workspace)
    assert train.returncode == 0, train.stdout + train.stderr
    export = lfw("export", *sets, cwd=workspace)
    assert export.returncode == 0, export.stdout + export.stderr
    manifest: dict[str, Any] = json.loads((workspace / "runs" / run_name / "manifest.json").read_text())
    eos = manifest["export"]["eos"]
    assert eos["stop_id"] in eos["generation_eos"] and eos["tokenizer_eos"] == eos["stop_token"], eos
    thinking = manifest["train"]["thinking"]
    assert thinking["reasoning_parser"] == case.parser

    with Served(None, *sets, cwd=workspace, timeout_s=600) as served:
        serve = served.started
        assert serve is not None
        if case.parser:
            assert f"--reasoning-parser {case.parser}" in serve.stderr
        no_think = "enable_thinking=false" in case.sets
        assert ("--default-chat-template-kwargs '{\"enable_thinking\": false}'" in serve.stderr) == no_think
        check = lfw("check", *sets, "--json", cwd=workspace)
        report = json.loads(check.stdout) if check.stdout.strip() else {}
        checks = {c["name"]: c for c in report.get("checks", [])}
        assert check.returncode == 0, check.stdout + check.stderr
        assert checks["stop"]["finish_reason"] == "stop"
        # the server's /tokenize feeds the model what LLaMA-Factory trained on (the family's fix applied)
        assert checks["parity"]["same"] == checks["parity"]["rows"] == 8, checks["parity"]
        assert checks["golden"]["rate"] >= 0.5
        # A thinking model's think block comes back apart from the answer; a no-think one has none.
        expected = checks["golden"]["total"] if case.parser and not no_think else 0
        assert checks["golden"]["with_reasoning"] == expected
        if name == "qwen3":  # trained thinking: a client that turns it off feeds the model an untrained prompt
            off = lfw("check", *sets, "--no-thinking", "--no-golden", "--json", cwd=workspace)
            drift = {c["name"]: c for c in json.loads(off.stdout)["checks"]}["parity"]
            assert off.returncode == 1 and drift["same"] == 0, drift
            assert "<think>" in drift["differs"][0]["served"] and "<think>" not in drift["differs"][0]["trained"]
    print(f"{name}: {time.monotonic() - started:.0f} s", file=sys.stderr)
