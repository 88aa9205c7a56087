"""Rows with an answer: a prompt (the system prompt, earlier turns, the question) and the answer
the dataset expects, read the way LLaMA-Factory reads the rows (data/convert.py).

`lf-wrap check` asks a served model a dataset's prompts and compares its answers with these
(golden answers); `lf-wrap eval` asks the base and the tuned model. One reader for both: the
last assistant turn is the answer, every turn before it the prompt, in OpenAI chat roles;
preference pairs (chosen/rejected) are no answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lf_wrap.data.convert import to_conversation
from lf_wrap.data.reader import DatasetFile
from lf_wrap.data.reader import Row as FileRow
from lf_wrap.data.registry import DatasetInvalid, entry_file, lookup, read_info, validate_entry
from lf_wrap.data.validate import Report, validate_file
from lf_wrap.util.errors import LfWrapError


@dataclass
class Row:
    index: int  # position in the dataset(s), in file order (LLaMA-Factory's order)
    messages: list[dict[str, str]]
    expected: str
    # lf-wrap's own optional key: words of which a right answer contains at least one
    # (`lf-wrap eval` counts those hits; LLaMA-Factory ignores the key)
    expect: tuple[str, ...] = ()

    @property
    def prompt(self) -> str:
        return self.messages[-1]["content"] if self.messages else ""


def read_rows(path: Path, report: Report, start: int = 0) -> tuple[list[Row], int]:
    """(the rows with an answer, how many rows the file has) of a validated file; indexes from `start`."""
    out: list[Row] = []
    count = 0
    rows = (row for row in DatasetFile(path).rows() if isinstance(row, FileRow))
    for i, row in enumerate(rows):
        count = i + 1
        conv = to_conversation(row.value, report.spec)
        if conv.ranking or not conv.turns or conv.turns[-1][0] != "assistant":
            continue
        expect = row.value.get("expect") if isinstance(row.value, dict) else None
        words = tuple(w for w in expect if isinstance(w, str) and w.strip()) if isinstance(expect, list) else ()
        out.append(Row(start + i, conv.chat_messages(conv.turns[:-1]), conv.turns[-1][1], words))
    return out, count


def from_file(path: Path, outcome: str) -> tuple[list[Row], Report]:
    """A dataset file (alpaca, sharegpt or openai rows), validated first; `outcome` says what does
    not happen when it has errors ("nothing evaluated")."""
    report = validate_file(path, "auto")
    if not report.ok:
        raise DatasetInvalid(report, outcome)
    return read_rows(path, report)[0], report


def from_registered(dataset_dir: Path, names: list[str], cap: int | None = None) -> tuple[list[Row], int]:
    """(rows with an answer, rows in all) of datasets registered in `dataset_dir`, one after the other;
    `cap` keeps the first rows of each, as LLaMA-Factory's max_samples does."""
    rows: list[Row] = []
    total = 0
    info = read_info(dataset_dir)
    for name in names:
        path = entry_file(dataset_dir, name, lookup(info, dataset_dir, name))
        report = validate_entry(dataset_dir, name)
        if not report.ok:
            raise LfWrapError(
                f"dataset {name!r} has errors",
                hint=f"run `lf-wrap data validate --dataset-dir {dataset_dir} --name {name}`",
            )
        found, count = read_rows(path, report, total)
        if cap is not None:
            found, count = [r for r in found if r.index - total < cap], min(count, cap)
        rows += found
        total += count
    return rows, total


def no_answers(where: str) -> LfWrapError:
    return LfWrapError(
        f"{where}: no rows with an answer to compare (every row needs a prompt and the expected answer)",
        hint="give a dataset whose rows end with the assistant's answer (alpaca `output`, sharegpt `gpt`, openai "
        "`assistant`); preference rows (chosen/rejected) are not answers",
    )


def spread(rows: list[Row], n: int) -> list[Row]:
    """`n` rows spread evenly over `rows`, deterministic (0: all)."""
    if not n or len(rows) <= n:
        return rows
    step = len(rows) / n
    return [rows[int(i * step)] for i in range(n)]
