"""Find duplicate rows in 12 bytes per row, so validating a large file stays flat in memory.

A dict from fingerprint to first row costs about 100 bytes per distinct row (two int objects
and a hash slot): on a 200k-row JSON Lines file that was most of what `data validate` grew by.
Here the single streaming pass only appends each row's 64-bit fingerprint and its line to two
typed arrays; the duplicates are worked out once at the end: a plain dict for small files; for
large ones a table of marks (one byte per slot, 4 MB up to 256k rows) that narrows the dict down
to the few candidate rows; one stable numpy sort only for very large files (where importing
numpy, ~0.1 s, no longer shows).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from typing import Any, NamedTuple

import orjson
import xxhash

#: Above this many rows the end-of-pass search uses numpy (~18 B/row at its peak; importing it costs
#: ~0.1 s); below it the table of marks and a dict of the few candidate rows (~0.25 us/row) win.
NUMPY_ABOVE = 2_000_000
#: Above this many rows the table of marks narrows the dict down to candidate rows (the dict alone:
#: ~100 B/row; the table: 4 MB, then 16-32 B/row above 256k rows).
BITMAP_ABOVE = 10_000
_BITMAP_MIN_SLOTS = 1 << 22  # 4 MB: the same for any file up to 256k rows, so memory stays flat
#: A row's fingerprint: xxh3 of its orjson bytes (xxh3: ~0.12 us/row less than hash() here); 0 becomes 1.
_dumps, _xxh3 = orjson.dumps, xxhash.xxh3_64_intdigest
_SKIPPED = 0  # fingerprint slot of a row that is not compared (unreadable or invalid)


class Duplicate(NamedTuple):
    row: int  # 0-based index of the repeated row
    first: int  # index of its first occurrence
    line: int  # line the repeat starts on, 0 when the reader did not know it


class DuplicateFinder:
    """Collects fingerprints row by row; `found()` lists every repeat in row order."""

    def __init__(self, numpy_above: int | None = None, bitmap_above: int | None = None) -> None:
        self._fps = array("Q")  # row i's fingerprint: unsigned 64-bit, as xxh3 gives them
        self._lines = array("I")  # row i's line; 4 bytes ("L" is 8 on 64-bit Linux)
        # The module's thresholds as they are now (a test lowers them to take a path on a small file).
        self._numpy_above = NUMPY_ABOVE if numpy_above is None else numpy_above
        self._bitmap_above = BITMAP_ABOVE if bitmap_above is None else bitmap_above

    def add(self, index: int, value: Any, line: int | None) -> None:
        fps = self._fps
        if index != len(fps):
            self._pad(index)
        try:  # a 64-bit fingerprint (never 0, which marks skipped rows); inline: this runs per row
            fps.append(_xxh3(_dumps(value)) or 1)
        except TypeError:
            fps.append(_xxh3(repr(value).encode()) or 1)
        self._lines.append(line or 0)

    def _pad(self, index: int) -> None:
        missing = index - len(self._fps)
        if missing > 0:  # rows not compared keep their slot, so positions stay row indexes
            self._fps.extend([_SKIPPED] * missing)
            self._lines.extend([0] * missing)

    def found(self) -> Iterator[Duplicate]:
        n = len(self._fps)
        if n > self._numpy_above:
            pairs = self._pairs_numpy()
        else:
            pairs = self._pairs_dict(self._candidates() if n > self._bitmap_above else None)
        for row, first in pairs:
            yield Duplicate(row, first, self._lines[row])

    def _pairs_dict(self, candidates: set[int] | None) -> Iterator[tuple[int, int]]:
        """Each repeated fingerprint's rows after the first, with that first; only `candidates`
        (when given: a superset of the repeated fingerprints) go into the dict."""
        if candidates is not None and not candidates:
            return
        seen: dict[int, int] = {}
        for row, fp in enumerate(self._fps):
            if fp != _SKIPPED and (candidates is None or fp in candidates):
                first = seen.setdefault(fp, row)
                if first != row:
                    yield row, first

    def _candidates(self) -> set[int]:
        """One pass, no per-row object kept: each fingerprint marks its slot (one byte: faster to
        test and set than a bit) in a table of >= 16 slots per row, and those whose slot was already
        marked are candidates (every repeat, plus about one row in 32 by chance)."""
        fps = self._fps
        size = max(_BITMAP_MIN_SLOTS, 1 << (16 * len(fps)).bit_length())
        marked, mask = bytearray(size), size - 1
        candidates: set[int] = set()
        for fp in fps:
            slot = fp & mask
            if marked[slot]:
                candidates.add(fp)
            else:
                marked[slot] = 1
        candidates.discard(_SKIPPED)
        return candidates

    def _pairs_numpy(self) -> Iterator[tuple[int, int]]:
        import numpy as np

        fps = np.frombuffer(self._fps, dtype=np.uint64)
        order = np.argsort(fps, kind="stable")  # equal fingerprints stay in row order
        ranked = fps[order]
        repeat = np.flatnonzero((ranked[1:] == ranked[:-1]) & (ranked[1:] != _SKIPPED)) + 1
        if not len(repeat):
            return
        # only the repeats are looked at from here on: memory grows with duplicates, not rows
        firsts = order[np.searchsorted(ranked, ranked[repeat], side="left")]
        rows = order[repeat]
        del order, ranked
        by_row = np.argsort(rows, kind="stable")
        yield from zip(rows[by_row].tolist(), firsts[by_row].tolist(), strict=True)
