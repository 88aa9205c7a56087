"""Readiness: time from `lf-wrap serve --detach` to a server answering /health, vs the same
vLLM command started by hand (the command and variables `lf-wrap serve --dry-run` prints),
polled every 50 ms, with the same model (the demo's).

Measured with a cold compile cache (vLLM's and torch inductor's cache folders fresh for every
start: the first start of a model on a machine) and a warm one (a folder one untimed start
has filled: every start after). The two ways alternate start by start, the order flipping
every round, so that this machine's drift does not favour either.

Target: lf-wrap adds <= 5% to either.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_serving import free_port, printed_command, wait_health
from common import LFW, make_project, save, table


def cache_env(folder: Path) -> dict[str, str]:
    """Where vLLM and torch inductor keep what they compile: one folder for both."""
    return {"VLLM_CACHE_ROOT": str(folder / "vllm"), "TORCHINDUCTOR_CACHE_DIR": str(folder / "inductor")}


def lf_wrap_start(serve: list[str], stop: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([*serve, "--detach", "--port", str(free_port())], check=True, capture_output=True, env=env)
    seconds = time.perf_counter() - start
    subprocess.run(stop, check=True, capture_output=True, env=env)
    return seconds


def plain_start(serve: list[str], env: dict[str, str]) -> float:
    """The printed command, run by hand: `VAR=value ... python -m vllm... --port N`."""
    port = free_port()
    line = (
        subprocess.run([*serve, "--dry-run", "--port", str(port)], check=True, capture_output=True, text=True, env=env)
        .stdout.strip()
        .splitlines()[-1]
    )
    variables, command = printed_command(line)
    run_env = {**env, **variables}
    start = time.perf_counter()
    proc = subprocess.Popen(
        command, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_health(f"http://127.0.0.1:{port}/health", proc, poll_s=0.05)
        return time.perf_counter() - start
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)


def own_work(serve: list[str], env: dict[str, str], runs: int = 5) -> float:
    """lf-wrap's part measured alone: `serve --dry-run` is everything it does before starting vLLM
    (start-up, project file, the plan and its checks); a start's noise is +-10%, this is not."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([*serve, "--dry-run", "--port", str(free_port())], check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="one cold start each way: proves the bench runs")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rounds = 1 if args.quick else args.rounds
    caches = ("cold",) if args.quick else ("cold", "warm")
    times: dict[str, dict[str, list[float]]] = {c: {"lf_wrap": [], "plain": []} for c in caches}
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(Path(tmp) / "p")
        cfg = str(project / "lf-wrap.yaml")
        model = project / "models" / "tiny-qwen2"
        serve = [LFW, "serve", "--config", cfg, "--model", str(model), "--set", "run_name=ready"]
        stop = [LFW, "serve", "stop", "--config", cfg, "--set", "run_name=ready"]
        base = {**os.environ, "HF_HUB_OFFLINE": "1"}
        warm = {**base, **cache_env(Path(tmp) / "warm")}
        if "warm" in caches:
            plain_start(serve, warm)  # untimed: fills the warm cache
        for r in range(rounds):
            order = ("lf_wrap", "plain") if r % 2 == 0 else ("plain", "lf_wrap")
            for cache in caches:
                for who in order:
                    env = warm if cache == "warm" else {**base, **cache_env(Path(tmp) / f"cold-{r}-{who}")}
                    seconds = lf_wrap_start(serve, stop, env) if who == "lf_wrap" else plain_start(serve, env)
                    times[cache][who].append(seconds)
                    print(f"  round {r + 1}/{rounds}: {who} {cache} {seconds:.1f} s", flush=True)
        own_s = own_work(serve, base, runs=1 if args.quick else 5)
    out: dict[str, Any] = {"own_work_s": own_s}
    rows = []
    for cache, t in times.items():
        lf, plain = statistics.median(t["lf_wrap"]), statistics.median(t["plain"])
        out[cache] = {"lf_wrap_s": lf, "plain_s": plain, "added": lf / plain - 1, "runs": t}
        rows.append(
            (f"{cache} compile cache", f"lf-wrap {lf:.1f} s, plain vllm {plain:.1f} s -> {lf / plain - 1:+.1%}")
        )
    last = caches[-1]
    share = own_s / out[last]["plain_s"]
    rows.append(("lf-wrap's own work (serve --dry-run)", f"{own_s:.2f} s = {share:.1%} of a {last} start"))
    table(rows)
    worst = max(out[c]["added"] for c in caches)
    added = ", ".join(f"{out[c]['added']:+.1%} {c} ({out[c]['plain_s']:.0f} s plain)" for c in caches)
    save(
        "readiness",
        {
            "compares": "`lf-wrap serve --detach` until ready vs the same `vllm serve` command run by hand, "
            f"demo model, {' and '.join(caches)} compile cache",
            "summary": f"lf-wrap adds {added}, medians of {rounds} interleaved starts; its own work before vLLM "
            f"starts {own_s:.2f} s ({share:.1%} of a {last} start)",
            "target": "<= +5%",
            "met": worst <= 0.05,
            **out,
        },
    )


if __name__ == "__main__":
    main()
