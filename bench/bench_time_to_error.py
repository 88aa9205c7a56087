"""Time to error: a dataset with one bad row near its end (a row with no answer).

How long `lf-wrap data validate` takes to report it, versus how long `llamafactory-cli
train` takes to fail on it -- or, as it turns out, to drop the row with a log warning and
start training anyway. Target: lf-wrap at least 100x sooner (its best of 3 runs, byte-compiled
as installed: see common.compile_lf_wrap).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from bench_validation import generate
from common import LF_CLI, LFW, compile_lf_wrap, make_project, measure, save, table


def llamafactory_until_training(project: Path, timeout_s: float = 600) -> dict[str, float | bool | None]:
    yaml_text = subprocess.run(
        [LFW, "render", "train", "--config", str(project / "lf-wrap.yaml"), "--set", "datasets=bad",
         "--set", "run_name=tte", "--set", "num_train_epochs=1"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    cfg = project / "tte.yaml"
    cfg.write_text(yaml_text)
    log = project / "tte.log"
    env = {**os.environ, "DISABLE_VERSION_CHECK": "1", "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(LF_CLI), "train", str(cfg)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=project,
            start_new_session=True,
        )
    dropped_at = training_at = None
    while proc.poll() is None and time.perf_counter() - start < timeout_s:
        text = log.read_text(errors="replace")
        if dropped_at is None and "Dropped invalid example" in text:
            dropped_at = time.perf_counter() - start
        if "Running training" in text:
            training_at = time.perf_counter() - start
            break
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return {
        "dropped_warning_s": dropped_at,
        "training_started_s": training_at,
        "failed": training_at is None,
        "exit_s": time.perf_counter() - start,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    rows = 2000 if args.quick else 50_000
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(Path(tmp) / "p")
        bad = project / "data" / "bad.jsonl"
        generate(bad, rows, "jsonl")
        lines = bad.read_text(encoding="utf-8").splitlines()
        row = json.loads(lines[-10])
        del row["output"]
        lines[-10] = json.dumps(row, ensure_ascii=False)
        bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
        info = json.loads((project / "data" / "dataset_info.json").read_text())
        info["bad"] = {"file_name": "bad.jsonl"}  # registered by hand, as the tutorials do
        (project / "data" / "dataset_info.json").write_text(json.dumps(info))
        compile_lf_wrap()
        runs = [measure([LFW, "data", "validate", str(bad)]) for _ in range(3)]
        assert all(rc == 2 for rc, _, _ in runs), "lf-wrap should reject the file"
        lfw_s = min(s for _, s, _ in runs)
        lf = llamafactory_until_training(project)
    lf_s = lf["training_started_s"] or lf["exit_s"]
    ratio = lf_s / lfw_s
    outcome = "dropped the row with a warning and started training anyway" if lf["training_started_s"] else "failed"
    table(
        [
            (f"lf-wrap data validate ({rows:,} rows)", f"{lfw_s:.2f} s, exit 2, names line {rows - 9}"),
            (
                "llamafactory-cli train",
                f"{outcome} after {lf_s:.1f} s"
                + (f" (warning at {lf['dropped_warning_s']:.1f} s)" if lf["dropped_warning_s"] else ""),
            ),
            ("ratio", f"lf-wrap reports {ratio:.0f}x sooner"),
        ]
    )
    save(
        "time_to_error",
        {
            "compares": "`lf-wrap data validate` vs `llamafactory-cli train` on a file with one bad row near its end",
            "summary": f"{ratio:.0f}x sooner; LLaMA-Factory {outcome}",
            "target": ">= 100x sooner",
            "met": ratio >= 100,
            "rows": rows,
            "lf_wrap_s": lfw_s,
            "llamafactory": lf,
        },
    )


if __name__ == "__main__":
    main()
