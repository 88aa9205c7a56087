"""GGUF: llama.cpp's llama-server on the run's q8_0 GGUF (`lf-wrap serve --engine llama.cpp`) vs vLLM
on its merged model (`lf-wrap serve`), same prompts, 64 output tokens per request (EOS ignored),
at concurrency 1 and 16; and `lf-wrap export --format gguf` time and size per quantisation.

Two models, each an exported run that must exist already:
- the demo (`make demo`: runs/magic-conch, the 0.46 M-parameter toy: measures server overhead);
- SmolLM2-135M-Instruct (`make demo-real`: real/runs/magic-conch-en): the row that counts.

Both servers are started first and measured in turn, three rounds after one untimed pass; the
median round is reported, with the ratio llama.cpp / vLLM. Each server runs as lf-wrap starts it
(vLLM with lf-wrap's CPU settings; llama-server with its own defaults: 4 slots, all CPUs).

    python bench/bench_gguf.py [--quick]

--quick (the smoke test) exports and serves the untrained tiny model instead (a temporary project
whose run is a "full fine-tune" of it), llama.cpp only: the script runs, its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench_serving import chat_call, free_port, load, median_round
from common import LFW, REPO, make_project, save, table

MODELS = {"demo (toy, 0.46 M)": (REPO / "examples" / "magic_conch.yaml", REPO / "runs" / "magic-conch"),
          "SmolLM2-135M": (REPO / "real" / "lf-wrap.yaml", REPO / "real" / "runs" / "magic-conch-en")}  # fmt: skip
QUANTS = ("f16", "q8_0", "q4_k_m")
PLAN = [(1, 8), (16, 64)]
QUICK_PLAN = [(1, 2), (16, 16)]


def export_times(config: Path) -> dict[str, Any]:
    out = {}
    for quant in QUANTS:
        done = subprocess.run([LFW, "export", "--config", str(config), "--format", "gguf", "--quant", quant,
                               "--overwrite", "--json"], capture_output=True, text=True, check=True, cwd=REPO)  # fmt: skip
        result = json.loads(done.stdout)
        out[quant] = {"seconds": result["seconds"], "mb": round(result["bytes"] / 1e6, 1)}
    return out


def measure(config: Path, run: Path, plan: list[tuple[int, int]], rounds: int, vllm: bool = True) -> dict[str, Any]:
    gguf = run / "gguf" / f"{run.name}.q8_0.gguf"
    calls = {}
    engines = [("vllm", [])] if vllm else []
    engines.append(("llama.cpp", ["--engine", "llama.cpp", "--gguf", str(gguf)]))
    with contextlib.ExitStack() as stack:
        for name, extra in engines:
            port, run_name = free_port(), f"bench-{name.replace('.', '')}"
            sets = ["--set", f"run_name={run_name}"] if name == "llama.cpp" else []
            serve = [LFW, "serve", "--config", str(config), *sets, "--served-model-name", "bench", *extra]
            subprocess.run([*serve, "--detach", "--port", str(port)], check=True, capture_output=True, cwd=REPO)
            stack.callback(subprocess.run, [LFW, "serve", "stop", "--config", str(config), *sets], capture_output=True,
                           cwd=REPO)  # fmt: skip
            calls[name] = chat_call(port)
        for call in calls.values():  # untimed pass
            for concurrency, requests in plan:
                load(call, concurrency, requests)
        measured: dict[str, dict[int, list[dict[str, float]]]] = {n: {c: [] for c, _ in plan} for n in calls}
        for _ in range(rounds):
            for concurrency, requests in plan:
                for name, call in calls.items():
                    measured[name][concurrency].append(load(call, concurrency, requests))
    out: dict[str, Any] = {}
    for concurrency, _ in plan:
        row = {name: median_round(measured[name][concurrency]) for name in calls}
        if "vllm" in row:
            row["ratio_tok_s"] = round(row["llama.cpp"]["tok_s"] / row["vllm"]["tok_s"], 2)
        out[f"c{concurrency}"] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer requests and one round (smoke test)")
    args = parser.parse_args()
    plan, rounds = (QUICK_PLAN, 1) if args.quick else (PLAN, 3)
    models = MODELS
    if args.quick:
        root = Path(tempfile.mkdtemp(prefix="bench-gguf-"))
        make_project(root)
        config = root / "lf-wrap.yaml"
        text = (
            config.read_text()
            .replace("method: lora", "method: full")
            .replace("run_name: magic-conch", "run_name: quick")
        )
        config.write_text(text)
        run = root / "runs" / "quick"
        shutil.copytree(root / "models" / "tiny-qwen2", run / "output")  # a "full fine-tune": nothing trained
        models = {"untrained tiny model (--quick)": (config, run)}
    results: dict[str, Any] = {}
    lines: list[tuple[str, str]] = []
    parts = []
    for label, (config, run) in models.items():
        if not args.quick and not (run / "merged" / "config.json").is_file():
            print(f"{label}: skipped: no merged model in {run} (make demo / make demo-real first)")
            continue
        exports = export_times(config)
        served = measure(config, run, plan, rounds, vllm=not args.quick)
        results[label] = {"export": exports, "serving": served}
        for key, row in served.items():
            vllm = f"vLLM {row['vllm']['tok_s']:.0f} tok/s, " if "vllm" in row else ""
            ratio = f": {row['ratio_tok_s']:.2f}x" if "ratio_tok_s" in row else ""
            lines.append((f"{label} {key}", f"{vllm}llama.cpp q8_0 {row['llama.cpp']['tok_s']:.0f} tok/s{ratio}"))
        lines.append((f"{label} export", ", ".join(f"{q} {v['seconds']:.0f} s / {v['mb']} MB"
                                                   for q, v in exports.items())))  # fmt: skip
        ratios = ", ".join(f"{row['ratio_tok_s']:.2f}x at {key[1:]}" if "ratio_tok_s" in row
                           else f"{row['llama.cpp']['tok_s']:.0f} tok/s at {key[1:]}" for key, row in served.items())  # fmt: skip
        parts.append(f"{label}: {ratios}")
    table(lines)
    save("gguf", {
        "compares": "llama.cpp (q8_0 GGUF, `serve --engine llama.cpp`) vs vLLM (merged model), output tok/s",
        "summary": "llama.cpp / vLLM: " + "; ".join(parts), "target": "none: which wins where", "met": None,
        **results,
    })  # fmt: skip


if __name__ == "__main__":
    main()
