"""Smoke test: every benchmark script runs on tiny inputs (--quick). No timing is asserted."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from .conftest import REPO

SCRIPTS = sorted(p.name for p in (REPO / "bench").glob("bench_*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_runs_on_tiny_inputs(script, tmp_path):
    bench = tmp_path / "bench"
    shutil.copytree(REPO / "bench", bench, ignore=shutil.ignore_patterns("results.*"))
    # Run the copy so the checkout's results files stay as the last real `make bench` left them.
    done = subprocess.run(
        [sys.executable, str(bench / script), "--quick"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        timeout=600,
        env={**__import__("os").environ, "LF_WRAP_BENCH_REPO": str(REPO)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip()
    if script != "bench_pipeline.py":
        results = json.loads((bench / "results.json").read_text())
        name = script.removeprefix("bench_").removesuffix(".py")
        # bench_serving --quick measures only the toy model (its entry: serving_toy)
        entry = results["benchmarks"].get(name) or results["benchmarks"].get(f"{name}_toy")
        assert entry and entry["summary"], sorted(results["benchmarks"])
