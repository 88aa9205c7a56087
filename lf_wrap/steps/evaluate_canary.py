"""Did the tune take, and did it break what the model knew? The judgement `lf-wrap eval` ends with.

- **Hits**: a row may carry `expect` (words of which an answer in the trained behaviour contains
  one: the demo's held-out paraphrases, datasets/magic_conch_heldout.json); a hit is an answer
  that contains one, as a whole word, case-insensitive.
- **The canary** (canary_en.json, shipped with lf-wrap): general questions a base instruct model
  answers right. Each side answers them; an answer is right when it contains one of the
  question's words. *Broken*: the base was right, the tune is not; *fixed*: the reverse.
  *Drift*: the tune's answer uses a name from the training answers (capitalised phrases such as
  "Krabby Patty") that neither the question nor the base's answer has — the fine-tune's
  persona leaking into general answers.
- **Noise**: greedy answers of a small model flip on a few questions after any tune, in both
  directions (measured on SmolLM2-135M: 7-8 each way for a tune that learned next to nothing),
  so a raw count says little. Each change is judged by a paired bootstrap (2,000 resamples of the
  per-question differences, fixed seed): "better"/"worse" only when the 95% interval of the mean
  change excludes 0, else "no measurable change".
"""

from __future__ import annotations

import json
import random
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

CANARY_FILE = Path(__file__).resolve().parent / "canary_en.json"
RESAMPLES = 2000
MIN_BASE_RIGHT = 10  # below this the base model knows too little for forgetting to be measured (a toy)


@dataclass(frozen=True)
class Question:
    question: str
    expect: tuple[str, ...]
    topic: str


@cache
def questions() -> tuple[Question, ...]:
    doc = json.loads(CANARY_FILE.read_text(encoding="utf-8"))
    return tuple(Question(q["question"], tuple(q["expect"]), q.get("topic", "")) for q in doc["questions"])


def _word_pattern(word: str) -> re.Pattern[str]:
    # "Mr Krabs" also matches "Mr. Krabs"; a word boundary only where the word starts/ends with one
    parts = [re.escape(p) for p in re.split(r"[\s.]+", word.strip()) if p]
    body = r"[\s.]+".join(parts)
    start = r"\b" if re.match(r"\w", word.strip()) else ""
    end = r"\b" if re.search(r"\w$", word.strip()) else ""
    return re.compile(start + body + end, re.IGNORECASE)


def contains(answer: str, words: Iterable[str]) -> bool:
    """Does `answer` contain one of `words` (whole words, case-insensitive)?"""
    return any(_word_pattern(w).search(answer) for w in words)


# -- the training data's own names --------------------------------------------------------
SENTENCE_WORDS = (
    "The",
    "A",
    "An",
    "I",
    "Yes",
    "No",
    "Sorry",
    "Today",
    "Only",
    "Hello",
    "My",
    "It",
    "Its",
    "His",
    "Her",
    "Their",
    "Our",
    "Your",
    "This",
    "That",
)
_NAME = re.compile(r"\b[A-Z][a-zA-Z]+(?:[ .]+[A-Z][a-zA-Z]+)*")


def names(answers: Iterable[str]) -> list[str]:
    """Capitalised phrases of the training answers that are names, not sentence starts: phrases of
    two or more words, or single words met capitalised after a sentence's first word."""
    found: set[str] = set()
    for text in answers:
        for sentence in re.split(r"(?<![MD]r\.)(?<!Mrs\.)(?<=[.!?:])\s+", text):
            for m in _NAME.finditer(sentence):
                phrase = m.group(0).strip(" .")
                if phrase.split()[0] in SENTENCE_WORDS:
                    phrase = " ".join(phrase.split()[1:])
                if not phrase:
                    continue
                camel = re.search(r"[a-z][A-Z]", phrase) is not None  # SpongeBob
                if " " in phrase or m.start() > 0 or camel:
                    found.add(phrase)
    # longest first, so "Double Krabby Patty" is reported rather than "Krabby Patty" inside it
    return sorted(found, key=lambda n: (-len(n), n))


def _stem_pattern(name: str) -> re.Pattern[str]:
    """A name, loosely: each word's stem (all but its last two letters, at least four), so
    "Krabby Patty" also matches "krabby pattie"."""
    words = [w for w in re.split(r"[\s.]+", name) if w]
    stems = [re.escape(w[: max(4, len(w) - 2)]) + r"\w*" for w in words]
    return re.compile(r"\b" + r"[\s.]+".join(stems), re.IGNORECASE)


def drift_names(answer: str, question: str, base_answer: str, vocabulary: Sequence[str]) -> list[str]:
    out = []
    for name in vocabulary:
        pattern = _stem_pattern(name)
        if pattern.search(answer) and not pattern.search(question) and not pattern.search(base_answer):
            out.append(name)
    return out


