"""Per-answer scores for `lf-wrap eval`: exact match, chrF and ROUGE-L, each 0-100.

- chrF: sacrebleu's `CHRF` (character n-grams, the WMT reference implementation). It works
  on characters, so Chinese needs no word segmentation.
- ROUGE-L: Google's `rouge-score` (the reference port of ROUGE-1.5.5) with a tokenizer of
  our own: its default tokenizer keeps only [a-z0-9], so every Chinese answer scored 0
  (measured: "您好，我是蟹堡王的神奇海螺…" against itself minus three characters gave 0.0).
  Here a token is one CJK character (character level, as LLaMA-Factory's own ROUGE for
  Chinese uses) or a run of other word characters, lower-cased.

Chosen by measuring on the demo's 56 answers (bench-free, /tmp script in the report of
issue 14): sacrebleu chrF ~100 µs per answer, rouge-score ROUGE-L ~50 µs; rapidfuzz's LCS
gave identical ROUGE-L at ~6 µs but is not a ROUGE implementation, and both costs vanish
next to one generated answer (milliseconds). Imported lazily: `lf-wrap --help` never pays
for them (rouge-score imports nltk, ~0.3 s).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from lf_wrap.util.errors import require

# CJK ideographs, kana and hangul: one token per character; anything else: runs of word characters.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+", re.UNICODE)
METRICS = ("exact", "chrf", "rouge_l")
LABELS = {"exact": "exact match", "chrf": "chrF", "rouge_l": "ROUGE-L"}
INSTALL_HINT = "install lf-wrap's dependencies again: pip install -e . (sacrebleu and rouge-score)"


class CharTokenizer:
    """rouge-score tokenizer: CJK characters one by one, other words whole, lower-cased."""

    def tokenize(self, text: str) -> list[str]:
        return [t.lower() for t in _TOKEN.findall(text)]


@dataclass(frozen=True)
class Scores:
    exact: float
    chrf: float
    rouge_l: float

    def as_dict(self) -> dict[str, float]:
        return {"exact": self.exact, "chrf": self.chrf, "rouge_l": self.rouge_l}


@cache
def _scorers() -> tuple[Any, Any]:
    require(("sacrebleu", "rouge_score"), "lf-wrap eval's scores", hint=INSTALL_HINT)
    from rouge_score import rouge_scorer
    from sacrebleu.metrics import CHRF

    return CHRF(), rouge_scorer.RougeScorer(["rougeL"], tokenizer=CharTokenizer())


def score(answer: str, expected: str) -> Scores:
    """Scores of one answer against the expected one (both stripped), each 0-100."""
    chrf, rouge = _scorers()
    got, want = answer.strip(), expected.strip()
    exact = 100.0 if got == want else 0.0
    if not got or not want:
        same = 100.0 if got == want else 0.0
        return Scores(exact, same, same)
    return Scores(
        exact,
        round(float(chrf.sentence_score(got, [want]).score), 2),
        round(100.0 * rouge.score(want, got)["rougeL"].fmeasure, 2),
    )
