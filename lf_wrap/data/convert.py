"""Convert between alpaca, sharegpt and OpenAI `messages` files.

Rows go through one neutral shape, `Conversation` (system prompt + role/content turns +
optional chosen/rejected answers), built the way LLaMA-Factory's converters build theirs:
alpaca's `instruction` and `input` become one user turn joined by a newline, exactly what
LLaMA-Factory trains on.  What a target format cannot hold is dropped and reported.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lf_wrap.data.formats import OPENAI_TAGS, Spec
from lf_wrap.data.reader import DatasetFile, Row
from lf_wrap.data.validate import Report, validate_file
from lf_wrap.util.errors import LfWrapError
from lf_wrap.util.files import atomic_write

TARGETS = ("alpaca", "sharegpt", "openai")
ROLE_NAMES = ("user", "assistant", "observation", "function", "system")
# How a turn speaks in an OpenAI chat request: tool output as the user, a function call as the assistant.
CHAT_ROLES = {"user": "user", "assistant": "assistant", "observation": "user", "function": "assistant"}


@dataclass
class Conversation:
    system: str = ""
    turns: list[tuple[str, str]] = field(default_factory=list)  # (role, content), role in ROLE_NAMES
    chosen: str | None = None
    rejected: str | None = None
    tools: Any = None

    @property
    def ranking(self) -> bool:
        return self.chosen is not None

    def chat_messages(self, turns: list[tuple[str, str]] | None = None) -> list[dict[str, str]]:
        """The system prompt and `turns` (default: all of them) as OpenAI chat messages (CHAT_ROLES)."""
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        return msgs + [{"role": CHAT_ROLES[r], "content": c} for r, c in (self.turns if turns is None else turns)]


def to_conversation(row: dict[str, Any], spec: Spec) -> Conversation:
    """A validated row as a Conversation (mirrors LLaMA-Factory's converters)."""
    conv = Conversation()
    syscol, toolcol = spec.col("system"), spec.col("tools")
    conv.system = (row.get(syscol) or "") if syscol else ""
    conv.tools = row.get(toolcol) if toolcol else None
    if spec.formatting == "alpaca":
        hcol = spec.col("history")
        for q, a in (row.get(hcol) or []) if hcol else []:
            conv.turns += [("user", q), ("assistant", a)]
        parts = [row[c] for c in (spec.col("prompt"), spec.col("query")) if c and row.get(c)]
        conv.turns.append(("user", "\n".join(parts)))
        if spec.ranking:
            conv.chosen, conv.rejected = row[spec.col("chosen") or ""], row[spec.col("rejected") or ""]
        else:
            conv.turns.append(("assistant", row[spec.col("response") or ""]))
        return conv
    t = spec.tags
    mapping = {
        t["user_tag"]: "user",
        t["assistant_tag"]: "assistant",
        t["observation_tag"]: "observation",
        t["function_tag"]: "function",
        t["system_tag"]: "system",
    }
    rtag, ctag = t["role_tag"] or "", t["content_tag"] or ""
    messages = row[spec.col("messages") or ""]
    for i, msg in enumerate(messages):
        role = mapping[msg[rtag]]
        if role == "system" and i == 0:
            conv.system = msg[ctag]
            continue
        conv.turns.append((role, msg[ctag]))
    if spec.ranking:
        conv.chosen = row[spec.col("chosen") or ""][ctag]
        conv.rejected = row[spec.col("rejected") or ""][ctag]
    return conv


def from_conversation(conv: Conversation, target: str) -> tuple[dict[str, Any] | None, str | None]:
    """A row in `target` format, or (None, reason) when the format cannot hold it."""
    if target == "alpaca":
        if any(role not in ("user", "assistant") for role, _ in conv.turns):
            return None, "tool/function turns have no place in alpaca"
        turns = conv.turns if conv.ranking else conv.turns[:-1]
        pairs = [[turns[i][1], turns[i + 1][1]] for i in range(0, len(turns) - 1, 2)]
        row: dict[str, Any] = {"instruction": turns[-1][1], "input": ""}
        if conv.ranking:
            row.update(chosen=conv.chosen, rejected=conv.rejected)
        else:
            row["output"] = conv.turns[-1][1]
        if conv.system:
            row["system"] = conv.system
        if pairs:
            row["history"] = pairs
        return row, None
    if target == "sharegpt":
        names = {"user": "human", "assistant": "gpt", "observation": "observation", "function": "function_call"}
        row = {"conversations": [{"from": names[r], "value": c} for r, c in conv.turns]}
        if conv.system:
            row["system"] = conv.system
        if conv.ranking:
            row["chosen"] = {"from": "gpt", "value": conv.chosen}
            row["rejected"] = {"from": "gpt", "value": conv.rejected}
        if conv.tools:
            row["tools"] = conv.tools if isinstance(conv.tools, str) else json.dumps(conv.tools, ensure_ascii=False)
        return row, None
    names = {
        "user": OPENAI_TAGS["user_tag"],
        "assistant": OPENAI_TAGS["assistant_tag"],
        "observation": OPENAI_TAGS["observation_tag"],
        "function": OPENAI_TAGS["function_tag"],
    }
    messages = [{"role": "system", "content": conv.system}] if conv.system else []
    messages += [{"role": names[r], "content": c} for r, c in conv.turns]
    row = {"messages": messages}
    if conv.ranking:
        row["chosen"] = {"role": "assistant", "content": conv.chosen}
        row["rejected"] = {"role": "assistant", "content": conv.rejected}
    if conv.tools:
        row["tools"] = conv.tools
    return row, None


def iter_conversations(path: Path, report: Report) -> Iterator[Conversation]:
    for row in DatasetFile(path).rows():
        if isinstance(row, Row):
            yield to_conversation(row.value, report.spec)


@dataclass
class ConvertResult:
    source: Report
    written: int
    dropped: Counter[str]
    out: Path


def convert(src: Path, out: Path, target: str, fmt: str = "auto", force: bool = False) -> ConvertResult:
    if target not in TARGETS:
        raise LfWrapError(f"--to {target!r}: unknown format", hint=f"use one of {', '.join(TARGETS)}")
    if out.suffix.lower() not in (".json", ".jsonl"):
        raise LfWrapError(f"{out}: output must end in .json (a list) or .jsonl (one row per line)")
    if out.exists() and src.exists() and out.resolve() == src.resolve():
        raise LfWrapError(f"{out}: is the input file; lf-wrap never writes over its input", hint="pick another OUT")
    if out.exists() and not force:
        raise LfWrapError(f"{out}: exists", hint="pick another OUT, or pass --force to replace it")
    report = validate_file(src, fmt)
    if not report.ok:
        from lf_wrap.data.registry import DatasetInvalid

        raise DatasetInvalid(report, f"nothing written to {out}")
    rows: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    for conv in iter_conversations(src, report):
        row, reason = from_conversation(conv, target)
        if row is None:
            dropped[reason or "unsupported"] += 1
        else:
            rows.append(row)
    if out.suffix.lower() == ".jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    else:
        text = json.dumps(rows, ensure_ascii=False, indent=2) + "\n"
    atomic_write(out, text)
    return ConvertResult(report, len(rows), dropped, out)
