"""The memory plan against the memory real CPU training runs take (issue 26, item 3).

For each model (the demo's tiny model, the 24.7 M bench model, SmolLM2-135M-Instruct), method
(LoRA, full), batch (1, 4) and cutoff (256, 1024): `lf-wrap train` for 2 optimizer steps on rows
longer than the cutoff (every batch is batch x cutoff tokens, as the plan assumes), and its peak
resident memory (the largest process under it: LLaMA-Factory's, getrusage's ru_maxrss) against the
plan lf-wrap prints before the model loads (lf_wrap/project/memory.py, with the run's settings).

    python bench/memory_sweep.py [--quick] [--models tiny,bench,smollm2]

Writes bench/memory_sweep.json (the README's table: docs/docgen.py `memory_sweep`). --quick: the
tiny model, two runs, written to bench/memory_sweep.quick.json: the script runs, nothing more.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import HERE, LFW, REPO, machine, measure

sys.path.insert(0, str(REPO))
from lf_wrap.model.folder import count_parameters
from lf_wrap.project.memory import GIB, Shape, TrainSetup, train_plan

TEMPLATES = {"tiny": "qwen", "bench": "qwen", "smollm2": "smollm2"}
GRID = list(itertools.product(("lora", "full"), (1, 4), (256, 1024)))
QUICK_GRID = [("lora", 1, 256), ("full", 4, 256)]
STEPS = 2
BOUND = 0.25  # the issue's bound: within +-25% of the measured peak


def model_dirs(root: Path, wanted: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for name in wanted:
        if name == "smollm2":
            folder = REPO / "models" / "smollm2"
            if not (folder / "config.json").is_file():
                print("smollm2: skipped: no models/smollm2 (make demo-real imports it)")
                continue
            out[name] = folder
            continue
        folder = root / "models" / name
        size = [] if name == "tiny" else ["--size", "bench"]
        subprocess.run([LFW, "model", "tiny", str(folder), *size], check=True, capture_output=True)
        out[name] = folder
    return out


def long_rows(path: Path) -> None:
    """16 rows, each longer than 1024 tokens with any tokenizer, so each batch fills the cutoff."""
    words = [
        "the",
        "magic",
        "conch",
        "shell",
        "says",
        "maybe",
        "someday",
        "and",
        "then",
        "nothing",
        "at",
        "all",
        "so",
        "ask",
        "again",
    ]
    rows = [{"instruction": f"Tell story {i}.", "input": "",
             "output": " ".join(words[(i + k) % len(words)] for k in range(2400))} for i in range(16)]  # fmt: skip
    path.write_text(json.dumps(rows), encoding="utf-8")


def project(root: Path, model: Path, template: str, method: str, batch: int, cutoff: int) -> Path:
    run = f"mem-{model.name}-{method}-b{batch}-c{cutoff}"
    config = root / f"{run}.yaml"
    train = {"max_steps": STEPS, "per_device_train_batch_size": batch, "gradient_accumulation_steps": 1,
             "cutoff_len": cutoff, "logging_steps": 1, "save_strategy": "no", "use_cpu": True, "bf16": False,
             "lora_rank": 8, "learning_rate": 1e-4}  # fmt: skip
    config.write_text(json.dumps({"run_name": run, "model": str(model), "template": template, "method": method,
                                  "datasets": ["long"], "dataset_dir": str(root / "data"), "runs_dir": str(root / "runs"),
                                  "train": train}), encoding="utf-8")  # fmt: skip
    return config


def shape_of(model: Path) -> Shape:
    return Shape.from_config(json.loads((model / "config.json").read_text()), count_parameters(model))


def planned(shape: Shape, method: str, batch: int, cutoff: int) -> dict[str, float]:
    """The plan `lf-wrap train` prints for this run on a CPU (tests/test_memory_plan.py recomputes it)."""
    setup = TrainSetup(method=method, precision="fp32", lora_rank=8, batch=batch, cutoff=cutoff, gpu=False)
    plan = train_plan(shape, setup)
    return {"total_gib": plan.total / GIB, **{t.name: round(t.bytes / GIB, 3) for t in plan.terms}}


def verdict(runs: list[dict[str, Any]]) -> dict[str, Any]:
    worst = max(abs(r["error"]) for r in runs)
    return {"bound": BOUND, "worst_error": worst, "met": worst <= BOUND}


def replan(path: Path) -> None:
    """The estimator changed, the runs did not: the plans and their errors again, from each run's shape."""
    data = json.loads(path.read_text())
    for r in data["runs"]:
        plan = planned(Shape(**r["shape"]), r["method"], r["batch"], r["cutoff"])
        r.update(
            plan=plan,
            planned_gib=round(plan["total_gib"], 3),
            error=round(plan["total_gib"] / r["measured_gib"] - 1, 3),
        )
        print(f"  {r['model']:<8} {r['method']:<4} b{r['batch']} c{r['cutoff']:<5} peak {r['measured_gib']:6.2f} GiB  "
              f"plan {r['planned_gib']:6.2f} GiB  {r['error']:+.0%}")  # fmt: skip
    data.update(verdict(data["runs"]), replanned=datetime.now(UTC).date().isoformat())
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"worst |plan/measured - 1| = {data['worst_error']:.0%} (bound {BOUND:.0%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the tiny model, two runs (smoke test)")
    parser.add_argument("--models", default="tiny,bench,smollm2")
    parser.add_argument("--replan", action="store_true",
                        help="keep memory_sweep.json's measurements, recompute each plan with the estimator as it is")  # fmt: skip
    args = parser.parse_args()
    if args.replan:
        replan(HERE / "memory_sweep.json")
        return
    grid = QUICK_GRID if args.quick else GRID
    wanted = ["tiny"] if args.quick else args.models.split(",")
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="memory-sweep-") as tmp:
        root = Path(tmp)
        long_rows(root / "long.json")
        subprocess.run([LFW, "data", "register", str(root / "long.json"), "--name", "long",
                        "--dataset-dir", str(root / "data")], check=True, capture_output=True)  # fmt: skip
        for name, model in model_dirs(root, wanted).items():
            for method, batch, cutoff in grid:
                config = project(root, model, TEMPLATES[name], method, batch, cutoff)
                cmd = [LFW, "train", "--config", str(config), "--no-template-check", "--overwrite"]
                rc, seconds, peak_kib = measure(cmd, cwd=root)
                if rc != 0:
                    log = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)
                    raise SystemExit(f"{name} {method} b{batch} c{cutoff}: train failed:\n{log.stdout}{log.stderr}")
                shape = shape_of(model)
                plan = planned(shape, method, batch, cutoff)
                measured = peak_kib / 1024**2
                row = {"model": name, "params": count_parameters(model), "method": method, "batch": batch,
                       "cutoff": cutoff, "measured_gib": round(measured, 3), "planned_gib": round(plan["total_gib"], 3),
                       "error": round(plan["total_gib"] / measured - 1, 3), "seconds": round(seconds, 1),
                       "plan": plan, "shape": asdict(shape)}  # fmt: skip
                runs.append(row)
                print(f"  {name:<8} {method:<4} b{batch} c{cutoff:<5} peak {measured:6.2f} GiB  plan "
                      f"{plan['total_gib']:6.2f} GiB  {row['error']:+.0%}  ({seconds:.0f} s)", flush=True)  # fmt: skip
    out = {"date": datetime.now(UTC).date().isoformat(), "machine": machine(), "steps": STEPS, **verdict(runs),
           "runs": runs}  # fmt: skip
    target = HERE / ("memory_sweep.quick.json" if args.quick else "memory_sweep.json")
    target.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(
        f"worst |plan/measured - 1| = {out['worst_error']:.0%} (bound {BOUND:.0%}): {'met' if out['met'] else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
