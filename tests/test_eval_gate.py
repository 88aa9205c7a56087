"""`lf-wrap eval --fail-on RULE`: the regression gate (lf_wrap/steps/evaluate_gate.py).

The rule logic on results of known shape, then the command against the fake OpenAI server
(tests/fake_openai.py): a tuned model that got one row worse fails `worse>0` with the row named.
The real served demo passes the gate in tests/test_eval_served.py.
"""

from __future__ import annotations

import json
import shutil

import pytest

from lf_wrap.steps import evaluate_gate as gate
from lf_wrap.util.errors import LfWrapError
from lf_wrap.util.paths import demo_project
from tests.fake_openai import serve_fake
from tests.helpers import free_port
from tests.test_eval import ROWS, _alpaca, two_fakes


def result(worse: int = 0, chrf: tuple[float, float, float] = (0.0, -1.0, 1.0), canary_right: int = 40,
           canary_change: tuple[float, float, float] = (0.0, -0.05, 0.05), drift: int = 0) -> dict:  # fmt: skip
    mean, low, high = chrf
    c_mean, c_low, c_high = canary_change
    return {
        "summary": {"worse": worse},
        "chrf_change": {"mean": mean, "low": low, "high": high},
        "hits": {"rows": 16, "base": 0, "tuned": 12, "change": {"mean": 0.75, "low": 0.5, "high": 0.94}},
        "canary": {"questions": 56, "base_right": canary_right, "drift": drift, "measurable": canary_right >= 20,
                   "change": {"mean": c_mean, "low": c_low, "high": c_high}},
    }  # fmt: skip


def judged(rule: str, res: dict) -> dict:
    return gate.judge([gate.parse(rule)], res)[0]


def test_a_count_rule_fails_on_the_count_itself():
    assert judged("worse>0", result(worse=1))["failed"]
    assert not judged("worse>0", result(worse=0))["failed"]
    assert judged("drift>0", result(drift=2))["why"] == "2 answers"


def test_a_change_within_its_noise_never_fails_and_says_so():
    # chrF -2 per row with an interval reaching +1: below 0 by the point estimate, not measurably
    entry = judged("chrf<0", result(chrf=(-2.0, -5.0, 1.0)))
    assert not entry["failed"] and entry["judged"]
    assert "within the noise of the rows measured, no measurable change" in entry["why"]
    assert judged("chrf<0", result(chrf=(-4.0, -6.0, -1.5)))["failed"]  # the whole interval below
    # "chrf<+5": a gain of +3 that might be +8 is not measurably short of +5
    assert not judged("chrf<+5", result(chrf=(3.0, -1.0, 8.0)))["failed"]
    assert judged("chrf<+5", result(chrf=(1.0, -1.0, 3.0)))["failed"]


def test_the_canary_rule_counts_questions_and_skips_a_base_that_knows_too_little():
    entry = judged("canary<0", result(canary_change=(-0.1, -0.2, -0.02)))
    assert entry["failed"] and entry["why"].startswith("-5.6 questions (95% interval -11.2 to -1.1)")
    weak = judged("canary<0", result(canary_right=3, canary_change=(-0.1, -0.2, -0.02)))
    assert not weak["failed"] and not weak["judged"]
    assert weak["why"] == ("not judged: the base model answers only 3/56 general questions right: too little to "
                           "measure forgetting")  # fmt: skip
    assert not judged("hits<4", result())["failed"]  # 12 of 16 gained, the interval from 8 up


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("worse=0", "--fail-on 'worse=0': not a rule: a rule is NAME OP NUMBER"),
        ("worst>0", "--fail-on 'worst>0': no measure named 'worst' (did you mean 'worse'?)"),
        ("chrf<five", "--fail-on 'chrf<five': not a rule"),
    ],
)
def test_a_rule_that_does_not_parse_names_itself_and_the_measures(rule, message):
    with pytest.raises(LfWrapError) as err:
        gate.parse(rule)
    assert str(err.value).startswith(message)
    assert "worse" in (err.value.hint or "") and "canary" in (err.value.hint or "")


def test_a_tuned_model_worse_on_a_row_fails_the_gate_with_exit_1_and_the_row(run, tmp_path):
    golden = _alpaca(tmp_path, ROWS)
    base, tuned = two_fakes(worse_row=3)
    with serve_fake(base) as b, serve_fake(tuned) as t:
        result_ = run("eval", "--base-url", b.url, "--tuned-url", t.url, "--dataset", golden, "--no-canary",
                      "--fail-on", "worse>0", "--fail-on", "chrf<0", "--json")  # fmt: skip
    assert result_.exit_code == 1, result_.output
    out = json.loads(result_.stdout)
    assert [(g["rule"], g["failed"]) for g in out["gate"]] == [("worse>0", True), ("chrf<0", False)]
    assert "Error: eval: the gate failed: worse>0 (1 rows); rows that got worse: 3" in result_.stderr


def test_a_passing_gate_exits_0_and_prints_each_rule(run, tmp_path):
    golden = _alpaca(tmp_path, ROWS)
    base, tuned = two_fakes(worse_row=3)
    with serve_fake(base) as b, serve_fake(tuned) as t:
        result_ = run("eval", "--base-url", b.url, "--tuned-url", t.url, "--dataset", golden, "--no-canary",
                      "--fail-on", "worse>1", "--fail-on", "canary<0")  # fmt: skip
    assert result_.exit_code == 0, result_.output
    assert "gate: worse>1    pass  1 rows" in result_.stdout
    assert "gate: canary<0   pass  not judged: the canary was not asked (--no-canary)" in result_.stdout


def test_a_bad_rule_is_refused_before_any_server_is_asked(run, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    result_ = run("eval", "--base-url", dead, "--tuned-url", dead, "--dataset", _alpaca(tmp_path, ROWS),
                  "--fail-on", "canary<<0")  # fmt: skip
    assert result_.exit_code == 2
    assert "--fail-on 'canary<<0': not a rule" in result_.stderr


def test_the_project_files_rules_are_the_default_and_a_bad_one_names_its_key(run, project):
    config = project / "lf-wrap.yaml"
    shutil.copy(demo_project(), config)
    with config.open("a") as f:
        f.write('eval:\n  fail_on: ["worse>0"]\n')
    golden = _alpaca(project, ROWS)
    base, tuned = two_fakes(worse_row=2)
    with serve_fake(base) as b, serve_fake(tuned) as t:
        done = run("eval", "--base-url", b.url, "--tuned-url", t.url, "--dataset", golden, "--no-canary")
        assert done.exit_code == 1 and "the gate failed: worse>0" in done.stderr, done.output
        # --fail-on replaces the file's rules for one command; --no-fail-on measures without them
        assert run("eval", "--base-url", b.url, "--tuned-url", t.url, "--dataset", golden, "--no-canary",
                   "--fail-on", "worse>1").exit_code == 0  # fmt: skip
        measured = run("eval", "--base-url", b.url, "--tuned-url", t.url, "--dataset", golden, "--no-canary",
                       "--no-fail-on", "--json")  # fmt: skip
        assert measured.exit_code == 0 and "gate" not in json.loads(measured.stdout)
    config.write_text(config.read_text().replace('"worse>0"', '"worse>>0"'))
    bad = run(
        "eval", "--base-url", "http://127.0.0.1:1/v1", "--tuned-url", "http://127.0.0.1:1/v1", "--dataset", golden
    )
    assert bad.exit_code == 2
    line = config.read_text().splitlines().index('  fail_on: ["worse>>0"]') + 1
    assert f"lf-wrap.yaml:{line}: eval.fail_on[0] 'worse>>0': not a rule" in bad.stderr
