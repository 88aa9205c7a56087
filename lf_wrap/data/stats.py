"""Dataset statistics: rows, duplicates, and token lengths with the model's own tokenizer
and chat template, so truncation at `cutoff_len` is known before training."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lf_wrap.data.convert import Conversation, iter_conversations
from lf_wrap.data.validate import Report, validate_file
from lf_wrap.util.errors import LfWrapError, require
from lf_wrap.util.percentiles import percentile


@dataclass
class Stats:
    report: Report
    unit: str  # "tokens" or "characters"
    lengths: list[int] = field(default_factory=list)
    cutoff_len: int | None = None

    @property
    def truncated(self) -> int | None:
        if self.cutoff_len is None:
            return None
        return sum(1 for n in self.lengths if n > self.cutoff_len)

    def to_dict(self) -> dict[str, Any]:
        s = sorted(self.lengths)
        return {
            "file": self.report.file,
            "format": self.report.format,
            "rows": self.report.rows,
            "errors": self.report.errors,
            "duplicates": self.report.duplicates,
            "unit": self.unit,
            "length": {
                "min": s[0] if s else 0,
                "p50": percentile(s, 0.5),
                "p95": percentile(s, 0.95),
                "max": s[-1] if s else 0,
            },
            "cutoff_len": self.cutoff_len,
            "truncated": self.truncated,
        }

    def lines(self) -> list[str]:
        """What `lf-wrap data stats` prints."""
        d = self.to_dict()
        length = d["length"]
        out = [
            f"file        {d['file']} ({d['format']})",
            f"rows        {d['rows']}",
            f"duplicates  {d['duplicates']}",
            f"{d['unit']:<11} min {length['min']}  p50 {length['p50']}  p95 {length['p95']}  max {length['max']}"
            + ("  (chat template applied)" if d["unit"] == "tokens" else ""),
        ]
        if self.cutoff_len is not None and d["unit"] != "tokens":
            out.append("truncated   (pass --tokenizer to count tokens against --cutoff-len)")
        elif self.cutoff_len is not None:
            out.append(f"truncated   {d['truncated']} of {d['rows']} rows exceed cutoff_len {self.cutoff_len}")
        return out


def _messages(conv: Conversation) -> list[dict[str, str]]:
    msgs = conv.chat_messages()
    if conv.ranking:
        msgs.append({"role": "assistant", "content": max(conv.chosen or "", conv.rejected or "", key=len)})
    return msgs


def compute(path: Path, fmt: str = "auto", tokenizer_dir: Path | None = None, cutoff_len: int | None = None) -> Stats:
    report = validate_file(path, fmt)
    if not report.ok:
        from lf_wrap.data.registry import DatasetInvalid

        raise DatasetInvalid(report, "no statistics computed")
    tokenizer = None
    if tokenizer_dir is not None:
        tokenizer = load_tokenizer(tokenizer_dir)
    stats = Stats(report=report, unit="tokens" if tokenizer else "characters", cutoff_len=cutoff_len)
    stats.lengths = char_lengths(path, report) if tokenizer is None else token_lengths(path, report, tokenizer)
    return stats


def token_lengths(path: Path, report: Report, tokenizer: Any) -> list[int]:
    """Tokens per row with the model's tokenizer and chat template (`report` from validation)."""
    return [
        len(tokenizer.apply_chat_template(_messages(conv), tokenize=True, return_dict=False))
        for conv in iter_conversations(path, report)
    ]


def char_lengths(path: Path, report: Report) -> list[int]:
    """Characters of text per row (no tokenizer needed)."""
    return [sum(len(m["content"]) for m in _messages(conv)) for conv in iter_conversations(path, report)]


def suggest_cutoff_len(lengths: list[int], max_positions: int | None = None, multiple: int = 64) -> tuple[int, str]:
    """cutoff_len for these token lengths: their 99th percentile rounded up to a multiple of
    `multiple` (so 99% of rows are trained whole and no memory goes to padding room the
    data never uses), capped at the model's max_position_embeddings. Returns (value, why)."""
    s = sorted(lengths)
    p99 = percentile(s, 0.99)
    value = max(multiple, math.ceil(p99 / multiple) * multiple)
    why = f"p99 of {len(s)} rows is {p99} tokens (model's tokenizer + chat template), rounded up to x{multiple}"
    if max_positions and value > max_positions:
        value = max_positions
        why += f", capped at max_position_embeddings {max_positions}"
    longer = sum(1 for n in s if n > value)
    return value, why + f"; {longer} row{'s' * (longer != 1)} longer (truncated), longest {s[-1] if s else 0}"


def load_tokenizer(path: Path) -> Any:
    if not (path / "tokenizer_config.json").exists() and not (path / "tokenizer.json").exists():
        raise LfWrapError(
            f"{path}: no tokenizer files (tokenizer.json / tokenizer_config.json)", hint="pass a model folder"
        )
    require(("transformers",), "counting tokens (--tokenizer)")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    if not getattr(tok, "chat_template", None):
        raise LfWrapError(f"{path}: the tokenizer has no chat_template", hint="use a chat model's folder")
    return tok
