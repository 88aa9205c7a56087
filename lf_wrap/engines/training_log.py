"""What a training run writes, read back: LLaMA-Factory's trainer_log.jsonl (one line per
logging step), its checkpoints, train_results.json, and the reward dicts DPO and KTO print.

The DPO/KTO trainers log rewards/chosen, rewards/rejected, rewards/accuracies and
rewards/margins beside the loss, but LLaMA-Factory's trainer_log.jsonl keeps only the accuracy.
`LogMetrics` reads them from the engine's own log lines (transformers prints each log dict),
and `reward_summary` takes the full-precision history from output/trainer_state.json for the
manifest.
"""

from __future__ import annotations

import ast
import json
import re
from collections import deque
from pathlib import Path
from typing import Any

from lf_wrap.util.errors import LfWrapError
from lf_wrap.util.files import read_json_object

# The metrics DPO and KTO log (trainer.py: get_batch_loss_metrics / log), shown and recorded.
METRICS = ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins")
KTO_METRICS = ("kl",)


def read_trainer_log(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """New complete lines of LLaMA-Factory's trainer_log.jsonl since `offset`."""
    if not path.exists():
        return [], offset
    with path.open("rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n")
    if end == -1:
        return [], offset
    entries = []
    for line in data[: end + 1].splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries, offset + end + 1


def last_checkpoint(output_dir: Path) -> Path | None:
    best: tuple[int, Path] | None = None
    for p in output_dir.glob("checkpoint-*"):
        try:
            step = int(p.name.split("-", 1)[1])
        except ValueError:
            continue
        if p.is_dir() and (best is None or step > best[0]):
            best = (step, p)
    return best[1] if best else None


_LOG_DICT = re.compile(r"\{'(?:loss|rewards/[a-z]+)': [^{}]*\}")


def _numbers(logged: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in logged.items():
        try:
            out[str(key)] = float(value)
        except (TypeError, ValueError):
            continue
    return out


class LogMetrics:
    """Pairs the rewards printed in the engine's log with the progress entries of trainer_log.jsonl.

    Each training log step prints one dict (transformers' ProgressCallback: `{'loss': '0.6931',
    'rewards/chosen': '0.01', ...}`, four significant digits) and writes one trainer_log.jsonl
    line; the two are matched in order. An entry whose dict has not reached the log yet waits for
    the next poll (or the end of the run)."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.offset = log.stat().st_size if log.exists() else 0
        self.found: deque[dict[str, float]] = deque()
        self.waiting: list[dict[str, Any]] = []

    def _read(self) -> None:
        if not self.log.exists():
            return
        with self.log.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n")
        if end == -1:
            return
        self.offset += end + 1
        for match in _LOG_DICT.finditer(data[: end + 1].decode("utf-8", errors="replace")):
            try:
                logged = ast.literal_eval(match.group(0))
            except (ValueError, SyntaxError):
                continue
            if isinstance(logged, dict) and "loss" in logged and any(k in logged for k in METRICS):
                self.found.append(_numbers(logged))

    def attach(self, entries: list[dict[str, Any]], final: bool = False) -> list[dict[str, Any]]:
        """The entries ready to show, each training step with its rewards added."""
        self._read()
        self.waiting.extend(entries)
        ready: list[dict[str, Any]] = []
        while self.waiting:
            entry = self.waiting[0]
            if entry.get("loss") is not None:
                if not self.found and not final:
                    break
                if self.found:
                    logged = self.found.popleft()
                    entry = {**entry, **{k: logged[k] for k in (*METRICS, *KTO_METRICS) if k in logged}}
            ready.append(entry)
            self.waiting.pop(0)
        return ready


def reward_summary(output_dir: Path, stage: str) -> dict[str, Any] | None:
    """The rewards over training, from output/trainer_state.json (full precision), for the manifest."""
    try:
        history = read_json_object(output_dir / "trainer_state.json").get("log_history")
    except LfWrapError:
        return None
    history = history if isinstance(history, list) else []
    keys = (*METRICS, *KTO_METRICS, "loss")
    steps = [
        {"step": h.get("step"), "epoch": h.get("epoch"), **{k: h[k] for k in keys if k in h}}
        for h in history
        if isinstance(h, dict) and "loss" in h and any(k in h for k in METRICS)
    ]
    if not steps:
        return None
    return {"stage": stage, "metrics": list(METRICS), "first": steps[0], "last": steps[-1], "history": steps}


def average_loss(output_dir: Path) -> float | None:
    """The run's mean training loss, as train_results.json records it (None: not written)."""
    try:
        loss = read_json_object(output_dir / "train_results.json").get("train_loss")
    except LfWrapError:
        return None
    return loss if isinstance(loss, int | float) else None
