"""What kind of conversations a dataset trains: with a system prompt? more than one turn?

The template check (lf_wrap/model/template_agreement.py) compares training and serving on a two-turn
conversation with and without a system prompt. A difference only matters for the kinds of
conversation the model is actually trained on: a single-turn dataset without system
prompts never teaches the model what an earlier turn or a system block looks like, so a
difference there changes nothing it learned (it is still shown, as a note).

Streamed over the rows (no file is read whole); rows are counted, not validated —
`data validate` does that.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lf_wrap.data.formats import Spec
from lf_wrap.data.reader import DatasetFile, Row


@dataclass(frozen=True)
class Shape:
    rows: int = 0
    with_system: int = 0  # rows with a non-empty system prompt
    multi_turn: int = 0  # rows with more than one user turn (alpaca `history`, or several user messages)

    def __add__(self, other: Shape) -> Shape:
        return Shape(self.rows + other.rows, self.with_system + other.with_system, self.multi_turn + other.multi_turn)

    def kinds(self) -> dict[str, Any]:
        """What the template check counts (engines/inside/llamafactory_probe.py's job "data")."""
        return {"with_system": self.with_system > 0, "multi_turn": self.multi_turn > 0, "rows": self.rows}

    def describe(self) -> str:
        return f"{self.rows} rows, {self.with_system} with a system prompt, {self.multi_turn} with more than one turn"


def _row_shape(row: Any, spec: Spec) -> tuple[bool, bool]:
    """(has a system prompt, has more than one user turn) for one row."""
    if not isinstance(row, dict):
        return False, False
    system_col = spec.col("system")
    system = bool(system_col and isinstance(row.get(system_col), str) and row[system_col].strip())
    if spec.formatting == "alpaca":
        history_col = spec.col("history")
        history = row.get(history_col) if history_col else None
        return system, isinstance(history, list) and len(history) > 0
    messages = row.get(spec.col("messages") or "")
    if not isinstance(messages, list):
        return system, False
    role_tag, content_tag = spec.tag("role_tag") or "role", spec.tag("content_tag") or "content"
    user_tag, system_tag = spec.tag("user_tag"), spec.tag("system_tag")
    users = 0
    for msg in messages:
        if not isinstance(msg, dict):
            continue
        role = msg.get(role_tag)
        if role == user_tag:
            users += 1
        elif system_tag and role == system_tag and str(msg.get(content_tag) or "").strip():
            system = True
    return system, users > 1


def conversation_shape(path: Path, spec: Spec) -> Shape:
    """Count the rows of `path` (read as `spec` describes) with a system prompt and with several turns."""
    rows = with_system = multi = 0
    for item in DatasetFile(path).rows():
        if not isinstance(item, Row):
            continue
        rows += 1
        system, several = _row_shape(item.value, spec)
        with_system += system
        multi += several
    return Shape(rows, with_system, multi)


def total(shapes: Iterable[Shape]) -> Shape:
    out = Shape()
    for shape in shapes:
        out = out + shape
    return out
