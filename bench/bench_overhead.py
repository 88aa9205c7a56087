"""Wrapper overhead: `lf-wrap train` vs a bare `llamafactory-cli train` on the same
rendered YAML (tiny model, demo dataset), alternating runs, medians.

Target: at most 3% extra wall time. Reported three ways: the wrapper alone
(--no-template-check); with the train/serve chat-template check the first time a
model/template pair is seen (one LLaMA-Factory import, a few seconds, independent of the
length of training); and with the check remembered (lf-wrap caches an agreement keyed by
the model's tokenizer files, the template and the training environment).

Whole-command A/B differences of a few percent drown in this machine's drift (tens of percent
within minutes), so each wrapped run is also split in two: the engine's own wall time (the
manifest's train.duration_s, from spawn to exit) and everything lf-wrap does around it (the
command's wall time less that). The second is what the wrapper adds, measured inside the same
run; the A/B shows the engine does not run slower under lf-wrap.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from common import LF_CLI, LFW, make_project, measure, save, table


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument(
        "--real",
        type=Path,
        metavar="PROJECT",
        help="a real model instead: the project `make demo-real` writes (real/lf-wrap.yaml), 1 epoch a run "
        "(a run of SmolLM2 is minutes: the wrapper's fixed cost is a smaller share of longer ones)",
    )
    ap.add_argument("--rounds", type=int, help="rounds of bare / wrapped / remembered (default: 4; --real: 3)")
    args = ap.parse_args()
    runs, epochs = (1, 2) if args.quick else (4, 30)
    if args.real:
        runs, epochs = 3, 1
    runs = args.rounds or runs
    with tempfile.TemporaryDirectory() as tmp:
        project = args.real.resolve().parent if args.real else make_project(Path(tmp) / "p")
        cfg = str(args.real.resolve() if args.real else project / "lf-wrap.yaml")
        common = ["--config", cfg, "--set", f"num_train_epochs={epochs}", "--set", "save_steps=100000"]
        yaml_text = subprocess.run([LFW, "render", "train", *common, "--set", "run_name=bare"],
                                   check=True, capture_output=True, text=True).stdout  # fmt: skip
        bare_yaml = Path(tmp) / "bare.yaml"
        bare_yaml.write_text(yaml_text.replace("overwrite_output_dir: false", "overwrite_output_dir: true"))
        env = {**os.environ, "DISABLE_VERSION_CHECK": "1", "HF_HUB_OFFLINE": "1"}
        lfw_env = {**os.environ, "LF_WRAP_CACHE_DIR": str(Path(tmp) / "cache")}  # starts empty
        wrapped, checked, bare = [], [], []

        def run_bare() -> None:
            rc, t, _ = measure([str(LF_CLI), "train", str(bare_yaml)], env=env, cwd=project)
            assert rc == 0
            bare.append(t)

        own: dict[str, list[float]] = {"wrapped": [], "remembered": []}  # lf-wrap's time around the engine

        def engine_s(run_name: str) -> float:
            """The engine's wall time in that run, as lf-wrap recorded it (spawn to exit)."""
            manifest = json.loads((project / "runs" / run_name / "manifest.json").read_text())
            return float(manifest["train"]["duration_s"])

        def run_wrapped() -> None:
            rc, t, _ = measure(
                [LFW, "train", *common, "--set", "run_name=w", "--overwrite", "--no-template-check"], env=lfw_env
            )
            assert rc == 0
            wrapped.append(t)
            own["wrapped"].append(t - engine_s("w"))

        checked_cmd = [LFW, "train", *common, "--set", "run_name=c", "--overwrite"]
        rc, first, _ = measure(checked_cmd, env=lfw_env)  # the template check runs for real
        assert rc == 0
        first_own = first - engine_s("c")
        # Alternate the order every round (ABBA) so warm caches favour neither side.
        for i in range(runs):
            for step in (run_bare, run_wrapped) if i % 2 == 0 else (run_wrapped, run_bare):
                step()
            rc, t, _ = measure(checked_cmd, env=lfw_env)  # the agreement is remembered now
            assert rc == 0
            checked.append(t)
            own["remembered"].append(t - engine_s("c"))
    b, w, c = (statistics.median(x) for x in (bare, wrapped, checked))
    ow, oc = (statistics.median(own[k]) for k in ("wrapped", "remembered"))
    table(
        [
            (
                f"bare llamafactory-cli train ({epochs} epochs{', ' + Path(cfg).name if args.real else ''})",
                f"{b:.1f} s",
            ),
            ("lf-wrap train --no-template-check", f"{w:.1f} s ({(w / b - 1) * 100:+.1f}%)"),
            ("lf-wrap train, template check run (first time)", f"{first:.1f} s ({(first / b - 1) * 100:+.1f}%)"),
            ("lf-wrap train, template check remembered", f"{c:.1f} s ({(c / b - 1) * 100:+.1f}%)"),
            ("lf-wrap's own time around the engine (no check)", f"{ow:.1f} s ({ow / b * 100:+.1f}% of bare)"),
            ("lf-wrap's own time, template check remembered", f"{oc:.1f} s ({oc / b * 100:+.1f}% of bare)"),
            ("lf-wrap's own time, template check the first time", f"{first_own:.1f} s"),
        ]
    )
    save(
        "overhead_real" if args.real else "overhead",
        {
            "compares": "`lf-wrap train` vs bare `llamafactory-cli train`, same YAML"
            + (
                f", {Path(cfg).parent.name}/{Path(cfg).name} (SmolLM2-135M-Instruct, `make demo-real`), {runs} round{'s' if runs > 1 else ''}"
                if args.real
                else ""
            ),
            "summary": f"lf-wrap's own time around the engine, measured inside each run: {ow:.1f} s = "
            f"{ow / b * 100:+.1f}% of the bare run (wrapper), {oc:.1f} s = {oc / b * 100:+.1f}% with the template "
            f"check remembered, {first_own:.0f} s the first time (once per model/template); whole commands, "
            f"median of {runs}: {(w / b - 1) * 100:+.1f}% (wrapper), {(c / b - 1) * 100:+.1f}% (remembered)",
            "target": "<= +3% (lf-wrap's own time)",
            "met": ow / b <= 0.03 and oc / b <= 0.03,
            "seconds": {
                "bare": bare,
                "wrapped": wrapped,
                "template_check_first": first,
                "template_check_remembered": checked,
                "own_wrapped": own["wrapped"],
                "own_remembered": own["remembered"],
                "own_first": first_own,
            },
            "epochs": epochs,
        },
    )


if __name__ == "__main__":
    main()
