"""Wrapper overhead: `lf-wrap train` vs a bare `llamafactory-cli train` on the same
rendered YAML (tiny model, demo dataset), alternating runs, medians.

Target: at most 3% extra wall time. Reported three ways: the wrapper alone
(--no-template-check); with the train/serve chat-template check the first time a
model/template pair is seen (one LLaMA-Factory import, a few seconds, independent of the
length of training); and with the check remembered (lf-wrap caches an agreement keyed by
the model's tokenizer files, the template and the training environment).
"""

from __future__ import annotations

import argparse
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
        help="a real model instead: the project `make demo-real` writes (real/lf-wrap.yaml), 1 epoch, "
        "1 round (a run of SmolLM2 is minutes: the wrapper's fixed cost is a smaller share of longer ones)",
    )
    args = ap.parse_args()
    runs, epochs = (1, 2) if args.quick else (4, 30)
    if args.real:
        runs, epochs = 1, 1
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

        def run_wrapped() -> None:
            rc, t, _ = measure(
                [LFW, "train", *common, "--set", "run_name=w", "--overwrite", "--no-template-check"], env=lfw_env
            )
            assert rc == 0
            wrapped.append(t)

        checked_cmd = [LFW, "train", *common, "--set", "run_name=c", "--overwrite"]
        rc, first, _ = measure(checked_cmd, env=lfw_env)  # the template check runs for real
        assert rc == 0
        # Alternate the order every round (ABBA) so warm caches favour neither side.
        for i in range(runs):
            for step in (run_bare, run_wrapped) if i % 2 == 0 else (run_wrapped, run_bare):
                step()
            rc, t, _ = measure(checked_cmd, env=lfw_env)  # the agreement is remembered now
            assert rc == 0
            checked.append(t)
    b, w, c = (statistics.median(x) for x in (bare, wrapped, checked))
    table(
        [
            (
                f"bare llamafactory-cli train ({epochs} epochs{', ' + Path(cfg).name if args.real else ''})",
                f"{b:.1f} s",
            ),
            ("lf-wrap train --no-template-check", f"{w:.1f} s ({(w / b - 1) * 100:+.1f}%)"),
            ("lf-wrap train, template check run (first time)", f"{first:.1f} s ({(first / b - 1) * 100:+.1f}%)"),
            ("lf-wrap train, template check remembered", f"{c:.1f} s ({(c / b - 1) * 100:+.1f}%)"),
        ]
    )
    save(
        "overhead_real" if args.real else "overhead",
        {
            "compares": "`lf-wrap train` vs bare `llamafactory-cli train`, same YAML"
            + (
                f", {Path(cfg).parent.name}/{Path(cfg).name} (SmolLM2-135M-Instruct, `make demo-real`), {runs} round"
                if args.real
                else ""
            ),
            "summary": f"{(w / b - 1) * 100:+.1f}% wall time (wrapper); with the template check "
            f"{(c / b - 1) * 100:+.1f}% once remembered, {(first / b - 1) * 100:+.1f}% the first time "
            f"(+{first - b:.0f} s, once per model/template)",
            "target": "<= +3%",
            "met": w / b <= 1.03 and c / b <= 1.03,
            "seconds": {
                "bare": bare,
                "wrapped": wrapped,
                "template_check_first": first,
                "template_check_remembered": checked,
            },
            "epochs": epochs,
        },
    )


if __name__ == "__main__":
    main()
