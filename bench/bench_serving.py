"""Serving: a model behind `lf-wrap serve` (vLLM) vs the tutorials' FastAPI + transformers
`/generate` server (seeds_server.py): output tokens/s and p50/p95 latency at concurrency 1, 4,
16 and 64, same prompts, same 64 output tokens per request (EOS ignored).

Two models, each served by all three servers in turn:
- "bench": `lf-wrap model tiny --size bench`, Qwen2's shape at 24 M parameters (hidden 512,
  8 layers, grouped-query attention), big enough that a forward pass costs more than the
  server's bookkeeping, so batching shows. This is the row that counts.
- "toy": the demo's 0.46 M-parameter model, kept and labelled as such: there the one-request
  server runs a token as fast as vLLM runs a whole batch step, so its ratios measure Python
  overhead, not serving.

A third server, plain vLLM (the same command without the environment lf-wrap adds on CPU,
see lf_wrap/engines/vllm.py), shows what that tuning is worth, measured in the same run.
All three servers are started first and idle while another is measured; every round
measures each of them in turn (this machine's speed drifts by minutes, which must not
favour whichever server happens to go first), after one untimed pass at each concurrency;
the median of three rounds is reported, and the per-round ratios are kept in results.json.

Targets (bench model): >= 10x the seeds' server at concurrency 16 and >= 1x at 1; lf-wrap's CPU
settings >= plain vLLM at every concurrency.
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


def printed_command(dry_run_line: str) -> tuple[dict[str, str], list[str]]:
    """`lf-wrap serve --dry-run` prints `VAR=value ... command`: (the variables, the command)."""
    words = shlex.split(dry_run_line)
    n = next(i for i, w in enumerate(words) if not re.match(r"^[A-Z_][A-Z0-9_]*=", w))
    return dict(w.split("=", 1) for w in words[:n]), words[n:]


def plain_vllm_command(dry_run_line: str) -> list[str]:
    """The printed command without the variables lf-wrap sets (vLLM's own defaults)."""
    return printed_command(dry_run_line)[1]


def wait_health(url: str, proc: subprocess.Popen | None, timeout_s: float = 300, poll_s: float = 0.5) -> None:
    end = time.time() + timeout_s
    with httpx.Client(timeout=1) as client:  # one client: httpx.get() costs ~20 ms of CPU a call
        while time.time() < end:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.returncode}")
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(poll_s)
    raise RuntimeError(f"{url} not healthy in {timeout_s} s")


PLAN = {"bench": [(1, 8), (4, 16), (16, 64), (64, 64)], "toy": [(1, 32), (16, 256)]}
QUICK_PLAN = [(1, 2), (4, 4)]
NAMES = ("vllm", "vllm_plain", "seeds")


