"""Shared helpers for the benchmarks: timing child processes, peak memory, results files.

Every figure a benchmark reports is a ratio of two things measured side by side in the
same run (medians of several runs): this machine is noisy, absolute times are not
comparable between runs. Nothing here is asserted in a test.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# The checkout whose engines and datasets are used (the smoke test runs a copy of bench/).
REPO = Path(os.environ.get("LF_WRAP_BENCH_REPO") or HERE.parent)
VENV_BIN = Path(sys.executable).parent
LFW = str(VENV_BIN / "lf-wrap")
TRAIN_PY = REPO / ".venvs" / "train" / "bin" / "python"
LF_CLI = REPO / ".venvs" / "train" / "bin" / "llamafactory-cli"
RESULTS = HERE / "results.json"

_RSS_WRAPPER = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode\n"
    "print(rc, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def measure(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[int, float, int]:
    """(exit code, wall seconds, peak RSS in KiB) of one child process."""
    out = subprocess.run(
        [sys.executable, "-c", _RSS_WRAPPER, *cmd], capture_output=True, text=True, env=env, cwd=cwd, check=True
    ).stdout.split()
    return int(out[0]), float(out[1]), int(out[2])


def median_time(cmd: list[str], runs: int, env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    return statistics.median(measure(cmd, env, cwd)[1] for _ in range(runs))


def compile_lf_wrap() -> None:
    """Byte-compile lf-wrap's modules (what `pip install` does; a no-op when they already are)."""
    spec = importlib.util.find_spec("lf_wrap")
    if spec is None or not spec.submodule_search_locations:  # lf-wrap not importable here
        return
    package = next(iter(spec.submodule_search_locations))
    subprocess.run([sys.executable, "-m", "compileall", "-q", package], check=True, capture_output=True)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = ""
    with contextlib.suppress(OSError):  # the SIMD the CPU kernels use: results differ between AVX2 and AVX-512
        text = Path("/proc/cpuinfo").read_text()
        flags = "AVX-512" if " avx512f" in text else "AVX2" if " avx2" in text else ""
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "simd": flags,
        "arch": platform.machine(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def save(name: str, result: dict[str, Any]) -> None:
    """Merge one benchmark's result into bench/results.json and rewrite bench/results.md."""
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data["machine"] = machine()
    data.setdefault("benchmarks", {})[name] = {"measured": datetime.now(UTC).isoformat(timespec="seconds"), **result}
    RESULTS.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    write_markdown(data)


MET = {True: "yes", False: "**no**", None: "-"}  # None: a row kept for information, with no target


def write_markdown(data: dict[str, Any]) -> None:
    (HERE / "results.md").write_text("# Benchmark results\n\n" + results_markdown(data))


def results_markdown(data: dict[str, Any]) -> str:
    """The results table with its date and machine: bench/results.md and the README's benchmark
    section (docs/docgen.py `bench_results`, refreshed by `make bench`) both show this."""
    m = data["machine"]
    dates = sorted(r["measured"][:10] for r in data.get("benchmarks", {}).values())
    when = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
    cpu = ", ".join(x for x in (m["cpu"], m.get("simd"), m.get("arch")) if x)
    lines = [
        f"Measured {when} by `make bench` on {m['cpus']} CPUs ({cpu}), Python {m['python']}.",
        "Each row is a ratio of two things measured side by side in the same run (medians), never an",
        "absolute promise.",
        "",
        "| benchmark | compares | result | target | met | measured |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in data.get("benchmarks", {}).items():
        lines.append(
            f"| {name} | {r.get('compares', '')} | {r.get('summary', '')} | {r.get('target', '')} | "
            f"{MET[r.get('met')]} | {r['measured'][:10]} |"
        )
    return "\n".join(lines) + "\n"


def table(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")


def now() -> float:
    return time.perf_counter()


def make_project(root: Path) -> Path:
    """A project folder with the tiny model and the demo dataset registered (as make demo does)."""
    root.mkdir(parents=True, exist_ok=True)
    model = root / "models" / "tiny-qwen2"
    if not (model / "config.json").exists():
        subprocess.run([LFW, "model", "tiny", str(model)], check=True, capture_output=True)
    subprocess.run(
        [
            LFW,
            "data",
            "register",
            str(REPO / "datasets" / "magic_conch.json"),
            "--name",
            "magic_conch",
            "--dataset-dir",
            str(root / "data"),
        ],
        check=True,
        capture_output=True,
    )
    (root / "lf-wrap.yaml").write_text(
        subprocess.run(
            [sys.executable, "-c", "from lf_wrap.project.config import init_text; print(init_text(), end='')"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    return root
