"""`lf-wrap eval --fail-on RULE`: a regression gate that knows its noise.

A rule names what makes the build fail: `worse>0` (the tuned model answered any row worse than
the base), `chrf<+5` (the chrF change per row is below +5), `canary<0` (the tuned model answers
fewer general questions right), `drift>0` (a general answer uses the training data's words),
`hits<4` (fewer rows with the expected words gained). Rules come from `--fail-on` or the
project file's `eval: {fail_on: [...]}`, so `make demo` and a user's CI use one definition.

Counts (`worse`, `drift`) are compared as they are. Changes measured over rows (`chrf`, `hits`,
`canary`) are compared with their 95% paired-bootstrap interval (evaluate_canary.paired_change):
a rule fails only when the whole interval is past the threshold. A change within the noise of
the rows measured is "no measurable change", which never fails a gate, and says so.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lf_wrap.util.errors import LfWrapError

# name: (what it measures, unit, noisy: judged against its bootstrap interval)
METRICS: dict[str, tuple[str, str, bool]] = {
    "worse": ("rows the tuned model answered worse than the base (chrF or exact match)", "rows", False),
    "chrf": ("the change in chrF per row, tuned - base", "chrF", True),
    "hits": ("the change in rows answered with one of their `expect` words, tuned - base", "rows", True),
    "canary": ("the change in general questions answered right, tuned - base", "questions", True),
    "drift": ("general answers that use the training data's words", "answers", False),
}
OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt,
}  # fmt: skip
_RULE = re.compile(r"^\s*([a-z_]+)\s*(<=|>=|<|>)\s*([+-]?\d+(?:\.\d+)?)\s*$")
EXAMPLES = "worse>0, chrf<+5, canary<0, drift>0, hits<4"


@dataclass(frozen=True)
class Rule:
    text: str
    metric: str
    op: str
    threshold: float

    def holds(self, value: float) -> bool:
        return OPS[self.op](value, self.threshold)


def parse(text: str, where: str = "--fail-on") -> Rule:
    """One rule, or a message naming the rule, what is wrong and the names that exist."""
    m = _RULE.match(text)
    if not m:
        raise LfWrapError(
            f"{where} {text!r}: not a rule: a rule is NAME OP NUMBER",
            hint=f"for example {EXAMPLES}; names: {', '.join(METRICS)}; OP one of <, <=, >, >=",
            location=where,
        )
    name, op, number = m.groups()
    if name not in METRICS:
        from difflib import get_close_matches

        close = get_close_matches(name, list(METRICS), n=1)
        raise LfWrapError(
            f"{where} {text!r}: no measure named {name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""),
            hint="; ".join(f"{k}: {v[0]}" for k, v in METRICS.items()),
            location=where,
        )
    return Rule(text.strip(), name, op, float(number))


def parse_all(texts: Iterable[str], where: str = "--fail-on") -> list[Rule]:
    return [parse(t, where) for t in texts]


def _measure(result: dict[str, Any], metric: str) -> tuple[float | None, float | None, float | None, str]:
    """(value, low, high, why not judged): the measure in its unit, with its interval when noisy."""
    if metric == "worse":
        return float(result["summary"]["worse"]), None, None, ""
    if metric == "chrf":
        c = result.get("chrf_change")
        if not c:
            return None, None, None, "no rows were scored"
        return c["mean"], c["low"], c["high"], ""
    if metric == "hits":
        h = result.get("hits")
        if not h:
            return None, None, None, "no row carries `expect` words"
        n, c = h["rows"], h["change"]
        return c["mean"] * n, c["low"] * n, c["high"] * n, ""
    canary = result.get("canary")
    if not canary:
        return None, None, None, "the canary was not asked (--no-canary)"
    if metric == "drift":
        return float(canary["drift"]), None, None, ""
    if not canary["measurable"]:
        return None, None, None, (f"the base model answers only {canary['base_right']}/{canary['questions']} "
                                  "general questions right: too little to measure forgetting")  # fmt: skip
    n, c = canary["questions"], canary["change"]
    return c["mean"] * n, c["low"] * n, c["high"] * n, ""


def judge(rules: Sequence[Rule], result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each rule with `failed` (True/False) and `why`, in the order given."""
    out = []
    for rule in rules:
        value, low, high, not_judged = _measure(result, rule.metric)
        unit = METRICS[rule.metric][1]
        entry: dict[str, Any] = {"rule": rule.text, "metric": rule.metric, "value": value, "low": low, "high": high}
        if value is None:
            entry.update(failed=False, judged=False, why=f"not judged: {not_judged}")
        elif low is None or high is None:
            failed = rule.holds(value)
            entry.update(failed=failed, judged=True, why=f"{value:g} {unit}")
        else:
            # the rule fails only when the whole 95% interval satisfies it: the change is past the threshold
            failed = rule.holds(high) if rule.op in ("<", "<=") else rule.holds(low)
            within = rule.holds(value) and not failed
            span = f"{value:+.1f} {unit} (95% interval {low:+.1f} to {high:+.1f})"
            entry.update(failed=failed, judged=True,
                         why=span + (": within the noise of the rows measured, no measurable change" if within
                                     else ""))  # fmt: skip
        out.append(entry)
    return out


def lines(judged: Sequence[dict[str, Any]]) -> list[str]:
    return [f"gate: {j['rule']:<10} {'FAIL' if j['failed'] else 'pass'}  {j['why']}" for j in judged]


def failed(judged: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [j for j in judged if j["failed"]]
