"""Each look-alike model family end to end on CPU, through the real tools:

    lf-wrap model tiny --family F → data register (the demo dataset) → train (the demo project
    file with the family's LLaMA-Factory template) → export → serve --detach (vLLM CPU) → check
    (golden answers, finish_reason "stop", reasoning apart from the answer)

What each family exercises, and what a user of the real model has to do (the same here):
- qwen2.5: the demo itself.
- qwen3: a thinking template: the answer comes behind an empty `<think>` block that vLLM's
  qwen3 reasoning parser takes out. The template check refuses LLaMA-Factory's default
  multi-turn encoding (it keeps empty think blocks in earlier turns, Qwen3's template drops
  them) and proves `mask_history: true` agrees; the demo data is single-turn, so that setting
  changes nothing it trains on. qwen3-nothink: the same model trained with
  `enable_thinking: false` (the empty think block is part of the prompt), served with
  `--default-chat-template-kwargs '{"enable_thinking": false}'`, answering without reasoning.
- deepseek-r1-distill: the real tokenizer_config.json's `LlamaTokenizerFast` makes `train`
  refuse the model (transformers 5 drops the spaces); the test applies the printed fix. Same
  earlier-turns refusal and fix as qwen3. Served with the training template: R1's generation
  prompt ends with `<think>\n`, which cuts the "\n\n" token training put after `<think>`
  (measured on this model: 39/56 golden answers with the model's template, 54/56 with the
  training one).
- llama3: a list of EOS ids, and a "Cutting Knowledge / Today Date" system block that the
  model's template always writes and LLaMA-Factory's `llama3` template never trains (0/56
  golden answers served that way): trained with --no-template-check, served with the
  training template, as the template check's refusal says.

num_train_epochs is lowered from the demo's value for time; every family still passes the
golden check (52-56 of 56 answers measured at 40 epochs).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lf_wrap.paths import demo_project

from .conftest import DATASETS

pytestmark = pytest.mark.slow
LFW = str(Path(sys.executable).parent / "lf-wrap")

EPOCHS = 40


@dataclass(frozen=True)
class Case:
    family: str  # lf-wrap model tiny --family
    template: str  # the LLaMA-Factory template a user trains that family with
    parser: str | None = None  # the vLLM reasoning parser lf-wrap serves it with
    sets: tuple[str, ...] = ()  # training settings of this case
    train_flags: tuple[str, ...] = ()
    serve_flags: tuple[str, ...] = ()


# mask_history=true: the fix the template check proves for the thinking templates (module docstring).
CASES = {
    "qwen2.5": Case("qwen2.5", "qwen"),
    "qwen3": Case("qwen3", "qwen3", "qwen3", ("mask_history=true",)),
    # TODO(template check): it compares the no-think training with the model's prompt *with thinking on*,
    # although `lf-wrap serve` serves this run with enable_thinking=false by default (this test checks
    # that), so it refuses a combination that agrees turn for turn; hence --no-template-check.
    "qwen3-nothink": Case("qwen3", "qwen3", "qwen3", ("enable_thinking=false",), ("--no-template-check",)),
    # TODO(template check): it calls R1's `<think>\n` boundary harmless although the token ids at the cut
    # differ and the golden rate drops (39/56 with the model's template, 54/56 with the training one).
    "deepseek-r1-distill": Case("deepseek-r1-distill", "deepseekr1", "deepseek_r1", ("mask_history=true",),
                                serve_flags=("--chat-template", "training")),
    # TODO(template check): it refuses llama3 because the model's template always writes the dated
    # "Cutting Knowledge" system block; its own fix is serving with the training template, which this
    # test does, and its refusal says to pass --no-template-check for that.
    "llama3": Case("llama3", "llama3", train_flags=("--no-template-check",),
                   serve_flags=("--chat-template", "training")),
}  # fmt: skip


def lfw(root: Path, *args: object, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LFW, *map(str, args)], cwd=root, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ), check=False)  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One project folder for all families: the demo project file and the demo dataset registered."""
    root = tmp_path_factory.mktemp("families")
    shutil.copy(demo_project(), root / "lf-wrap.yaml")
    reg = lfw(root, "data", "register", DATASETS / "magic_conch.json", "--name", "magic_conch", "--dataset-dir", "data")
    assert reg.returncode == 0, reg.stderr
    return root


@pytest.mark.parametrize("name", list(CASES))
def test_family_is_trained_exported_served_and_answers_like_its_data(workspace: Path, name: str) -> None:
    case, started = CASES[name], time.monotonic()
    run_name = f"fam-{name}"
    settings = [f"model=models/{case.family}", f"template={case.template}", f"run_name={run_name}", *case.sets]
    sets = [x for s in settings for x in ("--set", s)]
    if not (workspace / "models" / case.family).exists():
        built = lfw(workspace, "model", "tiny", f"models/{case.family}", "--family", case.family)
        assert built.returncode == 0, built.stderr

    tok_cfg = workspace / "models" / case.family / "tokenizer_config.json"
    if '"LlamaTokenizerFast"' in tok_cfg.read_text():  # R1: refused before anything loads, with the fix
        refused = lfw(workspace, "train", *sets, "--set", f"num_train_epochs={EPOCHS}")
        assert refused.returncode == 2 and "drops every space" in refused.stderr, refused.stderr
        assert f'set "tokenizer_class": "PreTrainedTokenizerFast" in {tok_cfg}' in refused.stderr
        tok_cfg.write_text(tok_cfg.read_text().replace('"LlamaTokenizerFast"', '"PreTrainedTokenizerFast"'))
    train = lfw(workspace, "train", *sets, "--set", f"num_train_epochs={EPOCHS}", *case.train_flags)
    assert train.returncode == 0, train.stdout + train.stderr
    export = lfw(workspace, "export", *sets)
    assert export.returncode == 0, export.stdout + export.stderr
    manifest: dict[str, Any] = json.loads((workspace / "runs" / run_name / "manifest.json").read_text())
    eos = manifest["export"]["eos"]
    assert eos["stop_id"] in eos["generation_eos"] and eos["tokenizer_eos"] == eos["stop_token"], eos
    thinking = manifest["train"]["thinking"]
    assert thinking["reasoning_parser"] == case.parser

    serve = lfw(workspace, "serve", *sets, *case.serve_flags, "--detach", "--port", free_port(), "--timeout", 600)
    try:
        assert serve.returncode == 0, serve.stdout + serve.stderr
        if case.parser:
            assert f"--reasoning-parser {case.parser}" in serve.stderr
        no_think = "enable_thinking=false" in case.sets
        assert ("--default-chat-template-kwargs '{\"enable_thinking\": false}'" in serve.stderr) == no_think
        check = lfw(workspace, "check", *sets, "--json")
        report = json.loads(check.stdout) if check.stdout.strip() else {}
        checks = {c["name"]: c for c in report.get("checks", [])}
        assert check.returncode == 0, check.stdout + check.stderr
        assert checks["stop"]["finish_reason"] == "stop"
        assert checks["golden"]["rate"] >= 0.5
        # A thinking model's think block comes back apart from the answer; a no-think one has none.
        expected = checks["golden"]["total"] if case.parser and not no_think else 0
        assert checks["golden"]["with_reasoning"] == expected
    finally:
        lfw(workspace, "serve", "stop", *sets)
    print(f"{name}: {time.monotonic() - started:.0f} s", file=sys.stderr)
