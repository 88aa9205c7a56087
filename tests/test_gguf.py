"""`lf-wrap export --format gguf` and `lf-wrap serve --engine llama.cpp` for real: llama.cpp's own
converter and llama-quantize, llama-server (built by `make setup-llamacpp`), then `lf-wrap check`
(golden answers, stop, parity) and the answers compared with the merged model's own greedy ones.
The demo's trained run (conftest.py `trained`) is copied per module so its run folder stays as it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from lf_wrap.model.golden import greedy_answers

from .conftest import DATASETS
from .helpers import Served, free_port, lfw

pytestmark = pytest.mark.slow
ROWS = json.loads((DATASETS / "magic_conch.json").read_text())
PROMPTS = [r["instruction"] for r in ROWS]


@pytest.fixture(scope="module")
def project(trained: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("gguf") / "project"
    shutil.copytree(trained["root"], root, ignore=shutil.ignore_patterns("serve.json"))
    return {"root": root, "config": str(root / "lf-wrap.yaml"), "run": root / "runs" / "magic-conch"}


@pytest.fixture(scope="module")
def merged_answers(project: dict[str, Any]) -> list[str]:
    """The merged model's own greedy answers (transformers), what the GGUF must give back."""
    return greedy_answers(project["run"] / "merged", PROMPTS)


