"""What must hold beyond Linux with /proc and CPUs 0..n-1: the detached server's identity (psutil),
CPU binding inside the process's affinity set, and big dataset files compared without reading them whole."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from lf_wrap.engines.vllm import Vllm, cpu_list
from lf_wrap.steps import serve


@pytest.fixture
def sleeper() -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def test_the_start_time_comes_from_psutil_not_proc(monkeypatch):
    class FakeProcess:
        def __init__(self, pid: int) -> None:
            self.pid = pid

        def create_time(self) -> float:
            return 1234.5

    monkeypatch.setattr(psutil, "Process", FakeProcess)
    assert serve._start_time(4242) == 1234.5
    assert serve.process_matches({"pid": 4242, "start_time": 1234.5})
    assert not serve.process_matches({"pid": 4242, "start_time": 1000.0})  # a recycled pid


def test_stop_stops_the_recorded_server_and_a_recycled_pid_is_left_alone(tmp_path, sleeper):
    pidfile = tmp_path / "serve.json"
    info = {"pid": sleeper.pid, "pgid": sleeper.pid, "start_time": serve._start_time(sleeper.pid),
            "base_url": "http://127.0.0.1:1"}  # fmt: skip
    assert isinstance(info["start_time"], float)
    pidfile.write_text(json.dumps({**info, "start_time": info["start_time"] - 100}))  # another process's pid
    assert "was not running" in serve.stop(pidfile) and sleeper.poll() is None
    pidfile.write_text(json.dumps(info))
    assert serve.status(pidfile)["running"] is True
    assert serve.stop(pidfile).startswith(f"stopped the server (pid {sleeper.pid}")
    deadline = time.monotonic() + 10
    while sleeper.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sleeper.poll() is not None and not pidfile.exists()


@pytest.fixture
def cpu_vllm(tmp_path, monkeypatch) -> Vllm:
    for key in ("VLLM_ENABLE_V1_MULTIPROCESSING", "OMP_NUM_THREADS", "VLLM_CPU_OMP_THREADS_BIND", "LD_PRELOAD"):
        monkeypatch.delenv(key, raising=False)
    (tmp_path / "env" / "bin").mkdir(parents=True)
    return Vllm(tmp_path / "env" / "bin" / "vllm", cpu_build=True)


def test_cpu_binding_uses_the_processes_affinity_set_not_0_to_n(cpu_vllm, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {7, 4, 6, 5}, raising=False)
    _, changes = cpu_vllm.env(offline=True, workers=2)
    assert changes["VLLM_CPU_OMP_THREADS_BIND"] == "4-5|6-7"
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {2, 9}, raising=False)
    _, changes = cpu_vllm.env(offline=True, workers=2)
    assert changes["VLLM_CPU_OMP_THREADS_BIND"] == "2|9"
    _, changes = cpu_vllm.env(offline=True)  # two usable CPUs: a small machine, one thread left to the API
    assert changes["OMP_NUM_THREADS"] == "1"
    _, changes = cpu_vllm.env(offline=True, workers=2, cpus=[0, 1, 3, 8])
    assert changes["VLLM_CPU_OMP_THREADS_BIND"] == "0-1|3,8"


def test_cpu_list_is_a_linux_cpu_list():
    assert cpu_list([5, 0, 1, 2]) == "0-2,5" and cpu_list([3]) == "3" and cpu_list([]) == ""


def test_register_compares_an_existing_copy_without_reading_either_file_whole(run, tmp_path, monkeypatch):
    rows = [{"instruction": f"q{i}", "output": "a"} for i in range(10)]
    lines = "".join(json.dumps(r) + "\n" for r in rows)
    src = tmp_path / "big.jsonl"  # JSON Lines are validated streaming, so any whole read is the comparison's
    src.write_text(lines)
    first = run("data", "register", src, "--name", "big", "--dataset-dir", "data")
    assert first.exit_code == 0 and (tmp_path / "data" / "big.jsonl").read_bytes() == src.read_bytes()

    whole = Path.read_bytes

    def no_whole_reads(self: Path) -> bytes:
        assert self.suffix != ".jsonl", f"{self} read whole into memory"
        return whole(self)

    monkeypatch.setattr(Path, "read_bytes", no_whole_reads)
    again = run("data", "register", src, "--name", "big", "--dataset-dir", "data")
    assert again.exit_code == 0 and "'big' is already registered" in again.stdout
    other = tmp_path / "other" / "big.jsonl"
    other.parent.mkdir()
    other.write_text(lines.replace("q9", "q8"))  # same size, other bytes
    refused = run("data", "register", other, "--name", "big", "--dataset-dir", "data")
    assert refused.exit_code == 2 and "exists with different content" in refused.stderr
    forced = run("data", "register", other, "--name", "big", "--dataset-dir", "data", "--force")
    assert forced.exit_code == 0
    monkeypatch.undo()
    assert (tmp_path / "data" / "big.jsonl").read_bytes() == other.read_bytes()
