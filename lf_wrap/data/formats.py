"""Dataset formats, described the way LLaMA-Factory describes them.

`Spec` mirrors LLaMA-Factory's `DatasetAttr` (src/llamafactory/data/parser.py, v0.9.5):
the same defaults, and the same rule that a `columns` (or `tags`) block in
`dataset_info.json` resets every column (tag) it does not name to None.  Validation of a
file given with `--format` and of an entry read from `dataset_info.json` both go through
`spec_from_entry`, so what lf-wrap checks is what LLaMA-Factory will read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from lf_wrap.util.errors import LfWrapError

Formatting = Literal["alpaca", "sharegpt", "openai"]
FORMATS = ("alpaca", "sharegpt", "openai", "preference", "kto")
FormatName = Literal["alpaca", "sharegpt", "openai", "preference", "kto"]
Style = Literal["alpaca", "sharegpt", "openai"]

COLUMN_NAMES = (
    "prompt", "query", "response", "history", "messages", "system", "tools",
    "images", "videos", "audios", "chosen", "rejected", "kto_tag",
)  # fmt: skip
TAG_NAMES = (
    "role_tag", "content_tag", "user_tag", "assistant_tag",
    "observation_tag", "function_tag", "system_tag",
)  # fmt: skip

DEFAULT_COLUMNS: dict[str, str | None] = {
    "prompt": "instruction",
    "query": "input",
    "response": "output",
    "history": None,
    "messages": "conversations",
    "system": None,
    "tools": None,
    "images": None,
    "videos": None,
    "audios": None,
    "chosen": None,
    "rejected": None,
    "kto_tag": None,
}
DEFAULT_TAGS: dict[str, str | None] = {
    "role_tag": "from",
    "content_tag": "value",
    "user_tag": "human",
    "assistant_tag": "gpt",
    "observation_tag": "observation",
    "function_tag": "function_call",
    "system_tag": "system",
}

# OpenAI `messages` data is registered as LLaMA-Factory's `sharegpt` formatting with
# role/content tags (as LLaMA-Factory's own `mllm_demo` entry does), not as its `openai`
# formatting: in v0.9.5 that converter appends "detailed thinking off" to every system
# prompt, which would silently change what the model is trained on.
OPENAI_TAGS: dict[str, str] = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "observation_tag": "tool",
    "function_tag": "function_call",
    "system_tag": "system",
}


@dataclass(frozen=True)
class Spec:
    """How to read rows: LLaMA-Factory's formatting, ranking flag, columns and tags."""

    formatting: Formatting = "alpaca"
    ranking: bool = False
    columns: dict[str, str | None] = field(default_factory=lambda: dict(DEFAULT_COLUMNS))
    tags: dict[str, str | None] = field(default_factory=lambda: dict(DEFAULT_TAGS))

    def col(self, name: str) -> str | None:
        return self.columns.get(name)

    def tag(self, name: str) -> str | None:
        return self.tags.get(name)

    @property
    def known_keys(self) -> set[str]:
        keys = {v for v in self.columns.values() if v}
        if self.formatting == "alpaca":
            keys.discard(self.columns.get("messages") or "")
        return keys


class EntryError(LfWrapError):
    pass


def spec_from_entry(entry: dict[str, Any], where: str) -> Spec:
    """Build a Spec from a dataset_info.json entry, as DatasetAttr.join does."""
    formatting = entry.get("formatting", "alpaca")
    if formatting not in ("alpaca", "sharegpt", "openai"):
        raise EntryError(
            f"{where}.formatting: unknown formatting {formatting!r}",
            hint='use "alpaca", "sharegpt" or "openai"',
        )
    ranking = entry.get("ranking", False)
    if not isinstance(ranking, bool):
        raise EntryError(f"{where}.ranking: must be true or false, got {ranking!r}")
    columns = dict(DEFAULT_COLUMNS)
    tags = dict(DEFAULT_TAGS)
    for block, names, target in (("columns", COLUMN_NAMES, columns), ("tags", TAG_NAMES, tags)):
        if block not in entry:
            continue
        given = entry[block]
        if not isinstance(given, dict):
            raise EntryError(f"{where}.{block}: must be an object mapping names to keys, got {type(given).__name__}")
        for key, value in given.items():
            if key not in names:
                raise EntryError(
                    f"{where}.{block}.{key}: unknown {block[:-1]} name",
                    hint=f"known names: {', '.join(names)}",
                )
            if value is not None and not isinstance(value, str):
                raise EntryError(f"{where}.{block}.{key}: must be a string, got {type(value).__name__}")
        for name in names:  # DatasetAttr.join: unnamed ones become None
            target[name] = given.get(name)
    return Spec(formatting=formatting, ranking=ranking, columns=columns, tags=tags)


def base_entry(fmt: FormatName, *, style: Style = "alpaca") -> dict[str, Any]:
    """The fullest dataset_info.json entry for a user-facing format (before pruning).

    `style` only matters for "preference": pairs in alpaca style (instruction + chosen +
    rejected strings), sharegpt style or OpenAI style (a conversation + chosen/rejected
    message objects); and for "kto": rows of any of the three styles with a boolean
    `kto_tag` (true: a good answer, false: a bad one), for LLaMA-Factory's `stage: kto`.
    """
    if fmt == "kto":
        kto = base_entry("openai" if style == "openai" else "sharegpt" if style == "sharegpt" else "alpaca")
        kto["columns"]["kto_tag"] = "kto_tag"
        return kto
    if fmt == "alpaca":
        return {"columns": {"prompt": "instruction", "query": "input", "response": "output",
                            "system": "system", "history": "history"}}  # fmt: skip
    if fmt == "preference" and style == "openai":
        return {"formatting": "sharegpt", "ranking": True,
                "columns": {"messages": "messages", "system": "system", "tools": "tools",
                            "chosen": "chosen", "rejected": "rejected"},
                "tags": dict(OPENAI_TAGS)}  # fmt: skip
    if fmt == "preference" and style == "alpaca":
        columns = {"prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected"}
        return {"ranking": True, "columns": {**columns, "system": "system"}}
    if fmt in ("sharegpt", "preference"):
        cols: dict[str, str] = {"messages": "conversations", "system": "system", "tools": "tools"}
        entry: dict[str, Any] = {"formatting": "sharegpt", "columns": cols}
        if fmt == "preference":
            entry["ranking"] = True
            cols.update(chosen="chosen", rejected="rejected")
        return entry
    return {"formatting": "sharegpt", "columns": {"messages": "messages", "system": "system", "tools": "tools"},
            "tags": dict(OPENAI_TAGS)}  # fmt: skip


def spec_for_format(fmt: FormatName, *, style: Style = "alpaca") -> Spec:
    return spec_from_entry(base_entry(fmt, style=style), where=f"<{fmt} format>")


def detect_format(row: Any) -> tuple[FormatName, Style] | None:
    """Guess the user-facing format from one row: (format, style) or None."""
    if not isinstance(row, dict):
        return None
    pair = "chosen" in row and "rejected" in row
    if "kto_tag" in row and not pair:
        style: Style = "openai" if "messages" in row else "sharegpt" if "conversations" in row else "alpaca"
        return "kto", style
    if "messages" in row:
        return ("preference", "openai") if pair else ("openai", "openai")
    if "conversations" in row:
        return ("preference", "sharegpt") if pair else ("sharegpt", "sharegpt")
    if pair:
        return "preference", "alpaca"
    if "instruction" in row or "output" in row:
        return "alpaca", "alpaca"
    return None