def export(project: dict[str, Any], *args: str) -> dict[str, Any]:
    done = lfw("export", "--config", project["config"], "--format", "gguf", *args, "--json", timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def answers(served: Served) -> list[str]:
    out = []
    with httpx.Client(timeout=60) as client:
        for prompt in PROMPTS:
            body = {"model": "magic-conch", "messages": [{"role": "user", "content": prompt}], "max_tokens": 96,
                    "temperature": 0}  # fmt: skip
            resp = client.post(f"{served.api}/chat/completions", json=body)
            assert resp.status_code == 200, resp.text
            out.append(resp.json()["choices"][0]["message"]["content"].strip())
    return out


def test_f16_gguf_answers_exactly_like_the_merged_model_and_passes_check(project, merged_answers):
    result = export(project, "--quant", "f16")
    gguf = Path(result["file"])
    assert gguf == project["run"] / "gguf" / "magic-conch.f16.gguf" and gguf.stat().st_size == result["bytes"]
    assert result["architecture"] == "qwen2" and result["stop"]["eos_token"] == "<|im_end|>"
    # the demo's own tokenizer is unknown to the converter's hash list; its rules are GPT-2's, named by lf-wrap
    assert result["pre_tokenizer"] == "gpt-2" and result["pre_tokenizer_from"] == "tokenizer.json's rules (lf-wrap)"
    assert not list(gguf.parent.glob(".*partial"))  # nothing half-written left
    manifest = json.loads((project["run"] / "manifest.json").read_text())
    assert manifest["export_gguf"]["status"] == "succeeded" and manifest["export_gguf"]["sha256"] == result["sha256"]
    with Served(project["config"], "--engine", "llama.cpp", "--gguf", gguf) as served:
        got = answers(served)
        check = lfw("check", "--config", project["config"], "--base-url", served.api, "--json")
    # greedy, f16 weights against the merged fp32 model: the same text row for row, but for a rare
    # near-tie that f16 rounding (or another summation order) flips: measured 56 of 56 in most runs, 55 once
    differ = [(p, a, b) for p, a, b in zip(PROMPTS, got, merged_answers, strict=True) if a != b]
    assert len(differ) <= 1, differ
    assert check.returncode == 0, check.stdout + check.stderr
    checks = {c["name"]: c for c in json.loads(check.stdout)["checks"]}
    assert checks["parity"]["ok"] and checks["parity"]["same"] == checks["parity"]["rows"] == 8  # token for token
    assert checks["stop"]["ok"] and checks["golden"]["ok"]


def test_q8_0_gguf_with_its_modelfile_is_served_detached_and_checked(project, merged_answers):
    result = export(project)  # q8_0, the default
    gguf = Path(result["file"])
    assert gguf.name == "magic-conch.q8_0.gguf" and result["quant"] == "q8_0"
    modelfile = (gguf.parent / "Modelfile").read_text()
    assert result["modelfile"]["template_proven"] and result["modelfile"]["conversations_compared"] >= 8
    assert "FROM ./magic-conch.q8_0.gguf" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    assert "PARAMETER temperature 0" in modelfile  # the demo's generation_config.json: do_sample false
    with Served(project["config"], "--engine", "llama.cpp", "--api-key", "gguf-key-1") as served:
        status = lfw("serve", "status", "--config", project["config"])
        assert status.returncode == 0 and "llama.cpp" in (project["run"] / "serve.json").read_text()
        refused = httpx.get(f"{served.api}/models", timeout=10)
        assert refused.status_code == 401  # llama-server got the key from LLAMA_API_KEY, not its command line
        assert "gguf-key-1" not in json.dumps(json.loads((project["run"] / "serve.json").read_text()))
        check = lfw("check", "--config", project["config"], "--json", env={"LF_WRAP_API_KEY": "gguf-key-1"})
        assert check.returncode == 0, check.stdout + check.stderr
        served_answers = answers_with_key(served, "gguf-key-1")
    same = sum(a == b for a, b in zip(served_answers, merged_answers, strict=True))
    assert same / len(PROMPTS) >= 0.9, f"{same} of {len(PROMPTS)} answers as the merged model's"


def answers_with_key(served: Served, key: str) -> list[str]:
    out = []
    with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {key}"}) as client:
        for prompt in PROMPTS:
            body = {"model": "magic-conch", "messages": [{"role": "user", "content": prompt}], "max_tokens": 96}
            resp = client.post(f"{served.api}/chat/completions", json=body)  # no temperature: the server's default
            assert resp.status_code == 200, resp.text
            out.append(resp.json()["choices"][0]["message"]["content"].strip())
    return out


def test_a_k_quant_goes_through_llama_quantize(project):
    result = export(project, "--quant", "q4_k_m")
    assert Path(result["file"]).name == "magic-conch.q4_k_m.gguf" and result["bytes"] > 0
    log = (project["run"] / "gguf.log").read_text()
    assert "llama-quantize" in log and ".magic-conch.f16.gguf.partial" in log  # f16 first, then quantized
    again = lfw("export", "--config", project["config"], "--format", "gguf", "--quant", "q4_k_m")
    assert again.returncode == 2 and "already exported" in again.stderr and "--overwrite" in again.stderr


def test_eval_puts_the_vllm_merged_model_and_the_llamacpp_gguf_side_by_side(project, tmp_path):
    export(project, "--quant", "q8_0", "--overwrite")
    twin = tmp_path / "twin"  # a second run folder: each detached server keeps its own serve.json
    shutil.copytree(project["root"], twin, ignore=shutil.ignore_patterns("serve.json"))
    with Served(project["config"]) as vllm, Served(twin / "lf-wrap.yaml", "--engine", "llama.cpp") as llamacpp:
        done = lfw("eval", "--base-url", vllm.api, "--tuned-url", llamacpp.api, "--dataset",
                   DATASETS / "magic_conch.json", "--rows", "0", "--no-canary", "--json", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    exact = json.loads(done.stdout)["summary"]["metrics"]["exact"]  # percent of rows
    # the same model, two engines: the GGUF (q8_0, llama.cpp) answers as the merged model (vLLM) does
    assert exact["base"] >= 80 and exact["tuned"] >= 0.9 * exact["base"], exact


# -- bad input: one message each --------------------------------------------------------------
def test_bad_gguf_inputs_are_one_message_each(project, tmp_path):
    cfg = project["config"]
    bad = lfw("export", "--config", cfg, "--format", "gguf", "--quant", "q9_x")
    assert bad.returncode == 2 and "--quant q9_x: not a GGUF type lf-wrap writes" in bad.stderr
    assert "q4_k_m" in bad.stderr and "Traceback" not in bad.stderr
    usage = lfw("export", "--config", cfg, "--quant", "q8_0")
    assert usage.returncode == 2 and "--quant is for --format gguf" in usage.stderr
    none = lfw("export", "--config", cfg, "--format", "gguf", "--set", "run_name=never-trained")
    assert none.returncode == 2 and "no LoRA adapter" in none.stderr and "train first" in none.stderr
    missing = lfw("serve", "--config", cfg, "--engine", "llama.cpp", "--set", "run_name=never-trained")
    assert missing.returncode == 2 and "no GGUF file for run 'never-trained'" in missing.stderr
    assert "lf-wrap export --format gguf" in missing.stderr
    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_text("not a model")
    wrong = lfw("serve", "--config", cfg, "--engine", "llama.cpp", "--gguf", not_gguf)
    assert wrong.returncode == 2 and "not a GGUF file (it does not start with 'GGUF')" in wrong.stderr
    vllm_only = lfw("serve", "--config", cfg, "--engine", "llama.cpp", "--tensor-parallel-size", "2")
    assert vllm_only.returncode == 2 and "--tensor-parallel-size: vLLM only" in vllm_only.stderr
    no_build = lfw("export", "--config", cfg, "--format", "gguf", env={"LF_WRAP_LLAMACPP": str(tmp_path)})
    assert no_build.returncode == 2 and "llama.cpp not found" in no_build.stderr
    assert "make setup-llamacpp" in no_build.stderr


def test_a_gguf_llamacpp_cannot_load_fails_the_start_with_its_log(project, tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 64)
    done = lfw("serve", "--config", project["config"], "--engine", "llama.cpp", "--gguf", broken, "--detach",
               "--port", free_port(), "--timeout", "60")  # fmt: skip
    assert done.returncode == 1 and "the llama.cpp server exited while starting" in done.stderr
    assert not (project["run"] / "serve.json").exists()


def test_an_architecture_the_converter_does_not_know_is_one_message(project, tmp_path):
    root = tmp_path / "other"
    shutil.copytree(project["root"], root, ignore=shutil.ignore_patterns("gguf", "serve.json"))
    config = root / "runs" / "magic-conch" / "merged" / "config.json"
    data = json.loads(config.read_text())
    config.write_text(json.dumps({**data, "architectures": ["MadeUpForCausalLM"]}))
    done = lfw("export", "--config", root / "lf-wrap.yaml", "--format", "gguf", timeout=600)
    assert done.returncode == 1, done.stderr
    assert "does not know architecture ['MadeUpForCausalLM']" in done.stderr and "lf-wrap serve" in done.stderr
    assert not list((root / "runs" / "magic-conch" / "gguf").glob("*.gguf*"))
