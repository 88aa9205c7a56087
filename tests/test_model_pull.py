"""`lf-wrap model pull`: the real huggingface_hub client against a local stand-in hub,
local folders, and clear offline errors."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.helpers import lfw

from .fake_hub import FakeHub


@pytest.fixture
def run():
    """Pull runs in a real process: huggingface_hub reads some settings at import time."""

    def invoke(*args):
        done = lfw(*args)
        return SimpleNamespace(exit_code=done.returncode, stdout=done.stdout, stderr=done.stderr,
                               output=done.stdout + done.stderr)  # fmt: skip

    return invoke


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return home


def test_pull_through_hf_endpoint_prints_one_plain_folder(run, tiny_model, hf_home, monkeypatch):
    with FakeHub("org/tiny", tiny_model) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        result = run("model", "pull", "org/tiny")
        assert result.exit_code == 0, result.output
        path = result.stdout.strip().splitlines()[-1]
        assert path.startswith(str(hf_home)) and "/snapshots/" in path
        assert any(r.startswith("GET /api/models/org/tiny/revision/main") for r in hub.requests)
    folder = Path(path)
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (folder / name).read_bytes() == (tiny_model / name).read_bytes()

    # Already downloaded: found again with the hub gone and the network off.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = run("model", "pull", "org/tiny")
    assert again.exit_code == 0, again.output
    assert again.stdout.strip().splitlines()[-1] == path


def test_pull_into_a_local_dir(run, tiny_model, hf_home, monkeypatch, tmp_path):
    with FakeHub("org/tiny", tiny_model) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        result = run("model", "pull", "org/tiny", "--local-dir", tmp_path / "here")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str((tmp_path / "here").resolve())
    assert (tmp_path / "here" / "model.safetensors").exists()


def test_unknown_repo_on_the_hub(run, tiny_model, hf_home, monkeypatch):
    with FakeHub("org/tiny", tiny_model) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        result = run("model", "pull", "org/other")
    assert result.exit_code == 1
    assert f"org/other was not found on {hub.url}" in result.stderr


def test_unreachable_hub_fails_fast_naming_the_endpoint(run, hf_home, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    start = time.monotonic()
    result = run("model", "pull", "org/tiny")
    assert time.monotonic() - start < 10
    assert result.exit_code == 1
    assert "cannot reach http://127.0.0.1:9" in result.stderr
    assert "HF_ENDPOINT=https://hf-mirror.com" in result.stderr and "--hub modelscope" in result.stderr
    assert "Traceback" not in result.output


def test_unreachable_modelscope_fails_fast(run, monkeypatch):
    monkeypatch.setenv("MODELSCOPE_DOMAIN", "http://127.0.0.1:9")
    start = time.monotonic()
    result = run("model", "pull", "qwen/Qwen2.5-0.5B", "--hub", "modelscope")
    assert time.monotonic() - start < 10
    assert result.exit_code == 1
    assert "cannot reach http://127.0.0.1:9" in result.stderr and "--hub hf" in result.stderr


def test_modelscope_is_an_extra_and_says_so_when_it_is_missing(monkeypatch):
    import sys

    from click.testing import CliRunner

    from lf_wrap.cli import main

    monkeypatch.setitem(sys.modules, "modelscope", None)  # `import modelscope` fails, as without the extra
    result = CliRunner().invoke(main, ["model", "pull", "qwen/Qwen2.5-0.5B", "--hub", "modelscope"])
    assert result.exit_code == 2, result.output
    assert "lf-wrap model pull --hub modelscope needs the Python package 'modelscope'" in result.stderr
    assert "pip install 'lf-wrap[modelscope]'" in result.stderr


def test_offline_mode_without_a_cached_copy(run, hf_home, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = run("model", "pull", "org/tiny")
    assert result.exit_code == 1
    assert "not in the local cache and HF_HUB_OFFLINE is set" in result.stderr


def test_a_local_folder_is_checked_and_accepted(run, tiny_model, tmp_path):
    result = run("model", "pull", tiny_model)
    assert result.exit_code == 0
    assert result.stdout.strip() == str(tiny_model.resolve())
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "qwen2"}')
    result = run("model", "pull", broken)
    assert result.exit_code == 2
    assert "is missing: weights (*.safetensors or *.bin), tokenizer files" in result.stderr


def test_neither_a_folder_nor_a_hub_id(run):
    result = run("model", "pull", "./nope/deeper/path")
    assert result.exit_code == 2
    assert "is neither a local folder nor a hub id like 'Qwen/Qwen2.5-0.5B-Instruct'" in result.stderr
