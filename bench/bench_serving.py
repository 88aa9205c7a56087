"""Serving: the tiny model behind `lf-wrap serve` (vLLM) vs the tutorials' FastAPI +
transformers `/generate` server (seeds_server.py): output tokens/s and p50/p95 latency at
concurrency 1 and 16, same prompts, same 64 output tokens per request (EOS ignored).

A third server, plain vLLM (the same command without the environment lf-wrap adds on CPU,
see lf_wrap/engines/vllm.py), shows what that tuning is worth, measured in the same run.
All three servers are started first and idle while another is measured; every round
measures each of them in turn (this machine's speed drifts by minutes, which must not
favour whichever server happens to go first), after one untimed pass at each concurrency;
the median of three rounds is reported, and the per-round ratios are kept in results.json.

Targets: >= 10x the seeds' server at concurrency 16, and no slower at concurrency 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from common import LFW, REPO, TRAIN_PY, make_project, save, table

TOKENS = 64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prompts() -> list[str]:
    rows = json.loads((REPO / "datasets" / "magic_conch.json").read_text(encoding="utf-8"))
    return [r["instruction"] for r in rows]


def load(call, concurrency: int, requests: int) -> dict[str, float]:  # noqa: ANN001
    ps = prompts()

    def one(i: int) -> tuple[float, int]:
        start = time.perf_counter()
        tokens = call(ps[i % len(ps)])
        return time.perf_counter() - start, tokens

    call(ps[0])  # warm-up
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - start
    lat = sorted(r[0] for r in results)
    return {
        "tok_s": sum(r[1] for r in results) / wall,
        "p50_s": statistics.median(lat),
        "p95_s": lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))],
        "requests": requests,
    }


def median_round(runs: list[dict[str, float]]) -> dict[str, Any]:
    ranked = sorted(runs, key=lambda r: r["tok_s"])
    return {**ranked[len(ranked) // 2], "rounds_tok_s": [round(r["tok_s"], 1) for r in runs]}


def chat_call(port: int):  # noqa: ANN201
    client = httpx.Client(timeout=120)

    def call(prompt: str) -> int:
        body = {
            "model": "bench",
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": TOKENS,
            "temperature": 0,
            "ignore_eos": True,
        }
        r = client.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body)
        r.raise_for_status()
        return r.json()["usage"]["completion_tokens"]

    return call


def plain_vllm_command(dry_run_line: str) -> list[str]:
    """`lf-wrap serve --dry-run` prints `VAR=value ... command`: keep the command, drop the variables."""
    return [w for w in shlex.split(dry_run_line) if not re.match(r"^[A-Z_][A-Z0-9_]*=", w)]


def wait_health(url: str, proc: subprocess.Popen | None, timeout_s: float = 300) -> None:
    end = time.time() + timeout_s
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not healthy in {timeout_s} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    plan = [(1, 4), (2, 4)] if args.quick else [(1, 32), (16, 256)]
    rounds = 1 if args.quick else 3
    names = ("vllm", "vllm_plain", "seeds")
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        project = make_project(Path(tmp) / "p")
        model = project / "models" / "tiny-qwen2"
        cfg = str(project / "lf-wrap.yaml")
        serve = [LFW, "serve", "--config", cfg, "--model", str(model), "--set", "run_name=bench"]
        calls = {}

        # 1. lf-wrap serve, as a user runs it
        port = free_port()
        subprocess.run([*serve, "--detach", "--port", str(port)], check=True, capture_output=True)
        stack.callback(
            subprocess.run, [LFW, "serve", "stop", "--config", cfg, "--set", "run_name=bench"], capture_output=True
        )
        calls["vllm"] = chat_call(port)

        # 2. the same vLLM command with vLLM's own defaults (no CPU tuning from lf-wrap)
        port = free_port()
        dry = subprocess.run([*serve, "--dry-run", "--port", str(port)], check=True, capture_output=True, text=True)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
        for key in ("LD_PRELOAD", "OMP_NUM_THREADS", "VLLM_ENABLE_V1_MULTIPROCESSING"):
            env.pop(key, None)
        plain = subprocess.Popen(
            plain_vllm_command(dry.stdout.strip().splitlines()[-1]),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        stack.callback(plain.wait, 60)
        stack.callback(os.killpg, plain.pid, signal.SIGTERM)
        wait_health(f"http://127.0.0.1:{port}/health", plain)
        calls["vllm_plain"] = chat_call(port)

        # 3. the tutorials' FastAPI + transformers server
        sport = free_port()
        seeds = subprocess.Popen(
            [str(TRAIN_PY), str(REPO / "bench" / "seeds_server.py"), str(model), str(sport)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        stack.callback(seeds.wait, 30)
        stack.callback(seeds.terminate)
        wait_health(f"http://127.0.0.1:{sport}/health", seeds)
        client = httpx.Client(timeout=600)

        def seeds_call(prompt: str) -> int:
            r = client.get(f"http://127.0.0.1:{sport}/generate", params={"prompt": prompt, "max_new_tokens": TOKENS})
            r.raise_for_status()
            return r.json()["tokens"]

        calls["seeds"] = seeds_call
        measured: dict[str, dict[int, list[dict[str, float]]]] = {n: {c: [] for c, _ in plan} for n in names}
        for name in names:  # untimed: every server sees every batch size once before it is measured
            for c, _ in plan:
                load(calls[name], c, c)
        for _ in range(rounds):
            for c, n in plan:
                for name in names:
                    measured[name][c].append(load(calls[name], c, n))
    results = {name: {str(c): median_round(measured[name][c]) for c, _ in plan} for name in names}
    per_round = {
        str(c): [
            round(v["tok_s"] / s["tok_s"], 2) for v, s in zip(measured["vllm"][c], measured["seeds"][c], strict=True)
        ]
        for c, _ in plan
    }
    rows = []
    ratios, tuning = {}, {}
    for c, _ in plan:
        v, pl, s = results["vllm"][str(c)], results["vllm_plain"][str(c)], results["seeds"][str(c)]
        ratios[c] = v["tok_s"] / s["tok_s"]
        tuning[c] = v["tok_s"] / pl["tok_s"]
        rows.append(
            (
                f"concurrency {c}",
                f"lf-wrap serve {v['tok_s']:,.0f} tok/s (p50 {v['p50_s']:.3f} s, p95 {v['p95_s']:.3f} s); "
                f"plain vLLM {pl['tok_s']:,.0f} tok/s (p50 {pl['p50_s']:.3f} s); "
                f"seeds {s['tok_s']:,.0f} tok/s (p50 {s['p50_s']:.3f} s, p95 {s['p95_s']:.3f} s) "
                f"-> {ratios[c]:.2f}x the seeds, {tuning[c]:.2f}x plain vLLM",
            )
        )
    table(rows)
    lo, hi = plan[0][0], plan[-1][0]
    save(
        "serving",
        {
            "compares": "`lf-wrap serve` (vLLM) vs the tutorials' FastAPI + transformers server",
            "summary": f"{ratios[hi]:.1f}x output tok/s at concurrency {hi}, {ratios[lo]:.2f}x at {lo} "
            f"(plain vLLM without lf-wrap's CPU settings: {ratios[hi] / tuning[hi]:.1f}x and "
            f"{ratios[lo] / tuning[lo]:.2f}x)",
            "target": ">= 10x at 16; >= 1x at 1",
            "met": ratios[hi] >= 10 and ratios[lo] >= 1,
            "results": results,
            "ratio_to_seeds_per_round": per_round,
            "output_tokens_per_request": TOKENS,
        },
    )


if __name__ == "__main__":
    main()
