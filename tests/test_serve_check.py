"""`lf-wrap serve` (real vLLM on CPU) and `lf-wrap check` (real openai client).

Servers are started the way vLLM's own tests do it: a free port, poll /health (lf-wrap
serve --detach does), stop with terminate → wait → kill (lf-wrap serve stop does). No
fixed sleeps.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from lf_wrap.engines.vllm import Vllm

from .helpers import LFW, Served, free_port, lfw

pytestmark = pytest.mark.slow
SECRET = "s3cret-key-for-tests"


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture(scope="module")
def engine() -> Vllm:
    try:
        return Vllm.find()
    except Exception as err:  # the default suite needs it: make test installs it
        pytest.fail(f"vLLM is not installed ({err}); run `make setup-serve`")


@pytest.fixture
def detached(trained, engine) -> Iterator[Callable[..., tuple[subprocess.CompletedProcess[str], int]]]:
    """`detached(*serve_args)`: the run's server started for this test (stopped after it)."""
    with contextlib.ExitStack() as servers:

        def start(*args: object) -> tuple[subprocess.CompletedProcess[str], int]:
            served = servers.enter_context(Served(trained["config"], *args))
            assert served.started is not None
            return served.started, served.port

        yield start


def test_merged_model_serves_and_passes_check_with_an_api_key(trained, detached):
    result, port = detached("--api-key", SECRET)
    assert result.returncode == 0, result.stderr
    assert "ready in" in result.stdout and f"http://127.0.0.1:{port}/v1 serves 'magic-conch'" in result.stdout
    assert SECRET not in result.stderr and "VLLM_API_KEY='***'" in result.stderr  # the key travels by environment

    check = lfw("check", "--config", trained["config"], "--api-key", SECRET, "--json", "--concurrency", 4,
                "--requests", 8)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    report = json.loads(check.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert set(checks) == {"models", "chat", "stream", "auth", "parity", "stop", "golden", "load"}
    assert all(c["ok"] for c in checks.values())
    # the server's /tokenize (with the key) feeds the model what LLaMA-Factory trained on, token for token
    assert checks["parity"]["rows"] == 8 and checks["parity"]["same"] == 8
    assert checks["golden"]["rate"] >= 0.5 and checks["golden"]["total"] == 16
    assert checks["load"]["errors"] == 0 and checks["load"]["output_tokens_per_s"] > 0

    refused = lfw("check", "--config", trained["config"], "--no-golden")
    assert refused.returncode == 1
    assert "the API key was refused (401)" in refused.stderr

    run_dir = trained["run"]
    for name in ("serve.json", "serve.log", "manifest.json"):
        assert SECRET not in (run_dir / name).read_text(), f"{name} leaks the API key"

    status = lfw("serve", "status", "--config", trained["config"])
    assert status.returncode == 0 and "healthy" in status.stdout
    stop = lfw("serve", "stop", "--config", trained["config"])
    assert "stopped the server" in stop.stdout
    assert processes_mentioning(f"--port {port}") == []
    assert not (run_dir / "serve.json").exists()


def test_base_model_plus_adapter_is_served_by_name_and_untrained_base_fails_golden(trained, detached):
    adapter = trained["run"] / "output"
    result, port = detached("--set", "run_name=adapter-run", "--adapter", adapter, "--adapter-name", "conch")
    assert result.returncode == 0, result.stderr
    url = f"http://127.0.0.1:{port}"
    good = lfw("check", "--config", trained["config"], "--base-url", url, "--model", "conch", "--golden", "magic_conch")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "PASS  golden" in good.stdout and "PASS  parity  8 of 8 rows" in good.stdout
    # Trained with a system prompt the served template does not write (an off-by-one default_system):
    # the same server now feeds the model other ids than training did, and parity says where
    drifted = lfw("check", "--config", trained["config"], "--base-url", url, "--model", "conch", "--golden",
                  "magic_conch", "--set", "default_system=You are the Magic Conch.")  # fmt: skip
    assert drifted.returncode == 1, drifted.stdout + drifted.stderr
    assert "FAIL  parity  8 of 8 rows differ from what LLaMA-Factory trained on; first at token 5" in drifted.stdout
    assert "trained '<|im_start|>system\\nYou are⟨ the Magic Conch.<|im_end|>\\n⟩'" in drifted.stdout, drifted.stdout
    assert "served  '<|im_start|>system\\nYou are⟨ Qwen, created by⟩'" in drifted.stdout  # vLLM's own /detokenize
    base = lfw(
        "check", "--config", trained["config"], "--base-url", url, "--model", "adapter-run-base", "--min-match", "0.5"
    )
    assert base.returncode == 1
    assert "FAIL  golden" in base.stdout and "expected" in base.stdout


def test_busy_port_is_refused_before_anything_starts(trained):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        start = time.monotonic()
        result = lfw("serve", "--config", trained["config"], "--port", port)
    assert time.monotonic() - start < 10
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr


def test_missing_model_and_too_long_context_are_refused(trained, tmp_path):
    result = lfw("serve", "--config", trained["config"], "--model", tmp_path / "nope")
    assert result.returncode == 2 and "does not exist" in result.stderr
    result = lfw("serve", "--config", trained["config"], "--max-model-len", 100000)
    assert result.returncode == 2
    assert "--max-model-len 100000 is above the model's limit (2048" in result.stderr


def test_a_server_that_dies_while_starting_is_reported_and_cleaned_up(trained, tmp_path, engine):
    broken = tmp_path / "broken"
    shutil.copytree(trained["run"] / "merged", broken)
    config = json.loads((broken / "config.json").read_text())
    config["architectures"] = ["NoSuchModelForCausalLM"]
    (broken / "config.json").write_text(json.dumps(config))
    port = free_port()
    result = lfw("serve", "--config", trained["config"], "--set", "run_name=broken-run", "--model", broken, "--detach",
                 "--port", port, "--timeout", 300)  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the vLLM server exited while starting. Last lines of" in result.stderr
    assert "Traceback" not in result.stderr.split("Last lines of")[0]
    assert processes_mentioning(f"--port {port}") == []
    assert not (trained["root"] / "runs" / "broken-run" / "serve.json").exists()


def test_check_against_nothing_fails_fast(trained):
    start = time.monotonic()
    result = lfw("check", "--config", trained["config"], "--base-url", "http://127.0.0.1:9", "--no-golden")
    assert time.monotonic() - start < 15
    assert result.returncode == 1
    assert "cannot connect to http://127.0.0.1:9/v1" in result.stderr and "lf-wrap serve" in result.stderr


def test_stale_pidfile_is_removed_safely(trained, tmp_path):
    run_dir = trained["root"] / "runs" / "stale-run"
    run_dir.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (run_dir / "serve.json").write_text(json.dumps({"pid": dead.pid, "pgid": dead.pid, "start_time": "1",
                                                     "base_url": "http://127.0.0.1:1"}))  # fmt: skip
    status = lfw("serve", "status", "--config", trained["config"], "--set", "run_name=stale-run")
    assert status.returncode == 3 and "is gone" in status.stdout
    stop = lfw("serve", "stop", "--config", trained["config"], "--set", "run_name=stale-run")
    assert stop.returncode == 0 and "removed the stale serve.json" in stop.stdout
    assert not (run_dir / "serve.json").exists()


def test_ctrl_c_stops_a_foreground_server_and_its_children(trained):
    port = free_port()
    proc = subprocess.Popen([LFW, "serve", "--config", trained["config"], "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while True:
        assert proc.poll() is None, proc.communicate()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "server never became healthy"
        time.sleep(0.5)
    assert processes_mentioning(f"--port {port}")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130  # 128 + SIGINT, as a shell reports a process Ctrl-C stopped
    assert "server stopped (SIGINT)" in err
    time.sleep(0.5)
    assert processes_mentioning(f"--port {port}") == []


def test_public_address_without_api_key_warns_and_keys_are_redacted(run, tiny_model, monkeypatch):
    result = run("serve", "--dry-run", "--model", tiny_model, "--host", "0.0.0.0", "--port", str(free_port()))
    assert result.exit_code == 0
    assert "warning: serving on 0.0.0.0 without --api-key" in result.stderr
    monkeypatch.setenv("LF_WRAP_API_KEY", "from-the-environment")
    result = run("serve", "--dry-run", "--model", tiny_model, "--host", "0.0.0.0", "--port", str(free_port()))
    assert "warning" not in result.stderr
    assert "VLLM_API_KEY='***'" in result.stdout and "from-the-environment" not in result.output


def test_tensor_parallel_2_on_cpu_passes_check(trained, detached):
    result, _port = detached("--tensor-parallel-size", "2")
    assert result.returncode == 0, result.stderr
    assert "VLLM_CPU_OMP_THREADS_BIND=" in result.stderr and "--tensor-parallel-size 2" in result.stderr
    check = lfw("check", "--config", trained["config"], "--json")
    assert check.returncode == 0, check.stdout + check.stderr
    assert json.loads(check.stdout)["ok"] is True
    log = (trained["run"] / "serve.log").read_text()
    assert "world_size=2" in log


def test_a_served_template_without_the_generation_prompt_or_a_tokenizer_that_differs_fails_parity(trained, tmp_path):
    """Two serving setups that drift from training the way users meet it (issue: 'worse when served'),
    each caught on the first token the server feeds the model differently."""
    import re

    merged = trained["run"] / "merged"
    template = (merged / "chat_template.jinja").read_text()
    cut = re.sub(r"\{%-? if add_generation_prompt %\}.*?\{%-? endif %\}", "", template, flags=re.S)
    assert cut != template
    (tmp_path / "no-prompt.jinja").write_text(cut)
    # the same model, its tokenizer one BPE merge short ('You' is now 'Y' + 'ou'): the same text, other ids,
    # as a tokenizer of another version or conversion gives (transformers 5 rebuilds Qwen2's normaliser
    # itself, so the vocabulary is where such a difference can live)
    other = tmp_path / "other-tokenizer"
    shutil.copytree(merged, other)
    tokenizer = json.loads((other / "tokenizer.json").read_text())
    merges = tokenizer["model"]["merges"]
    tokenizer["model"]["merges"] = [m for m in merges if "".join(m) != "You"]
    assert len(tokenizer["model"]["merges"]) == len(merges) - 1
    (other / "tokenizer.json").write_text(json.dumps(tokenizer))

    def parity(*serve_args: object) -> dict:
        with Served(trained["config"], "--set", "run_name=drift", *serve_args, "--served-model-name", "conch") as s:
            done = lfw("check", "--config", trained["config"], "--base-url", s.url, "--model", "conch",
                       "--no-golden", "--json")  # fmt: skip
        assert done.returncode == 1, done.stdout + done.stderr
        return {c["name"]: c for c in json.loads(done.stdout)["checks"]}["parity"]

    no_prompt = parity("--model", merged, "--chat-template", tmp_path / "no-prompt.jinja")
    first = no_prompt["differs"][0]
    assert no_prompt["same"] == 0 and first["served_tokens"] < first["trained_tokens"] == first["at"] + 3
    assert first["trained"].endswith("⟨<|im_start|>assistant\n⟩") and first["served"].endswith("⟨⟩")

    other_tokenizer = parity("--model", other)
    first = other_tokenizer["differs"][0]
    # every prompt starts with the system prompt "You are ...": token 3, after <|im_start|>system\n
    assert other_tokenizer["same"] == 0 and first["at"] == 3, first
    assert first["served_tokens"] > first["trained_tokens"]
    assert first["trained"].split("⟨")[1].startswith("You are") and first["served"].split("⟨")[1].startswith("You")
