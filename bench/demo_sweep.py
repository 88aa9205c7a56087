"""Does the demo recipe converge on every seed and thread count? (`make sweep`)

For each seed × OMP_NUM_THREADS (× CPU instruction set) this trains the demo
(examples/magic_conch.yaml) through the real `lf-wrap train`, merges it with
`lf-wrap export`, and counts how many of the 56 training answers the merged model
reproduces exactly with greedy decoding. A recipe is good when in every run the *largest*
loss logged over the last 10% of the steps is <= 0.25 (not only the final one: a run that
spikes at the end fails however low it was before) and >= 80% of the answers come back
exactly: floating-point rounding differs between machines
(AVX2 vs AVX-512 kernels, thread counts), so a recipe on the edge of convergence passes
on one machine and fails on the next. `--isa avx2` runs torch's AVX2 kernels
(ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA) to stand in for a machine without AVX-512.

    python bench/demo_sweep.py                       # seeds 0-19, 1 thread
    python bench/demo_sweep.py --isa native,avx2     # and again with AVX2 kernels
    python bench/demo_sweep.py --set learning_rate=1e-3 --seeds 0,1   # try a variant

Prints a table and writes bench/demo_sweep_<simd>.json (avx2, avx-512): one file per kind of machine,
which the README shows side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import REPO, VENV_BIN, machine

LFW = str(VENV_BIN / "lf-wrap")
MAX_LOSS = 0.25
TAIL = 0.10  # the end of the trajectory that is judged: the last 10% of the steps
MIN_GOLDEN = 0.80
ISA_ENV = {"native": {}, "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}}


class CpuSlots:
    """At most `total` threads busy at once: 1-thread runs go two at a time on 2 CPUs."""

    def __init__(self, total: int) -> None:
        self.free = total
        self.cond = threading.Condition()

    def take(self, n: int) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.free >= n)
            self.free -= n

    def give(self, n: int) -> None:
        with self.cond:
            self.free += n
            self.cond.notify_all()


def sh(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        done = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed (exit {done.returncode}); see {log}")


def one_run(work: Path, seed: int, threads: int, isa: str, sets: list[str], slots: CpuSlots) -> dict[str, Any]:
    name = f"sweep-s{seed}-t{threads}-{isa}"
    # PASSIVE: idle OpenMP threads sleep instead of spinning. It changes no result (same
    # threads, same work split) but a 2-thread run on a busy machine took 20 min without it.
    env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ, "OMP_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads), **ISA_ENV[isa]}  # fmt: skip
    log = work / f"{name}.log"
    common = ["--config", "lf-wrap.yaml", "--set", f"run_name={name}", "--set", f"seed={seed}"]
    for s in sets:
        common += ["--set", s]
    slots.take(threads)
    started = time.monotonic()
    try:
        sh([LFW, "train", *common, "--overwrite"], work, env, log)
        train_s = time.monotonic() - started
        sh([LFW, "export", *common, "--overwrite"], work, env, log)
        merged = work / "runs" / name / "merged"
        out = subprocess.run(
            [sys.executable, "-m", "lf_wrap.model.golden", str(merged), str(REPO / "datasets" / "magic_conch.json")],
            cwd=work, env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
    finally:
        slots.give(threads)
    golden = json.loads(out.stdout)
    manifest = json.loads((work / "runs" / name / "manifest.json").read_text())
    loss = manifest["train"]["final_loss"]
    tail = tail_loss(work / "runs" / name / "output" / "trainer_log.jsonl")
    pct = golden["reproduced"] / golden["rows"]
    shutil.rmtree(work / "runs" / name / "output", ignore_errors=True)  # checkpoints: MBs per run
    return {
        "seed": seed, "threads": threads, "isa": isa, "final_loss": loss, "tail_max_loss": tail,
        "golden": golden["reproduced"], "rows": golden["rows"], "golden_pct": round(100 * pct, 1),
        "train_s": round(train_s, 1), "ok": tail is not None and tail <= MAX_LOSS and pct >= MIN_GOLDEN,
    }  # fmt: skip


def tail_loss(trainer_log: Path) -> float | None:
    """The largest loss logged over the last TAIL of the steps (LLaMA-Factory's trainer_log.jsonl)."""
    logged = [json.loads(line) for line in trainer_log.read_text().splitlines() if line.strip()]
    points = [(e["current_steps"], e["loss"]) for e in logged if e.get("loss") is not None]
    if not points:
        return None
    total = max(e.get("total_steps") or 0 for e in logged) or points[-1][0]
    return max(loss for step, loss in points if step >= (1 - TAIL) * total)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default=",".join(map(str, range(20))))
    ap.add_argument("--threads", default="1")
    ap.add_argument("--isa", default="native", help="native and/or avx2, comma-separated")
    ap.add_argument("--project", default=str(REPO / "examples" / "magic_conch.yaml"))
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--cpus", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--model-dir", help="a prebuilt model folder instead of `lf-wrap model tiny`")
    ap.add_argument("--workdir", help="keep the runs here (default: a temp folder, removed)")
    ap.add_argument("--out", help="default: bench/demo_sweep_<simd>.json, the kernels' instruction set")
    args = ap.parse_args()
    simd = "avx2" if args.isa == "avx2" else (machine()["simd"] or "unknown").lower()
    args.out = args.out or str(Path(__file__).with_name(f"demo_sweep_{simd}.json"))

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="lfw-sweep-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if args.model_dir:
        shutil.copytree(args.model_dir, work / "models" / "tiny-qwen2", dirs_exist_ok=True)
    else:
        sh([LFW, "model", "tiny", "models/tiny-qwen2"], work, env, work / "setup.log")
    sh([LFW, "data", "register", str(REPO / "datasets" / "magic_conch.json"), "--name", "magic_conch",
        "--dataset-dir", "data"], work, env, work / "setup.log")  # fmt: skip
    shutil.copyfile(args.project, work / "lf-wrap.yaml")

    combos = [(int(s), int(t), i) for i in args.isa.split(",") for s in args.seeds.split(",")
              for t in args.threads.split(",")]  # fmt: skip
    slots = CpuSlots(max(args.cpus, max(t for _, t, _ in combos)))
    started = time.monotonic()
    print(f"{'seed':>4} {'threads':>7} {'isa':>6} {'final loss':>10} {'tail max':>8} {'golden':>12} {'train s':>7}  ok",
          flush=True)  # fmt: skip
    results = []
    with ThreadPoolExecutor(max_workers=args.cpus) as pool:
        futures = [pool.submit(one_run, work, s, t, i, args.sets, slots) for s, t, i in combos]
        for f in futures:
            r = f.result()
            results.append(r)
            loss = "n/a" if r["final_loss"] is None else f"{r['final_loss']:.4f}"
            tail = "n/a" if r["tail_max_loss"] is None else f"{r['tail_max_loss']:.4f}"
            print(f"{r['seed']:>4} {r['threads']:>7} {r['isa']:>6} {loss:>10} {tail:>8} "
                  f"{r['golden']:>3}/{r['rows']} {r['golden_pct']:>5.1f}% {r['train_s']:>7.1f}  "
                  f"{'yes' if r['ok'] else 'NO'}", flush=True)  # fmt: skip
    ok = all(r["ok"] for r in results)
    worst = min(results, key=lambda r: r["golden_pct"])
    print(f"{sum(r['ok'] for r in results)}/{len(results)} runs keep loss <= {MAX_LOSS} over the last "
          f"{TAIL:.0%} of steps and reach >= "
          f"{MIN_GOLDEN:.0%} golden; worst {worst['golden_pct']}% (seed {worst['seed']}, {worst['threads']} threads, "
          f"{worst['isa']}); {time.monotonic() - started:.0f} s")  # fmt: skip
    Path(args.out).write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d"), "machine": machine(), "project": Path(args.project).name,
        "sets": args.sets, "targets": {"max_loss_last_10pct": MAX_LOSS, "min_golden": MIN_GOLDEN},
        "all_ok": ok, "runs": results,
    }, indent=2) + "\n")  # fmt: skip
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
