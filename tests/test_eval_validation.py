"""A validation split (LLaMA-Factory's val_size / eval_dataset): off by default with the reason in
`render`, suggested by `init` for large datasets, evaluated during training when set, and its eval
loss shown in the progress line. The real training run is in tests/test_eval_served.py."""

from __future__ import annotations

import json

import pytest

from lf_wrap.steps.init import validation_line
from lf_wrap.util.progress import Progress, describe


def test_render_says_why_validation_is_off_by_default(run, project):
    result = run("render", "train")
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stdout.splitlines() if x.startswith("val_size:"))
    assert line.startswith("val_size: 0.0") and "lf-wrap default: off" in line and "1000 rows" in line
    assert "eval_strategy" not in result.stdout


def test_a_validation_split_turns_on_evaluation_every_logging_steps(run, project):
    result = run("render", "train", "--set", "val_size=0.1")
    assert result.exit_code == 0, result.output
    lines = {x.split(":")[0]: x for x in result.stdout.splitlines() if ":" in x and not x.startswith("#")}
    assert lines["val_size"].startswith("val_size: 0.1") and "# --set" in lines["val_size"]
    assert lines["eval_strategy"].startswith('eval_strategy: "steps"') and "val_size is set" in lines["eval_strategy"]
    assert lines["eval_steps"].startswith("eval_steps: 10")  # the demo's logging_steps
    assert lines["per_device_eval_batch_size"].startswith("per_device_eval_batch_size: 8")
    chosen = run("render", "train", "--set", "val_size=0.1", "--set", "eval_steps=50")
    assert "eval_steps: 50" in chosen.stdout and "# --set" in next(
        x for x in chosen.stdout.splitlines() if x.startswith("eval_steps:")
    )


def test_init_suggests_a_split_from_1000_rows_and_says_why_not_below():
    assert validation_line(56).startswith("  # val_size: off: 56 rows < 1000")
    assert validation_line(1000).startswith("  val_size: 0.1") and "hold out 100 rows" in validation_line(1000)
    assert validation_line(50_000).startswith("  val_size: 1000") and "hold out 1000 rows" in validation_line(50_000)


@pytest.mark.slow  # init runs the template check in the training environment
def test_init_writes_the_comment_for_the_demo_sized_dataset(run, project):
    result = run("init", "--model", "models/tiny-qwen2", "--dataset", "magic_conch", "--dataset-dir", "data")
    assert result.exit_code == 0, result.output
    text = (project / "lf-wrap.yaml").read_text()
    assert "# val_size: off: 56 rows < 1000" in text


def test_the_progress_line_shows_eval_loss_beside_the_loss(capsys):
    train = {"current_steps": 10, "total_steps": 100, "loss": 1.5, "lr": 1e-3, "epoch": 1.0}
    evaluation = {"current_steps": 10, "total_steps": 100, "eval_loss": 2.25, "epoch": 1.0}
    assert "eval_loss 2.2500" in describe(evaluation) and "loss 1.5000" in describe(train)
    progress = Progress("json", "train")
    progress.update([train, evaluation])
    assert progress.last_loss == 1.5 and progress.last_eval_loss == 2.25
    events = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert events[1]["eval_loss"] == 2.25
