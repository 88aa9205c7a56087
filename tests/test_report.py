"""`lf-wrap report`: one self-contained page from what a run folder holds, written atomically.

Run folders are built here by hand (a manifest, a trainer_log.jsonl, an eval.json), so every
part and every missing part is tested without training; tests/test_report_browser.py opens a
real trained run's report in Chromium.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lf_wrap.steps import report
from tests.conftest import DATASETS


def make_run(root: Path, model: Path, *, log: bool = True, evals: bool = True) -> Path:
    run = root / "runs" / "demo-run"
    (run / "output").mkdir(parents=True)
    data = DATASETS / "magic_conch.json"
    manifest = {
        "lf_wrap_version": "0.1.0",
        "run_name": "demo-run",
        "host": {"python": "3.11"},
        "train": {
            "status": "succeeded",
            "duration_s": 42.0,
            "config": {"learning_rate": 0.001, "cutoff_len": 64, "val_size": 0.1, "model_name_or_path": str(model)},
            "config_sha256": "ab" * 32,
            "model": {"path": str(model), "config_sha256": "cd" * 32},
            "datasets": [{"name": "magic_conch", "file": str(data), "sha256": "ef" * 32, "rows": 56,
                          "formatting": "alpaca"}],
            "engine": {"cli": "x", "llamafactory": "0.9.5"},
            "template_check": {"template": "qwen", "verdict": "agree", "harmful": False},
            "final_loss": 0.02,
        },
    }  # fmt: skip
    (run / "manifest.json").write_text(json.dumps(manifest))
    (run / "train.yaml").write_text(
        "learning_rate: 0.001                      # lf-wrap.yaml:12\ncutoff_len: 64                            # --set\n"
    )
    if log:
        lines = []
        for step in range(10, 310, 10):
            lines.append({"current_steps": step, "total_steps": 300, "loss": 6.0 / step * 10, "lr": 1e-3})
            if step % 50 == 0:
                lines.append({"current_steps": step, "total_steps": 300, "eval_loss": 8.0 / step * 10})
        (run / "output" / "trainer_log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    if evals:
        row = {"index": 3, "prompt": "<script>alert(1)</script> who?", "expected": "the conch", "verdict": "worse",
               "base": {"answer": "the conch", "exact": 100.0, "chrf": 100.0, "rouge_l": 100.0, "latency_s": 0.1},
               "tuned": {"answer": "a <b>crab</b>", "exact": 0.0, "chrf": 10.0, "rouge_l": 0.0, "latency_s": 0.1},
               "change": {"exact": -100.0, "chrf": -90.0, "rouge_l": -100.0}}  # fmt: skip
        metrics = {m: {"label": label, "base": 100.0, "tuned": 10.0, "change": -90.0}
                   for m, label in (("exact", "exact match"), ("chrf", "chrF"), ("rouge_l", "ROUGE-L"))}  # fmt: skip
        result = {
            "rows_from": {"kind": "held-out split", "detail": "val_size 0.1", "rows": 1, "of": 1},
            "how": "one vLLM server", "max_tokens": 256,
            "base": {"model": "b", "what": "base dir", "url": "u"}, "tuned": {"model": "t", "what": "adapter", "url": "u"},
            "summary": {"rows": 1, "metrics": metrics, "worse": 1, "same": 0, "better": 0,
                        "latency_s": {s: {"p50": 0.1, "p95": 0.1, "mean": 0.1} for s in ("base", "tuned")}},
            "rows": [row],
        }  # fmt: skip
        (run / "eval.json").write_text(json.dumps(result))
    return run


def points(page: str, css: str) -> int:
    found = re.search(rf'<polyline class="series {css}" data-points="(\d+)" points="([^"]*)"', page)
    assert found, f"no {css} curve"
    assert len(found.group(2).split()) == int(found.group(1))
    return int(found.group(1))


def test_full_report_has_curves_eval_table_and_sources(run, tmp_path, tiny_model):
    run_dir = make_run(tmp_path, tiny_model)
    result = run("report", "--run", "demo-run", "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert f"report: {run_dir / 'report.html'}" in result.stdout
    assert points(page, "train") == 30 and points(page, "eval") == 6 and points(page, "lr") == 30
    assert 'id="eval-summary"' in page and 'id="regressions"' in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page  # answers are data, escaped
    assert "a &lt;b&gt;crab&lt;/b&gt;" in page
    assert "lf-wrap.yaml:12" in page and "agree" in page and "ab" * 32 in page
    assert "56 rows" in page and "cutoff_len 64" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched from anywhere
    assert "no check yet" in result.stderr


def test_the_eval_verdicts_and_the_canary_lead_the_eval_section(run, tmp_path, tiny_model):
    run_dir = make_run(tmp_path, tiny_model)
    saved = json.loads((run_dir / "eval.json").read_text())
    saved["verdicts"] = ["the tune did not take: 0/16 → 1/16 answers with the expected words, not measurably better",
                         "what the model knew is kept: canary 35/56 → 34/56 right (3 broken, 2 fixed)"]  # fmt: skip
    saved["canary"] = {"questions": 56, "base_right": 35, "tuned_right": 34, "broken": 3, "fixed": 2, "drift": 0}
    saved["hits"] = {"rows": 16, "base": 0, "tuned": 1}
    saved["gate"] = [{"rule": "canary<0", "failed": False, "judged": True, "why": "-1.0 questions (95% interval "
                      "-4.0 to +2.0): within the noise of the rows measured, no measurable change"},
                     {"rule": "worse>0", "failed": True, "judged": True, "why": "3 rows"}]  # fmt: skip
    (run_dir / "eval.json").write_text(json.dumps(saved))
    assert run("report", "--run", "demo-run", "--runs-dir", tmp_path / "runs").exit_code == 0
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    verdicts = page[page.index('id="eval-verdicts"') : page.index('id="eval-summary"')]
    assert '<span class="verdict bad">the tune did not take</span>' in verdicts
    assert '<span class="verdict ok">what the model knew is kept</span>' in verdicts
    assert "35/56 right → 34/56; 3 broken, 2 fixed, 0 answers in the training data's words" in verdicts
    assert "Held-out rows with their expected words: 0/16 → 1/16" in verdicts
    assert '<code>canary&lt;0</code> <span class="verdict ok">pass</span> -1.0 questions' in verdicts  # the gate
    assert '<code>worse&gt;0</code> <span class="verdict bad">FAIL</span> 3 rows' in verdicts


def test_a_run_without_trainer_log_reports_what_exists_and_names_what_is_missing(run, tmp_path, tiny_model):
    run_dir = make_run(tmp_path, tiny_model, log=False, evals=False)
    result = run("report", "--run", "demo-run", "--runs-dir", tmp_path / "runs", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert any("output/trainer_log.jsonl: no training log" in m for m in out["missing"])
    assert any("no eval yet" in m for m in out["missing"])
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "Not in this run yet" in page and "<polyline" not in page and "No curve: the run has no training log" in page
    assert "lf-wrap.yaml:12" in page  # what exists is still there


def test_no_run_folder_is_exit_2(run, tmp_path):
    result = run("report", "--run", "nope", "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2
    assert "no such run folder" in result.stderr and "lf-wrap train" in result.stderr


def test_a_failed_render_leaves_the_old_report_whole(run, tmp_path, tiny_model, monkeypatch):
    run_dir = make_run(tmp_path, tiny_model)
    assert run("report", "--run", "demo-run", "--runs-dir", tmp_path / "runs").exit_code == 0
    before = (run_dir / "report.html").read_bytes()

    def broken_write(path: Path, data: str | bytes) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(report, "atomic_write", broken_write)
    with pytest.raises(OSError):
        report.write(run_dir)
    assert (run_dir / "report.html").read_bytes() == before
    assert not list(run_dir.glob(".report.html.*"))


def test_try_write_turns_a_failure_into_a_note(tmp_path):
    assert report.try_write(tmp_path / "missing").startswith("report: not written (")


def test_the_last_check_is_kept_in_the_manifest_and_shown(tmp_path, tiny_model):
    run_dir = make_run(tmp_path, tiny_model)
    checks = [{"name": "golden", "ok": True, "detail": "16/16 exact (100%, need 50%)", "misses": []}]
    line = report.record_check(run_dir, "http://127.0.0.1:8000/v1", "demo-run", True, checks, [])
    assert line == "report: runs/demo-run/report.html"  # relative to the current folder
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["check"]["checks"] == [{"name": "golden", "ok": True, "detail": "16/16 exact (100%, need 50%)"}]
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert 'id="check-results"' in page and "16/16 exact (100%, need 50%)" in page and "no check yet" not in page
    elsewhere = tmp_path / "not-a-run"
    assert report.record_check(elsewhere, "http://x/v1", "m", True, checks, []) is None
    assert not elsewhere.exists()  # checking some other server never makes a run folder
