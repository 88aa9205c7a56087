"""Progress on stderr: a tqdm bar on a terminal, plain lines otherwise.

`Progress` shows training from LLaMA-Factory's trainer_log.jsonl entries (JSON lines on
stdout with --json); `Ticker` counts answers (`lf-wrap eval`).
"""

from __future__ import annotations

import json
import sys
from typing import Any, Literal

from lf_wrap.util import console

Mode = Literal["bar", "lines", "json"]


def _fmt_time(value: Any) -> str:
    return str(value) if value is not None else "?"


# DPO/KTO log the implicit rewards (beta x log-prob ratio to the reference model) of the chosen and
# rejected answers; engines/training_log.py adds them to the progress entries.
REWARDS = (("rewards/chosen", "chosen"), ("rewards/rejected", "rejected"), ("rewards/margins", "margin"))


def _rewards(entry: dict[str, Any]) -> list[str]:
    parts = [f"{name} {entry[key]:+.3f}" for key, name in REWARDS if entry.get(key) is not None]
    if entry.get("rewards/accuracies") is not None:
        parts.append(f"acc {entry['rewards/accuracies']:.0%}")
    return parts


def describe(entry: dict[str, Any]) -> str:
    parts = [f"step {entry.get('current_steps', '?')}/{entry.get('total_steps', '?')}"]
    if entry.get("loss") is not None:
        parts.append(f"loss {entry['loss']:.4f}")
    if entry.get("eval_loss") is not None:  # an evaluation on the validation split (val_size / eval_dataset)
        parts.append(f"eval_loss {entry['eval_loss']:.4f}")
    parts.extend(_rewards(entry))
    if entry.get("lr") is not None:
        parts.append(f"lr {entry['lr']:.2e}")
    if entry.get("epoch") is not None:
        parts.append(f"epoch {entry['epoch']:.2f}")
    parts.append(f"elapsed {_fmt_time(entry.get('elapsed_time'))}")
    parts.append(f"eta {_fmt_time(entry.get('remaining_time'))}")
    return "  ".join(parts)


class Progress:
    def __init__(self, mode: Mode, label: str) -> None:
        self.mode = mode
        self.label = label
        self.bar: Any = None
        self.last: dict[str, Any] | None = None
        self.last_loss: float | None = None
        self.last_eval_loss: float | None = None

    @classmethod
    def choose(cls, as_json: bool, label: str) -> Progress:
        if as_json:
            return cls("json", label)
        return cls("bar" if sys.stderr.isatty() else "lines", label)

    def update(self, entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            self.last = entry
            if entry.get("loss") is not None:
                self.last_loss = entry["loss"]
            if entry.get("eval_loss") is not None:
                self.last_eval_loss = entry["eval_loss"]
            if self.mode == "json":
                console.out(json.dumps({"event": "progress", **entry}))
            elif self.mode == "lines":
                console.note(f"{self.label}: {describe(entry)}")
            else:
                self._bar(entry)

    def _bar(self, entry: dict[str, Any]) -> None:
        from tqdm import tqdm

        total = entry.get("total_steps")
        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.label, unit="step", file=sys.stderr, dynamic_ncols=True)
        step = entry.get("current_steps", 0)
        self.bar.update(max(0, step - self.bar.n))
        post = {}
        if self.last_loss is not None:
            post["loss"] = f"{self.last_loss:.4f}"
        if self.last_eval_loss is not None:  # kept beside the train loss until the next evaluation
            post["eval_loss"] = f"{self.last_eval_loss:.4f}"
        if entry.get("rewards/margins") is not None:
            post["margin"] = f"{entry['rewards/margins']:+.3f}"
        if entry.get("rewards/accuracies") is not None:
            post["acc"] = f"{entry['rewards/accuracies']:.0%}"
        if entry.get("lr") is not None:
            post["lr"] = f"{entry['lr']:.1e}"
        self.bar.set_postfix(post, refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Ticker:
    """Progress over a count of things done: a tqdm bar on a terminal, a line every ~10% otherwise."""

    def __init__(self, total: int, label: str, unit: str) -> None:
        self.total, self.done, self.bar, self.next_line = total, 0, None, 0
        self.label, self.unit = label, unit
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=label, unit=unit, file=sys.stderr, dynamic_ncols=True)

    def __call__(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.done >= self.next_line or self.done == self.total:
            console.note(f"{self.label}: {self.done}/{self.total} {self.unit}s")
            self.next_line = self.done + max(1, self.total // 10)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