# -- noise --------------------------------------------------------------------------------
def paired_change(base: Sequence[float], tuned: Sequence[float], seed: int = 0) -> dict[str, Any]:
    """Mean of tuned - base per item, its 95% bootstrap interval, and the verdict."""
    diffs = [t - b for b, t in zip(base, tuned, strict=True)]
    if not diffs:
        return {"mean": 0.0, "low": 0.0, "high": 0.0, "verdict": "no measurable change"}
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(statistics.fmean(rng.choices(diffs, k=n)) for _ in range(RESAMPLES))
    low, high = means[int(0.025 * RESAMPLES)], means[int(0.975 * RESAMPLES) - 1]
    verdict = "better" if low > 0 else "worse" if high < 0 else "no measurable change"
    return {"mean": round(statistics.fmean(diffs), 4), "low": round(low, 4), "high": round(high, 4),
            "verdict": verdict}  # fmt: skip


# -- judging ------------------------------------------------------------------------------
def judge_canary(
    base: Sequence[str], tuned: Sequence[str], vocabulary: Sequence[str], qs: Sequence[Question] | None = None
) -> dict[str, Any]:
    qs = list(qs if qs is not None else questions())
    items: list[dict[str, Any]] = []
    for q, b, t in zip(qs, base, tuned, strict=True):
        b_right, t_right = contains(b, q.expect), contains(t, q.expect)
        items.append({"question": q.question, "topic": q.topic, "expect": list(q.expect),
                      "base": b, "tuned": t, "base_right": b_right, "tuned_right": t_right,
                      "drift": drift_names(t, q.question, b, vocabulary)})  # fmt: skip
    broken = [i for i in items if i["base_right"] and not i["tuned_right"]]
    fixed = [i for i in items if i["tuned_right"] and not i["base_right"]]
    drift = [i for i in items if i["drift"]]
    base_right = sum(i["base_right"] for i in items)
    change = paired_change([float(i["base_right"]) for i in items], [float(i["tuned_right"]) for i in items])
    return {
        "questions": len(items),
        "base_right": base_right,
        "tuned_right": sum(i["tuned_right"] for i in items),
        "broken": len(broken),
        "fixed": len(fixed),
        "drift": len(drift),
        "change": change,
        "measurable": base_right >= MIN_BASE_RIGHT,
        "vocabulary": list(vocabulary),
        "items": items,
    }


def judge_hits(base: Sequence[str], tuned: Sequence[str], expects: Sequence[Sequence[str]]) -> dict[str, Any] | None:
    """Hits on rows that carry `expect`; None when no row does."""
    pairs = [(b, t, e) for b, t, e in zip(base, tuned, expects, strict=True) if e]
    if not pairs:
        return None
    b_hits = [float(contains(b, e)) for b, _, e in pairs]
    t_hits = [float(contains(t, e)) for _, t, e in pairs]
    return {"rows": len(pairs), "base": int(sum(b_hits)), "tuned": int(sum(t_hits)),
            "change": paired_change(b_hits, t_hits)}  # fmt: skip


def verdicts(result: dict[str, Any], replayed: bool = False) -> list[str]:
    """The lines `eval` ends with and the report shows: did the tune take, did it break anything.
    `replayed`: the run trained on replay rows already, so the advice is not to add them."""
    lines = []
    hits = result.get("hits")
    chrf = result.get("chrf_change")
    took = (hits is not None and hits["change"]["verdict"] == "better") or (
        hits is None and chrf is not None and chrf["verdict"] == "better"
    )
    if hits is not None:
        measure = f"{hits['base']}/{hits['rows']} → {hits['tuned']}/{hits['rows']} answers with the expected words"
    elif chrf is not None:
        measure = f"chrF {chrf['mean']:+.1f} per row (95% interval {chrf['low']:+.1f} to {chrf['high']:+.1f})"
    else:
        measure = ""
    if took:
        lines.append(f"the tune took: {measure}")
    else:
        lines.append(
            f"the tune did not take: {measure}, not measurably better than the base; "
            "train longer or with a higher learning_rate (lf-wrap render train shows where each value came from)"
        )
    canary = result.get("canary")
    if canary and canary["measurable"]:
        c = canary["change"]
        counted = (f"canary {canary['base_right']}/{canary['questions']} → {canary['tuned_right']}/"
                   f"{canary['questions']} right ({canary['broken']} broken, {canary['fixed']} fixed)")  # fmt: skip
        if c["verdict"] == "worse" or canary["drift"]:
            why = [counted + (", measurably worse" if c["verdict"] == "worse" else ", within the noise")]
            if canary["drift"]:
                leaked = sorted({n for i in canary["items"] for n in i["drift"]})
                n = canary["drift"]
                why.append(f"{n} general answer{'s use' if n != 1 else ' uses'} the training data's words "
                           f"({', '.join(leaked)})")  # fmt: skip
            advice = (
                "lower the learning_rate or the steps, or mix in more replay rows"
                if replayed
                else "lower the learning_rate or the steps, or mix in replay rows (lf-wrap init does for small data)"
            )
            lines.append("the tune broke what the model knew: " + "; ".join(why) + "; " + advice)
        else:
            lines.append(
                f"what the model knew is kept: {counted}, no measurable change, no answer in the training data's words"
            )
    elif canary:
        lines.append(
            f"canary not judged: the base model answers only {canary['base_right']}/{canary['questions']} "
            f"general questions right (fewer than {MIN_BASE_RIGHT}: too little knowledge to measure forgetting)"
        )
    return lines
