"""The environment `lf-wrap serve` gives vLLM: CPU tuning that was measured, never over the user's own settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from lf_wrap.engines import vllm as vllm_engine
from lf_wrap.engines.vllm import Vllm, find_tcmalloc
from lf_wrap.steps.serve import parallel_sizes

TUNING = ("VLLM_ENABLE_V1_MULTIPROCESSING", "OMP_NUM_THREADS", "VLLM_CPU_OMP_THREADS_BIND", "LD_PRELOAD")


@pytest.fixture
def cpu_vllm(tmp_path, monkeypatch) -> Vllm:
    for key in TUNING:
        monkeypatch.delenv(key, raising=False)
    (tmp_path / "env" / "bin").mkdir(parents=True)
    (tmp_path / "env" / "lib").mkdir()
    (tmp_path / "env" / "lib" / "libiomp5.so").write_bytes(b"")
    libs = tmp_path / "syslib"
    libs.mkdir()
    (libs / "libtcmalloc_minimal.so.4").write_bytes(b"")
    monkeypatch.setattr(vllm_engine, "_LIB_DIRS", (str(libs),))
    return Vllm(tmp_path / "env" / "bin" / "vllm", cpu_build=True)


def test_small_cpu_machine_runs_the_model_in_the_engine_process_with_one_cpu_left_for_the_api(cpu_vllm):
    _, changes = cpu_vllm.env(offline=True, cpus=2)
    assert changes["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0" and changes["OMP_NUM_THREADS"] == "1"
    _, changes = cpu_vllm.env(offline=True, cpus=4)
    assert changes["OMP_NUM_THREADS"] == "3"


def test_large_machines_keep_vllms_own_thread_binding(cpu_vllm):
    _, changes = cpu_vllm.env(offline=True, cpus=32)
    assert "VLLM_ENABLE_V1_MULTIPROCESSING" not in changes and "OMP_NUM_THREADS" not in changes


def test_tensor_parallel_binds_one_core_set_per_worker_and_keeps_worker_processes(cpu_vllm):
    _, changes = cpu_vllm.env(offline=True, workers=2, cpus=2)
    assert changes["VLLM_CPU_OMP_THREADS_BIND"] == "0|1"
    assert "VLLM_ENABLE_V1_MULTIPROCESSING" not in changes
    _, changes = cpu_vllm.env(offline=True, workers=2, cpus=16)
    assert changes["VLLM_CPU_OMP_THREADS_BIND"] == "0-7|8-15"


def test_data_parallel_replicas_keep_their_own_processes(cpu_vllm):
    _, changes = cpu_vllm.env(offline=True, data_parallel=2, cpus=2)
    assert "VLLM_ENABLE_V1_MULTIPROCESSING" not in changes


def test_tcmalloc_and_intel_openmp_are_preloaded_when_present(cpu_vllm, tmp_path):
    env, changes = cpu_vllm.env(offline=True, cpus=2)
    assert changes["LD_PRELOAD"] == f"{tmp_path / 'syslib' / 'libtcmalloc_minimal.so.4'}:{cpu_vllm.iomp}"
    assert env["LD_PRELOAD"] == changes["LD_PRELOAD"]


def test_the_users_own_settings_win(cpu_vllm, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.setenv("LD_PRELOAD", "/opt/mine.so")
    env, changes = cpu_vllm.env(offline=True, cpus=2)
    assert env["OMP_NUM_THREADS"] == "7" and env["LD_PRELOAD"] == "/opt/mine.so"
    assert "OMP_NUM_THREADS" not in changes and "LD_PRELOAD" not in changes


def test_gpu_builds_get_no_cpu_tuning(tmp_path, monkeypatch):
    for key in TUNING:
        monkeypatch.delenv(key, raising=False)
    _, changes = Vllm(tmp_path / "vllm", cpu_build=False).env(offline=True, cpus=2)
    assert not set(changes) & set(TUNING)


def test_find_tcmalloc_returns_none_when_not_installed(tmp_path):
    assert find_tcmalloc((str(tmp_path),)) is None


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], {"tp": 1, "pp": 1, "dp": 1}),
        (["--tensor-parallel-size", "2"], {"tp": 2, "pp": 1, "dp": 1}),
        (["--tensor-parallel-size=4", "-pp", "2"], {"tp": 4, "pp": 2, "dp": 1}),
        (["-dp", "2", "--data-parallel-size", "3"], {"tp": 1, "pp": 1, "dp": 3}),
        (["--tensor-parallel-size"], {"tp": 1, "pp": 1, "dp": 1}),
    ],
)
def test_parallel_sizes_are_read_like_vllm_reads_them(flags, expected):
    assert parallel_sizes(flags) == expected


def test_cpu_serve_plan_notes_a_missing_tcmalloc(run, tiny_model, monkeypatch):
    monkeypatch.setattr(vllm_engine, "_LIB_DIRS", (str(Path("/nonexistent")),))
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    result = run("serve", "--model", tiny_model, "--dry-run")
    assert result.exit_code == 0
    assert "apt-get install libtcmalloc-minimal4" in result.stderr
