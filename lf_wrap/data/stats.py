"""Dataset statistics: rows, duplicates, and token lengths with the model's own tokenizer
and chat template, so truncation at `cutoff_len` is known before training."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lf_wrap.data.convert import Conversation, iter_conversations
from lf_wrap.data.validate import Report, validate_file
from lf_wrap.errors import LfWrapError


def _percentile(sorted_values: list[int], q: float) -> int:
    if not sorted_values:
        return 0
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


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
                "p50": _percentile(s, 0.5),
                "p95": _percentile(s, 0.95),
                "max": s[-1] if s else 0,
            },
            "cutoff_len": self.cutoff_len,
            "truncated": self.truncated,
        }


def _messages(conv: Conversation) -> list[dict[str, str]]:
    roles = {"user": "user", "assistant": "assistant", "observation": "user", "function": "assistant"}
    msgs = [{"role": "system", "content": conv.system}] if conv.system else []
    msgs += [{"role": roles[r], "content": c} for r, c in conv.turns]
    if conv.ranking:
        msgs.append({"role": "assistant", "content": max(conv.chosen or "", conv.rejected or "", key=len)})
    return msgs


def compute(path: Path, fmt: str = "auto", tokenizer_dir: Path | None = None, cutoff_len: int | None = None) -> Stats:
    report = validate_file(path, fmt)
    if not report.ok:
        from lf_wrap.data.registry import DatasetInvalid

        raise DatasetInvalid(report)
    tokenizer = None
    if tokenizer_dir is not None:
        tokenizer = load_tokenizer(tokenizer_dir)
    stats = Stats(report=report, unit="tokens" if tokenizer else "characters", cutoff_len=cutoff_len)
    for conv in iter_conversations(path, report):
        msgs = _messages(conv)
        if tokenizer is None:
            stats.lengths.append(sum(len(m["content"]) for m in msgs))
        else:
            ids = tokenizer.apply_chat_template(msgs, tokenize=True, return_dict=False)
            stats.lengths.append(len(ids))
    return stats


def load_tokenizer(path: Path) -> Any:
    if not (path / "tokenizer_config.json").exists() and not (path / "tokenizer.json").exists():
        raise LfWrapError(
            f"{path}: no tokenizer files (tokenizer.json / tokenizer_config.json)", hint="pass a model folder"
        )
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    if not getattr(tok, "chat_template", None):
        raise LfWrapError(f"{path}: the tokenizer has no chat_template", hint="use a chat model's folder")
    return tok
