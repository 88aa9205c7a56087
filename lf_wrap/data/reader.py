"""Read dataset rows from a JSON array or a JSON Lines file, with real line numbers.

LLaMA-Factory loads `.json` and `.jsonl` files with Hugging Face `datasets`, which accepts
either a top-level JSON list of rows or one JSON object per line, whatever the extension.
This reader accepts the same two shapes and tells which one it found.

- JSON Lines are streamed line by line: memory does not grow with the file. Each line is
  parsed as it is; only a line that fails to parse is checked for being blank.
- JSON arrays are parsed in one go; the line on which each row starts is only worked out
  when a problem has to be reported (`line_of`).

Rows are parsed with msgspec: on 50k alpaca rows (2 CPUs) it read a JSON Lines file in 45 ms
and a JSON array in 61 ms, orjson in 53-60 ms and 81 ms, the standard library in 160-200 ms.
A row that fails to parse is parsed again by the standard library, whose error says where.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count, repeat
from pathlib import Path
from typing import Any, Literal

import msgspec

from lf_wrap.util.errors import LfWrapError

SUPPORTED_SUFFIXES = (".json", ".jsonl")
_WS = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"
_decode = msgspec.json.Decoder().decode  # one decoder, made once: this runs for every row
_Invalid = (msgspec.DecodeError, UnicodeDecodeError)  # msgspec lets a bad byte in a string through as the latter


class DatasetFileError(LfWrapError):
    """The file as a whole cannot be read as a dataset (one message, exit 2)."""


@dataclass(slots=True)
class Row:
    index: int  # 0-based position of the row in the file
    value: Any
    line: int | None = None  # 1-based line where the row starts, when known cheaply


@dataclass(slots=True)
class BadRow:
    """A JSON Lines line that is not valid JSON (the other lines are still read)."""

    index: int
    line: int
    message: str


#: (index, value, line): a row as `DatasetFile.entries()` yields it (value a BadRow for a line that is not JSON)
Entry = tuple[int, Any, int | None]


def _line_at(raw: bytes, pos: int) -> int:
    return raw.count(b"\n", 0, pos) + 1


def _describe_json_error(err: json.JSONDecodeError) -> str:
    msg = err.msg.split(": line ")[0]
    if msg.endswith(" at"):  # "Unterminated string starting at" (the position is printed before)
        msg = msg[:-3] + " here"
    return msg


class DatasetFile:
    """A dataset file opened for validation; `rows()` yields `Row` or `BadRow`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.kind: Literal["array", "jsonl"] = self._sniff()
        except OSError as err:  # no permission, a special file, an I/O error: one message naming the file
            raise self.unreadable(err) from None
        self._array_lines: list[int] | None = None  # each row's line, scanned when an error needs one

    def unreadable(self, err: OSError) -> DatasetFileError:
        return DatasetFileError(
            f"{self.path}: cannot read it ({err.strerror or type(err).__name__})",
            hint="check the path and that you may read the file",
        )

    # -- file-level checks -------------------------------------------------------
    def _sniff(self) -> Literal["array", "jsonl"]:
        path = self.path
        if not path.exists():
            raise DatasetFileError(f"{path}: no such file", hint="check the path")
        if path.is_dir():
            raise DatasetFileError(
                f"{path}: is a directory, not a dataset file",
                hint="pass one .json or .jsonl file",
            )
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            raise DatasetFileError(
                f"{path}: unsupported file type {path.suffix or '(no extension)'!r}",
                hint="lf-wrap reads .json (a list of rows) and .jsonl (one row per line); "
                "LLaMA-Factory picks its reader from the extension, so rename or convert the file",
            )
        with path.open("rb") as f:
            head = f.read(65536)
        if not head:
            raise DatasetFileError(f"{path}: file is empty", hint='add rows, e.g. [{"instruction": …, "output": …}]')
        if head.startswith(_BOM):
            raise DatasetFileError(
                f"{path}:1:1: file starts with a UTF-8 byte-order mark (BOM)",
                hint="save the file as UTF-8 without BOM (`lf-wrap data convert` writes a clean copy)",
            )
        nul = head.find(b"\x00")
        if nul != -1:
            raise DatasetFileError(
                f"{path}:{_line_at(head, nul)}: contains NUL bytes; this looks like a binary file, not JSON",
                hint="pass the JSON or JSON Lines file itself (not a compressed or binary file)",
            )
        first, offset = self._first_content_byte()
        if first is None:
            raise DatasetFileError(f"{path}: file contains only whitespace", hint="add rows to the file")
        if first == b"[":
            return "array"
        if first == b"{":
            self._refuse_single_object()
            return "jsonl"
        with path.open("rb") as f:
            line = _line_at(f.read(offset), offset)
        raise DatasetFileError(
            f"{path}:{line}: top level must be a list of rows `[...]` or one JSON object per line, "
            f"found {first.decode('utf-8', 'replace')!r}",
            hint="wrap the rows in [ ... ] or write one {...} object per line",
        )

    def _refuse_single_object(self) -> None:
        """A pretty-printed single object looks like JSON Lines whose first line is broken."""
        with self.path.open("rb") as f:
            first_line = f.readline()
        try:
            _decode(first_line)
            return
        except _Invalid:
            pass
        if self.path.stat().st_size > 256 * 1024 * 1024:
            return
        try:
            whole = _decode(self.path.read_bytes())
        except _Invalid:
            return
        if isinstance(whole, dict):
            raise DatasetFileError(
                f"{self.path}:1: top level is one JSON object, not a list of rows",
                hint="wrap the rows in [ ... ], or write one object per line (JSON Lines)",
            )

    def _first_content_byte(self) -> tuple[bytes | None, int]:
        offset = 0
        with self.path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                stripped = chunk.lstrip(_WS)
                if stripped:
                    return stripped[:1], offset + len(chunk) - len(stripped)
                offset += len(chunk)
        return None, offset

    # -- rows --------------------------------------------------------------------
    def rows(self) -> Iterator[Row | BadRow]:
        for index, value, line in self.entries():
            yield value if isinstance(value, BadRow) else Row(index, value, line)

    def entries(self) -> Iterator[Entry]:
        """Each row as a plain (index, value, line) tuple, a line that is not JSON as (index, BadRow,
        line): `rows()` without an object per row, for `data validate`'s loop over millions of rows.
        A JSON array is read and parsed here and now (its `line` is None: see `line_of`)."""
        if self.kind == "jsonl":
            return self._jsonl_entries()
        try:
            raw = self.path.read_bytes()
        except OSError as err:
            raise self.unreadable(err) from None
        try:
            data = _decode(raw)
        except _Invalid:
            self._raise_array_error(raw)
        del raw  # the file's bytes are not kept while its rows are checked
        if not isinstance(data, list):  # pragma: no cover - sniffing saw "["
            raise DatasetFileError(f"{self.path}: top level must be a list of rows")
        return zip(count(), data, repeat(None))

    def _raise_array_error(self, raw: bytes) -> None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            line = _line_at(raw, err.start)
            raise DatasetFileError(
                f"{self.path}:{line}: not valid UTF-8 (byte 0x{raw[err.start]:02x} at offset {err.start})",
                hint="re-save the file as UTF-8 (e.g. `iconv -f GBK -t UTF-8 in.json > out.json`)",
            ) from None
        try:
            json.loads(text)
        except json.JSONDecodeError as err:
            truncated = err.pos >= len(text.rstrip()) or not text.rstrip().endswith("]")
            raise DatasetFileError(
                f"{self.path}:{err.lineno}:{err.colno}: invalid JSON: {_describe_json_error(err)}"
                + (" (the file ends early: is it truncated?)" if truncated else ""),
                hint="fix the JSON syntax at that position (a missing comma, quote or bracket)",
            ) from None
        raise DatasetFileError(f"{self.path}: invalid JSON")  # pragma: no cover

    def _jsonl_entries(self) -> Iterator[Entry]:
        index = 0
        loads, invalid = _decode, _Invalid
        try:
            f = self.path.open("rb")
        except OSError as err:
            raise self.unreadable(err) from None
        with f:
            for lineno, line in enumerate(f, start=1):
                try:  # parse first: a blank line fails to parse too, and only then is it looked at
                    value = loads(line)
                except invalid:
                    if not line.strip(_WS):
                        continue
                    yield index, BadRow(index, lineno, self._jsonl_error(line)), lineno
                else:
                    yield index, value, lineno
                index += 1

    @staticmethod
    def _jsonl_error(line: bytes) -> str:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            return f"not valid UTF-8 (byte 0x{line[err.start]:02x} at column {err.start + 1})"
        try:
            json.loads(text)
        except json.JSONDecodeError as err:
            return f"invalid JSON at column {err.colno}: {_describe_json_error(err)}"
        return "invalid JSON"  # pragma: no cover

    # -- locations ---------------------------------------------------------------
    def line_of(self, row: Row | BadRow) -> int:
        """The 1-based line on which `row` starts."""
        if row.line is not None:
            return row.line
        if self._array_lines is None:
            self._array_lines = self._scan_array_lines()
        if row.index < len(self._array_lines):
            return self._array_lines[row.index]
        return 1

    def _scan_array_lines(self) -> list[int]:
        text = self.path.read_bytes().decode("utf-8")
        decoder = json.JSONDecoder()
        lines: list[int] = []
        pos = text.index("[") + 1
        line, last = 1, 0
        n = len(text)
        while True:
            while pos < n and text[pos] in " \t\r\n,":
                pos += 1
            if pos >= n or text[pos] == "]":
                break
            line += text.count("\n", last, pos)
            last = pos
            lines.append(line)
            _, pos = decoder.raw_decode(text, pos)
        return lines
