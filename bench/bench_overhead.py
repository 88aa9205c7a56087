"""Wrapper overhead: `lf-wrap train` vs a bare `llamafactory-cli train` on the same
rendered YAML (tiny model, demo dataset), alternating runs, medians.

Target: at most 3% extra wall time. Reported twice: the wrapper alone
(--no-template-check), and with the train/serve chat-template check, which costs one
LLaMA-Factory import (a few seconds, independent of the length of training).
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
    args = ap.parse_args()
    runs, epochs = (1, 2) if args.quick else (4, 30)
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(Path(tmp) / "p")
        cfg = str(project / "lf-wrap.yaml")
        common = ["--config", cfg, "--set", f"num_train_epochs={epochs}", "--set", "save_steps=100000"]
        yaml_text = subprocess.run([LFW, "render", "train", *common, "--set", "run_name=bare"],
                                   check=True, capture_output=True, text=True).stdout  # fmt: skip
        bare_yaml = project / "bare.yaml"
        bare_yaml.write_text(yaml_text.replace("overwrite_output_dir: false", "overwrite_output_dir: true"))
        env = {**os.environ, "DISABLE_VERSION_CHECK": "1", "HF_HUB_OFFLINE": "1"}
        wrapped, checked, bare = [], [], []

        def run_bare() -> None:
            rc, t, _ = measure([str(LF_CLI), "train", str(bare_yaml)], env=env, cwd=project)
            assert rc == 0
            bare.append(t)

        def run_wrapped() -> None:
            rc, t, _ = measure([LFW, "train", *common, "--set", "run_name=w", "--overwrite", "--no-template-check"])
            assert rc == 0
            wrapped.append(t)

        # Alternate the order every round (ABBA) so warm caches favour neither side.
        for i in range(runs):
            for step in (run_bare, run_wrapped) if i % 2 == 0 else (run_wrapped, run_bare):
                step()
            rc, t, _ = measure([LFW, "train", *common, "--set", "run_name=c", "--overwrite"])
            assert rc == 0
            checked.append(t)
    b, w, c = (statistics.median(x) for x in (bare, wrapped, checked))
    table(
        [
            (f"bare llamafactory-cli train ({epochs} epochs)", f"{b:.1f} s"),
            ("lf-wrap train --no-template-check", f"{w:.1f} s ({(w / b - 1) * 100:+.1f}%)"),
            ("lf-wrap train (with template check)", f"{c:.1f} s ({(c / b - 1) * 100:+.1f}%)"),
        ]
    )
    save(
        "overhead",
        {
            "compares": "`lf-wrap train` vs bare `llamafactory-cli train`, same YAML",
            "summary": f"{(w / b - 1) * 100:+.1f}% wall time (wrapper); {(c / b - 1) * 100:+.1f}% with the template check",
            "target": "<= +3%",
            "met": w / b <= 1.03,
            "seconds": {"bare": bare, "wrapped": wrapped, "with_template_check": checked},
            "epochs": epochs,
        },
    )


if __name__ == "__main__":
    main()
