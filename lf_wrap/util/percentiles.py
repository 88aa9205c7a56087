"""The one percentile lf-wrap reports (dataset lengths, request latencies): nearest rank, no interpolation,
so a reported length or latency is always one that was measured."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

N = TypeVar("N", int, float)


def percentile(values: Iterable[N], q: float) -> N:
    """The value at rank round(q * (n - 1)) of the sorted values (q in 0..1); 0 for no values."""
    s = sorted(values)
    if not s:
        return 0
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]
