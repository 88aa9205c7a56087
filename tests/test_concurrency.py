"""dataset_info.json under concurrent writers and SIGKILL: never partial, never lost."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time

import pytest

from tests.helpers import LFW

ROW = {"instruction": "q", "input": "", "output": "a"}


WRITERS = 8  # each one its own lf-wrap process; the slow stress run below adds SIGKILL to the mix


def test_concurrent_registers_keep_every_entry(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "dataset_info.json").write_text(json.dumps({"earlier": {"file_name": "earlier.json"}}))
    procs = []
    for i in range(WRITERS):
        src = tmp_path / f"src{i}.json"
        src.write_text(json.dumps([{**ROW, "instruction": f"q{i}"}]))
        procs.append(subprocess.Popen([LFW, "data", "register", str(src), "--name", f"ds{i}", "--dataset-dir", str(d)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))  # fmt: skip
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    info = json.loads((d / "dataset_info.json").read_text())
    assert info["earlier"] == {"file_name": "earlier.json"}
    assert sorted(info) == sorted(["earlier", *(f"ds{i}" for i in range(WRITERS))])
    for i in range(WRITERS):
        assert json.loads((d / f"ds{i}.json").read_text())[0]["instruction"] == f"q{i}"
    assert not list(d.glob(".*.tmp"))


@pytest.mark.slow  # a 25 s stress run: the full tier (make test), not the edit loop
def test_sigkill_at_random_moments_never_leaves_a_partial_file(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    base = {f"old{i}": {"file_name": f"old{i}.json", "columns": {"prompt": "instruction"}} for i in range(200)}
    (d / "dataset_info.json").write_text(json.dumps(base, indent=2))
    src = tmp_path / "src.json"
    src.write_text(json.dumps([ROW] * 2000))
    rng = random.Random(0)
    seen_new = 0
    for i in range(50):
        proc = subprocess.Popen([LFW, "data", "register", str(src), "--name", f"new{i}", "--dataset-dir", str(d)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rng.uniform(0.05, 0.8))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        info = json.loads((d / "dataset_info.json").read_text())  # always complete, valid JSON
        assert {k: info[k] for k in base} == base
        seen_new += f"new{i}" in info
    # The next writer clears temp files a killed writer left behind.
    ok = subprocess.run([LFW, "data", "register", str(src), "--name", "final", "--dataset-dir", str(d)],
                        capture_output=True, check=False)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert not list(d.glob(".*.tmp"))
    assert json.loads((d / "dataset_info.json").read_text())["final"]["file_name"] == "final.json"
    print(f"kills: 50, registers that completed before the kill: {seen_new}")


@pytest.mark.parametrize("name", ["../evil", "a/b", "x\ny", "a: b", 'q"'])
def test_hostile_dataset_names_never_reach_a_file_or_key(run, tmp_path, name):
    src = tmp_path / "s.json"
    src.write_text(json.dumps([ROW]))
    result = run("data", "register", src, "--name", name, "--dataset-dir", "d")
    assert result.exit_code == 2 and "invalid dataset name" in result.stderr
    assert not (tmp_path / "d" / "dataset_info.json").exists()
