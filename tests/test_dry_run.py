"""`--dry-run` runs every pre-flight check of the real command (engine lookup, template
check, run folder state, ...) and exits 2 where the real command would refuse; it only
stops short of starting the engine."""

from __future__ import annotations

import socket

import pytest

from lf_wrap.engines.llamafactory import LlamaFactory

from .conftest import REPO

pytestmark = pytest.mark.slow


def engine_cli() -> str:
    return str(LlamaFactory.find(project_root=REPO).cli)


def test_train_dry_run_refuses_a_wrong_template_with_exit_2(project, run):
    result = run("train", "--dry-run", "--set", "template=llama3")
    assert result.exit_code == 2, result.output
    assert "give different prompts for the same" in result.stderr  # the real run's refusal
    assert "# would run" not in result.stderr
    assert not (project / "runs").exists()


def test_train_dry_run_refuses_an_existing_run_without_overwrite(project, run):
    output = project / "runs" / "magic-conch" / "output"
    output.mkdir(parents=True)
    (output / "adapter_config.json").write_text("{}")
    result = run("train", "--dry-run", "--no-template-check")
    assert result.exit_code == 2, result.output
    assert "already holds a training run" in result.stderr and "--overwrite" in result.stderr
    again = run("train", "--dry-run", "--no-template-check", "--overwrite")
    assert again.exit_code == 0, again.output
    assert "overwrite_output_dir: true" in again.stdout and "# --overwrite" in again.stdout
    assert (output / "adapter_config.json").exists()  # a dry run deletes nothing


def test_train_dry_run_needs_the_engine_like_the_real_run(project, run, monkeypatch):
    monkeypatch.setenv("LF_WRAP_LLAMAFACTORY_CLI", str(project / "nowhere" / "llamafactory-cli"))
    result = run("train", "--dry-run")
    assert result.exit_code == 2
    assert "llamafactory-cli not found" in result.stderr and "make setup-train" in result.stderr


def test_train_dry_run_refuses_deepspeed_when_it_is_not_installed(project, run):
    result = run("train", "--dry-run", "--no-template-check", "--nproc-per-node", "2", "--deepspeed", "z2")
    assert result.exit_code == 2
    assert "DeepSpeed is not installed in the training environment" in result.stderr


def test_export_dry_run_checks_the_adapter_the_merged_folder_and_the_engine(project, run, monkeypatch):
    result = run("export", "--dry-run")
    assert result.exit_code == 2
    assert "no LoRA adapter (adapter_config.json) to merge" in result.stderr
    run_dir = project / "runs" / "magic-conch"
    (run_dir / "output").mkdir(parents=True)
    (run_dir / "output" / "adapter_config.json").write_text("{}")
    ok = run("export", "--dry-run")
    assert ok.exit_code == 0, ok.output
    assert f"# would run: {engine_cli()} export {run_dir / 'export.yaml'}" in ok.stderr
    (run_dir / "merged").mkdir()
    (run_dir / "merged" / "config.json").write_text("{}")
    busy = run("export", "--dry-run")
    assert busy.exit_code == 2 and "already holds an exported model" in busy.stderr
    monkeypatch.setenv("LF_WRAP_LLAMAFACTORY_CLI", str(project / "nowhere" / "llamafactory-cli"))
    missing = run("export", "--dry-run", "--overwrite")
    assert missing.exit_code == 2 and "llamafactory-cli not found" in missing.stderr
    assert (run_dir / "merged" / "config.json").exists()


def test_serve_dry_run_runs_the_whole_serve_plan(run, tiny_model, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ok = run("serve", "--dry-run", "--model", tiny_model, "--port", str(port))
    assert ok.exit_code == 0, ok.output
    assert f"--port {port}" in ok.stdout
    too_long = run("serve", "--dry-run", "--model", tiny_model, "--port", str(port), "--max-model-len", "100000")
    assert too_long.exit_code == 2 and "is above the model's limit" in too_long.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy_port = s.getsockname()[1]
        busy = run("serve", "--dry-run", "--model", tiny_model, "--port", str(busy_port))
    assert busy.exit_code == 2 and f"port {busy_port} on 127.0.0.1 is already in use" in busy.stderr
    monkeypatch.setenv("LF_WRAP_VLLM", str(tiny_model / "no-vllm"))
    missing = run("serve", "--dry-run", "--model", tiny_model, "--port", str(port))
    assert missing.exit_code == 2 and "vllm not found" in missing.stderr


def test_serving_a_run_whose_template_agrees_for_its_data_only_says_which_requests_differ(run, project):
    import json
    import shutil

    from lf_wrap.util.paths import demo_project

    shutil.copy(demo_project(), project / "lf-wrap.yaml")
    run_dir = project / "runs" / "magic-conch"
    shutil.copytree(project / "models" / "tiny-qwen2", run_dir / "merged")
    line = "agrees for this data (single-turn, no system prompts); differs with a system prompt (differs_system_prompt)"
    scope = {"agrees_for": "single-turn, no system prompts", "differs_with": ["system_prompt"], "line": line}
    (run_dir / "manifest.json").write_text(json.dumps({"train": {"template_check": {"scope": scope}}}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run("serve", "--dry-run", "--port", str(port))
    assert result.exit_code == 0, result.output
    assert f"note: the template check {line}: a request with a system prompt is served a prompt" in result.stderr
    assert "`--chat-template training` serves what training rendered" in result.stderr
    other = run("serve", "--dry-run", "--port", str(port), "--model", project / "models" / "tiny-qwen2")
    assert other.exit_code == 0 and "the template check" not in other.stderr  # another model: not this run's check