def build_model(project: Path, size: str) -> tuple[Path, int]:
    """The model to serve and its parameter count (from `lf-wrap model tiny --json`)."""
    model = project / "models" / f"{size}-qwen2"
    out = subprocess.run(
        [LFW, "model", "tiny", str(model), "--size", "demo" if size == "toy" else size, "--force", "--json"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return model, int(json.loads(out[out.index("{") :])["params"])


def measure_model(project: Path, model: Path, plan: list[tuple[int, int]], rounds: int) -> dict[str, Any]:
    """Start the three servers on `model`, measure them interleaved, stop them."""
    cfg = str(project / "lf-wrap.yaml")
    run_name = "bench"  # the served model name chat_call asks for
    serve = [LFW, "serve", "--config", cfg, "--model", str(model), "--set", f"run_name={run_name}"]
    calls = {}
    with contextlib.ExitStack() as stack:
        # 1. lf-wrap serve, as a user runs it
        port = free_port()
        subprocess.run([*serve, "--detach", "--port", str(port)], check=True, capture_output=True)
        stack.callback(
            subprocess.run,
            [LFW, "serve", "stop", "--config", cfg, "--set", f"run_name={run_name}"],
            capture_output=True,
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
        client = httpx.Client(timeout=1200)

        def seeds_call(prompt: str) -> int:
            r = client.get(f"http://127.0.0.1:{sport}/generate", params={"prompt": prompt, "max_new_tokens": TOKENS})
            r.raise_for_status()
            return r.json()["tokens"]

        calls["seeds"] = seeds_call
        measured: dict[str, dict[int, list[dict[str, float]]]] = {n: {c: [] for c, _ in plan} for n in NAMES}
        for name in NAMES:  # untimed: every server sees every batch size once before it is measured
            for c, _ in plan:
                load(calls[name], c, c)
        for r in range(rounds):
            for c, n in plan:
                for name in NAMES:
                    measured[name][c].append(load(calls[name], c, n))
                print(f"  {model.name}: round {r + 1}/{rounds}, concurrency {c} measured", flush=True)
    results = {name: {str(c): median_round(measured[name][c]) for c, _ in plan} for name in NAMES}
    per_round = {
        str(c): [
            round(v["tok_s"] / s["tok_s"], 2) for v, s in zip(measured["vllm"][c], measured["seeds"][c], strict=True)
        ]
        for c, _ in plan
    }
    return {"results": results, "ratio_to_seeds_per_round": per_round}


def report(label: str, params: int, plan: list[tuple[int, int]], measured: dict[str, Any]) -> dict[str, Any]:
    """Print the model's rows; the results.json entry with its ratios and targets."""
    results = measured["results"]
    rows = []
    to_seeds, to_plain = {}, {}
    for c, _ in plan:
        v, pl, s = results["vllm"][str(c)], results["vllm_plain"][str(c)], results["seeds"][str(c)]
        to_seeds[c] = v["tok_s"] / s["tok_s"]
        to_plain[c] = v["tok_s"] / pl["tok_s"]
        rows.append(
            (
                f"{label}, concurrency {c}",
                f"lf-wrap serve {v['tok_s']:,.0f} tok/s (p50 {v['p50_s']:.3f} s, p95 {v['p95_s']:.3f} s); "
                f"plain vLLM {pl['tok_s']:,.0f} tok/s (p50 {pl['p50_s']:.3f} s); "
                f"seeds {s['tok_s']:,.0f} tok/s (p50 {s['p50_s']:.3f} s, p95 {s['p95_s']:.3f} s) "
                f"-> {to_seeds[c]:.2f}x the seeds, {to_plain[c]:.2f}x plain vLLM",
            )
        )
    table(rows)
    lo, hi = plan[0][0], min(16, plan[-1][0])
    seeds_part = ", ".join(f"{to_seeds[c]:.1f}x at {c}" for c, _ in plan)
    plain_part = ", ".join(f"{to_plain[c]:.2f}x" for c, _ in plan)
    return {
        "summary": f"output tok/s vs the seeds' server: {seeds_part}; vs plain vLLM (no lf-wrap CPU settings): "
        f"{plain_part}",
        "target": f">= 10x at {hi}; >= 1x at {lo}; >= 1x plain vLLM at every concurrency",
        "met": to_seeds[hi] >= 10 and to_seeds[lo] >= 1 and min(to_plain.values()) >= 1,
        "model_params": params,
        "concurrency": [c for c, _ in plan],
        "ratio_to_seeds": {str(c): round(r, 2) for c, r in to_seeds.items()},
        "ratio_to_plain_vllm": {str(c): round(r, 3) for c, r in to_plain.items()},
        **measured,
        "output_tokens_per_request": TOKENS,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--models", help="comma-separated: bench, toy (default: both; --quick: toy, the fastest to start)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rounds = 1 if args.quick else args.rounds
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(Path(tmp) / "p")
        for size in (args.models or ("toy" if args.quick else "bench,toy")).split(","):
            plan = QUICK_PLAN if args.quick else PLAN[size]
            model, params = build_model(project, size)
            label = f"{size} model ({params / 1e6:.2f} M params)"
            entry = report(label, params, plan, measure_model(project, model, plan, rounds))
            what = (
                "toy model (0.46 M params; measures Python overhead, not serving)"
                if size == "toy"
                else (f"Qwen2-shape bench model ({params / 1e6:.1f} M params)")
            )
            if size == "toy":  # no target: its ratios measure per-request overhead, not serving
                entry.update(target="none (toy: a token costs less than vLLM's step overhead)", met=None)
            save(
                "serving" if size == "bench" else "serving_toy",
                {
                    "compares": f"`lf-wrap serve` (vLLM) vs the tutorials' FastAPI + transformers server, {what}",
                    **entry,
                },
            )


if __name__ == "__main__":
    main()
