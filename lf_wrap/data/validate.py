"""Row-by-row dataset checks that agree with LLaMA-Factory's converters.

LLaMA-Factory (src/llamafactory/data/converter.py, processor/supervised.py, v0.9.5)
*drops* malformed rows with a log warning, or crashes with a KeyError/TypeError after the
model has loaded.  These checks find the same problems before anything heavy starts and
report every one of them as `FILE:LINE: [row N].field: what is wrong — how to fix`.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, Literal

from lf_wrap.data.duplicates import DuplicateFinder
from lf_wrap.data.formats import FormatName, Spec, detect_format, spec_for_format
from lf_wrap.data.reader import BadRow, DatasetFile, Entry, Row
from lf_wrap.util.errors import LfWrapError

MAX_LISTED = 50
Severity = Literal["error", "warning"]


@dataclass(slots=True)
class Issue:
    severity: Severity
    row: int | None
    path: str
    message: str
    hint: str = ""
    line: int | None = None

    def location(self, file: str) -> str:
        loc = f"{file}:{self.line}" if self.line is not None else file
        where = f"[row {self.row}]" if self.row is not None else ""
        if self.path:
            where = f"{where}.{self.path}" if where else self.path
        return f"{loc}: {where}" if where else loc

    def format(self, file: str) -> str:
        text = f"{self.location(file)}: {self.message}"
        if self.hint:
            text += f" — {self.hint}"
        if self.severity == "warning":
            text += " (warning)"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "line": self.line,
            "row": self.row,
            "field": self.path,
            "message": self.message,
            "hint": self.hint,
        }


@dataclass
class Report:
    file: str
    format: str
    spec: Spec
    rows: int = 0
    errors: int = 0
    warnings: int = 0
    issues: list[Issue] = field(default_factory=list)
    keys_seen: set[str] = field(default_factory=set)
    duplicates: int = 0
    max_listed: int = MAX_LISTED

    @property
    def ok(self) -> bool:
        return self.errors == 0

    @property
    def unlisted(self) -> int:
        return self.errors + self.warnings - len(self.issues)

    def add(self, issue: Issue) -> None:
        if issue.severity == "error":
            self.errors += 1
        else:
            self.warnings += 1
        if len(self.issues) < self.max_listed:
            self.issues.append(issue)

    def summary(self) -> str:
        fmt = self.format + (" (ranking)" if self.spec.ranking and self.format != "preference" else "")
        if self.ok:
            warn = f", {self.warnings} warning{'s' * (self.warnings != 1)}" if self.warnings else ""
            return f"{self.file}: OK, {self.rows} rows, format {fmt}{warn}"
        return (
            f"{self.file}: {self.errors} error{'s' * (self.errors != 1)}, "
            f"{self.warnings} warning{'s' * (self.warnings != 1)} in {self.rows} rows (format {fmt})"
        )

    def lines(self) -> list[str]:
        out = [i.format(self.file) for i in self.issues]
        if self.unlisted:
            out.append(f"... and {self.unlisted} more problems not listed (first {self.max_listed} shown)")
        out.append(self.summary())
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "format": self.format,
            "formatting": self.spec.formatting,
            "ranking": self.spec.ranking,
            "ok": self.ok,
            "rows": self.rows,
            "errors": self.errors,
            "warnings": self.warnings,
            "duplicates": self.duplicates,
            "issues": [i.to_dict() for i in self.issues],
            "unlisted": self.unlisted,
        }


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), type(value).__name__
    )


class RowChecker:
    """Checks one row against a Spec; yields (path, message, hint, severity)."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        # Column names resolved once: this runs for every row of files with millions of rows.
        col = spec.col
        self.col_prompt, self.col_query, self.col_response = col("prompt"), col("query"), col("response")
        self.col_history, self.col_messages, self.col_kto_tag = col("history"), col("messages"), col("kto_tag")
        self.col_system, self.col_tools = col("system"), col("tools")
        t = spec.tags
        self.user_roles = tuple(x for x in (t["user_tag"], t["observation_tag"]) if x)
        self.assistant_roles = tuple(x for x in (t["assistant_tag"], t["function_tag"]) if x)
        self.all_roles = tuple(
            dict.fromkeys(self.user_roles + self.assistant_roles + ((t["system_tag"],) if t["system_tag"] else ()))
        )
        #: `fine(row)` is True for a row `check` has nothing to say about, in a few dict lookups; False
        #: means "ask `check`" (which then finds the problem, or none). None: no shortcut for this spec.
        plain_alpaca = spec.formatting == "alpaca" and not spec.ranking and not self.col_kto_tag
        self.fine: Callable[[Any], bool] | None = (
            self._fine_alpaca() if plain_alpaca and self.col_response and (self.col_prompt or self.col_query) else None
        )

    def _fine_alpaca(self) -> Callable[[Any], bool]:
        """A plain, well-formed SFT alpaca row: only prompt, query and answer keys (strings; the
        answer and the prompt or the query not blank). Rows with more (system, history, ...) take
        the detailed path.

        A closure over the column names: it runs once per row, and local names are the fastest to read.
        An unmapped column is None, never a JSON key, so `row.get(None)` is None."""
        prompt_col, query_col, answer_col = self.col_prompt or None, self.col_query or None, self.col_response
        plain = frozenset(c for c in (prompt_col, query_col, answer_col) if c)

        def fine(row: Any) -> bool:
            if type(row) is not dict or not plain.issuperset(row):
                return False
            get = row.get
            prompt, query, answer = get(prompt_col), get(query_col), get(answer_col)
            if type(answer) is not str or not answer or answer.isspace():
                return False
            if prompt is not None and type(prompt) is not str:
                return False
            if query is not None and type(query) is not str:
                return False
            # `not text or text.isspace()` is `not text.strip()` without copying the text
            return not ((not prompt or prompt.isspace()) and (not query or query.isspace()))

        return fine

    def check(self, row: Any) -> Iterator[tuple[str, str, str, Severity]]:
        if not isinstance(row, dict):
            yield "", f"row is {_type_name(row)}, expected an object", "each row must be a JSON object {...}", "error"
            return
        yield from self._check_optional_strings(row)
        if self.spec.formatting == "alpaca":
            yield from self._check_alpaca(row)
        else:
            yield from self._check_conversation(row)

    # -- shared --------------------------------------------------------------------
    def _check_optional_strings(self, row: dict[str, Any]) -> Iterator[tuple[str, str, str, Severity]]:
        col = self.col_system
        if col and col in row and row[col] is not None and not isinstance(row[col], str):
            yield col, f"must be a string, got {_type_name(row[col])}", "put the system prompt in a string", "error"
        col = self.col_tools
        if col and col in row and row[col] is not None:
            allowed = (str,) if self.spec.formatting != "openai" else (str, list, dict)
            if not isinstance(row[col], allowed):
                yield (
                    col,
                    f"must be a string, got {_type_name(row[col])}",
                    "store tool descriptions as a JSON string",
                    "error",
                )

    # -- alpaca --------------------------------------------------------------------
    def _check_alpaca(self, row: dict[str, Any]) -> Iterator[tuple[str, str, str, Severity]]:
        spec = self.spec
        pcol, qcol = self.col_prompt, self.col_query
        has_prompt = False
        for key in (c for c in (pcol, qcol) if c):
            value = row.get(key)
            if value is None:
                continue
            if not isinstance(value, str):
                yield key, f"must be a string, got {_type_name(value)}", f'write "{key}" as a JSON string', "error"
            elif not has_prompt and value.strip():
                has_prompt = True
        if not has_prompt and (pcol or qcol):
            where = pcol or qcol or ""
            names = " and ".join(f'"{c}"' for c in (pcol, qcol) if c)
            missing = pcol is not None and pcol not in row
            what = "missing" if missing else "empty prompt"
            yield (
                where,
                f"{what}: {names} {'are' if ' and ' in names else 'is'} empty or absent",
                f'every row needs the user\'s question in "{pcol or qcol}"',
                "error",
            )

        if spec.ranking:
            for name in ("chosen", "rejected"):
                col = spec.col(name)
                if col:  # an unmapped column is the entry's problem, reported once (entry_problems)
                    yield from self._answer(row, col, f"the {name} answer")
            yield from self._same_pair(row.get(spec.col("chosen") or ""), row.get(spec.col("rejected") or ""))
        elif self.col_kto_tag:
            yield from self._kto_tag(row)
            col = self.col_response
            if col:
                yield from self._answer(row, col, "the answer")
        elif self.col_response:  # unmapped: the entry's problem, reported once
            yield from self._answer(row, self.col_response, "the answer")

        hcol = self.col_history
        if hcol and row.get(hcol) is not None:
            history = row[hcol]
            if not isinstance(history, list):
                yield (
                    hcol,
                    f"must be a list of [question, answer] pairs, got {_type_name(history)}",
                    'write e.g. [["hi", "hello"]] or remove the field',
                    "error",
                )
            else:
                for i, pair in enumerate(history):
                    if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
                        yield (
                            f"{hcol}[{i}]",
                            "must be a [question, answer] pair of two strings",
                            'write e.g. ["hi", "hello"]',
                            "error",
                        )
                    elif any(not x.strip() for x in pair):
                        yield f"{hcol}[{i}]", "has an empty question or answer", "fill it in or drop the turn", "error"

    def _same_pair(self, chosen: Any, rejected: Any) -> Iterator[tuple[str, str, str, Severity]]:
        """A pair whose two answers are the same text teaches preference training nothing."""
        ctag = self.spec.tag("content_tag") or ""
        first, second = (v.get(ctag) if isinstance(v, dict) else v for v in (chosen, rejected))
        if isinstance(first, str) and isinstance(second, str) and first.strip() and first.strip() == second.strip():
            col = self.spec.col("rejected") or "rejected"
            yield (
                col,
                "the rejected answer is the same as the chosen one",
                "preference training learns from the difference: write the worse answer here, or drop the row",
                "error",
            )

    def _kto_tag(self, row: dict[str, Any]) -> Iterator[tuple[str, str, str, Severity]]:
        """KTO rows: LLaMA-Factory reads a row as KTO feedback only when its tag is a JSON boolean
        (converter.py); any other row is dropped by its KTO processor without a word."""
        col = self.col_kto_tag or ""
        value = row.get(col)
        if col not in row or value is None:
            fix = f'say whether the answer is good: "{col}": true, or bad: false'
            yield col, "missing (the KTO label)", fix, "error"
        elif not isinstance(value, bool):
            yield (
                col,
                f"must be true or false (a JSON boolean), got {_type_name(value)} {value!r}",
                f'write "{col}": true for a good answer, false for a bad one (no quotes); '
                "LLaMA-Factory drops rows whose tag is anything else",
                "error",
            )

    @staticmethod
    def _answer(row: dict[str, Any], col: str, what: str) -> Iterator[tuple[str, str, str, Severity]]:
        if col not in row or row[col] is None:
            yield col, f"missing ({what})", f'every row needs {what} in "{col}"', "error"
        elif not isinstance(row[col], str):
            yield col, f"must be a string, got {_type_name(row[col])}", f'write "{col}" as a JSON string', "error"
        elif not row[col].strip():
            yield (
                col,
                f"{what} is empty",
                "the model would learn to answer nothing: fill it in or drop the row",
                "error",
            )

    # -- sharegpt / openai -----------------------------------------------------------
    def _check_conversation(self, row: dict[str, Any]) -> Iterator[tuple[str, str, str, Severity]]:
        spec = self.spec
        mcol = self.col_messages
        rtag, ctag = spec.tag("role_tag"), spec.tag("content_tag")
        if not mcol or not rtag or not ctag:  # the entry's problem, reported once (entry_problems)
            return
        if mcol not in row or row[mcol] is None:
            yield mcol, "missing", f'every row needs a list of messages in "{mcol}"', "error"
            return
        messages = row[mcol]
        if not isinstance(messages, list):
            yield mcol, f"must be a list of messages, got {_type_name(messages)}", "write [{...}, {...}]", "error"
            return
        if not messages:
            yield mcol, "empty conversation", "add a user message and an assistant answer, or drop the row", "error"
            return

        roles: list[tuple[int, str]] = []  # (index in list, role) after the leading system
        bad = False
        system_tag = spec.tag("system_tag")
        user_tag, assistant_tag = spec.tag("user_tag"), spec.tag("assistant_tag")
        pending_observation = False
        for i, msg in enumerate(messages):
            path = f"{mcol}[{i}]"
            if not isinstance(msg, dict):
                yield (
                    path,
                    f"message is {_type_name(msg)}, expected an object",
                    f'write {{"{rtag}": …, "{ctag}": …}}',
                    "error",
                )
                bad = True
                continue
            if rtag not in msg:
                yield (
                    path,
                    f'has no "{rtag}" key',
                    f'each message needs "{rtag}" (one of {", ".join(self.all_roles)})',
                    "error",
                )
                bad = True
                continue
            role = msg[rtag]
            if spec.formatting == "openai" and role in self.assistant_roles and msg.get("tool_calls"):
                role = spec.tag("function_tag") or role
            if role not in self.all_roles:
                yield (
                    f"{path}.{rtag}",
                    f"unknown role {role!r}",
                    f"use one of: {', '.join(map(str, self.all_roles))}",
                    "error",
                )
                bad = True
                continue
            if ctag not in msg and not (spec.formatting == "openai" and msg.get("tool_calls")):
                yield path, f'has no "{ctag}" key', f'put the message text in "{ctag}"', "error"
                bad = True
            else:
                content = msg.get(ctag)
                if spec.formatting == "openai" and msg.get("tool_calls"):
                    pass
                elif not isinstance(content, str):
                    yield (
                        f"{path}.{ctag}",
                        f"must be a string, got {_type_name(content)}",
                        "write the message text as a string",
                        "error",
                    )
                    bad = True
                elif not content.strip() and role in (user_tag, assistant_tag):
                    yield f"{path}.{ctag}", f"empty {role!r} message", "fill it in or drop the turn", "error"
                    bad = True
            if role == system_tag:
                if i != 0:
                    yield (
                        f"{path}.{rtag}",
                        "a system message may only come first",
                        "move it to the start or drop it",
                        "error",
                    )
                    bad = True
                continue
            if spec.formatting == "openai" and role == spec.tag("observation_tag"):
                if not pending_observation:  # consecutive tool results are merged into one turn
                    roles.append((i, role))
                pending_observation = True
                continue
            pending_observation = False
            roles.append((i, role))

        if bad:
            return
        if not roles:
            yield mcol, "has only a system message", "add a user message and an assistant answer", "error"
            return
        want_user = True
        for i, role in roles:
            expected = self.user_roles if want_user else self.assistant_roles
            if role not in expected:
                kind = "user" if want_user else "assistant"
                yield (
                    f"{mcol}[{i}].{rtag}",
                    f"turn order broken: expected a {kind} turn ({' or '.join(map(repr, expected))}), found {role!r}",
                    "turns must alternate user → assistant → user → …",
                    "error",
                )
                return
            want_user = not want_user
        last_i, last_role = roles[-1]
        if not spec.ranking and want_user is False:
            yield (
                f"{mcol}[{last_i}]",
                f"conversation ends on {last_role!r}",
                f"the last message must be the answer to learn ({assistant_tag!r}): add it or drop the last turn",
                "error",
            )
        if spec.ranking:
            if want_user is True:
                yield (
                    f"{mcol}[{last_i}]",
                    f"a preference conversation must end on the user, found {last_role!r}",
                    "put the answers in chosen/rejected, not in the conversation",
                    "error",
                )
            for name in ("chosen", "rejected"):
                col = spec.col(name)
                if not col:  # the entry's problem, reported once
                    continue
                value = row.get(col)
                if not isinstance(value, dict):
                    yield (
                        col,
                        f"must be a message object, got {_type_name(value)}",
                        f'write {{"{rtag}": "{assistant_tag}", "{ctag}": "…"}}',
                        "error",
                    )
                elif value.get(rtag) not in self.assistant_roles:
                    yield (
                        f"{col}.{rtag}",
                        f"must be an assistant role ({', '.join(map(repr, self.assistant_roles))})",
                        f'set "{rtag}": "{assistant_tag}"',
                        "error",
                    )
                elif not isinstance(value.get(ctag), str) or not value[ctag].strip():
                    yield f"{col}.{ctag}", "empty or not a string", "fill in the answer", "error"
            yield from self._same_pair(row.get(spec.col("chosen") or ""), row.get(spec.col("rejected") or ""))
        elif self.col_kto_tag:
            yield from self._kto_tag(row)


def entry_problems(spec: Spec) -> list[tuple[str, str, str]]:
    """What the dataset entry itself lacks for its formatting, as (field, message, hint): said once for
    the dataset, where checking every row would say it once per row."""
    out: list[tuple[str, str, str]] = []
    pairs = [n for n in ("chosen", "rejected") if spec.ranking and not spec.col(n)]
    if spec.formatting == "alpaca" and not spec.ranking and not spec.col("kto_tag") and not spec.col("response"):
        out.append(
            ("columns.response", "the dataset entry maps no response column", 'add "columns": {"response": "output"}')
        )
    if spec.formatting != "alpaca" and not spec.col("messages"):
        return [("columns.messages", "the dataset entry maps no messages column",
                 'add "columns": {"messages": "conversations"}')]  # fmt: skip
    if spec.formatting != "alpaca" and not (spec.tag("role_tag") and spec.tag("content_tag")):
        return [
            ("tags", "the dataset entry has no role_tag/content_tag", 'set "tags": {"role_tag": …, "content_tag": …}')
        ]
    out += [(f"columns.{n}", f"the dataset entry maps no {n!r} column", f'add "columns": {{"{n}": …}}') for n in pairs]
    return out


# lf-wrap's own optional row keys, which LLaMA-Factory ignores: `expect`, the words of which a
# right answer contains one (held-out rows for `lf-wrap eval`, data/answers.py).
LF_WRAP_KEYS = frozenset({"expect"})


def validate_rows(
    source: DatasetFile,
    entries: Iterable[Entry],
    spec: Spec,
    fmt: str,
    display: str,
    max_listed: int = MAX_LISTED,
) -> Report:
    report = Report(file=display, format=fmt, spec=spec, max_listed=max_listed)
    for path, message, hint in entry_problems(spec):
        report.add(Issue("error", None, path, message, hint))
    checker = RowChecker(spec)
    known = spec.known_keys | LF_WRAP_KEYS
    unknown_first: dict[str, Issue] = {}
    unknown_count: dict[str, int] = {}
    duplicates = DuplicateFinder()
    kto_col, kto_tags = spec.col("kto_tag"), {True: 0, False: 0}  # KTO: good and bad answers counted
    # This loop runs once per row of files with millions of rows: a row `fine` vouches for, whose keys
    # were all seen before and are known (one set lookup), only needs its fingerprint taken.
    fine, seen_known, add_fingerprint = checker.fine, report.keys_seen & known, duplicates.add
    count = 0
    for index, value, line in entries:
        count += 1
        if fine is not None and fine(value) and seen_known.issuperset(value):
            add_fingerprint(index, value, line)
            continue
        if isinstance(value, BadRow):
            report.add(Issue("error", index, "", value.message, "fix or remove this line", line=value.line))
            continue
        row = Row(index, value, line)
        problems = list(checker.check(value))
        for path, message, hint, severity in problems:
            report.add(Issue(severity, row.index, path, message, hint, line=source.line_of(row)))
        if not isinstance(value, dict):
            continue
        if kto_col and isinstance(value.get(kto_col), bool):
            kto_tags[value[kto_col]] += 1
        if seen_known.issuperset(value):  # every key already seen and known: nothing new to say
            new_keys: Iterable[str] = ()
        else:
            report.keys_seen.update(value.keys())
            seen_known = report.keys_seen & known
            new_keys = value.keys() - known
        for key in new_keys:
            if key in unknown_count:
                unknown_count[key] += 1
                continue
            unknown_count[key] = 1
            import difflib  # only for a key the spec does not know (once per such key)

            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(known))}"
            issue = Issue(
                "warning", row.index, key, "unknown key, LLaMA-Factory will ignore it", hint, line=source.line_of(row)
            )
            unknown_first[key] = issue
            report.add(issue)
        if not problems:
            duplicates.add(row.index, value, row.line)
    report.rows += count
    for dup in duplicates.found():
        report.duplicates += 1
        line = dup.line or source.line_of(Row(dup.row, None))
        report.add(Issue(
            "warning", dup.row, "", f"duplicate of row {dup.first}",
            "duplicates weigh that example more in training; drop them if unintended", line=line,
        ))  # fmt: skip
    report.issues.sort(key=lambda i: -1 if i.row is None else i.row)  # stable: per row, as found
    for key, issue in unknown_first.items():
        if unknown_count[key] > 1:
            issue.message += f" (in {unknown_count[key]} rows)"
    if report.rows == 0:
        report.add(Issue("error", None, "", "no rows", "add at least one row", line=1))
    elif kto_col and sum(kto_tags.values()) and not all(kto_tags.values()):
        only = "true (good answers)" if kto_tags[True] else "false (bad answers)"
        report.add(Issue(
            "warning", None, kto_col, f"every row's {kto_col} is {only}",
            "KTO learns by contrasting good and bad answers: add rows of the other kind "
            "(LLaMA-Factory only warns: 'Your dataset only has one preference type')",
        ))  # fmt: skip
    return report


def _peek(entries: Iterator[Entry]) -> tuple[list[Entry], Iterator[Entry]]:
    head: list[Entry] = []
    for entry in entries:
        head.append(entry)
        if isinstance(entry[1], dict) or len(head) >= 100:
            break
    return head, entries


def resolve_format(head: list[Row | BadRow], fmt: str, display: str) -> tuple[FormatName, Spec]:
    """Turn `--format` (or auto) into a user-facing format and its Spec."""
    first = next((r.value for r in head if isinstance(r, Row) and isinstance(r.value, dict)), None)
    detected = detect_format(first) if first is not None else None
    if fmt == "auto":
        if first is None and any(isinstance(r, BadRow) for r in head):
            detected = ("alpaca", "alpaca")  # only unreadable lines so far: report them as they are
        if detected is None:
            keys = ", ".join(sorted(first)) if isinstance(first, dict) else "no object rows"
            raise LfWrapError(
                f"{display}: cannot tell the dataset format from its first row (keys: {keys})",
                hint="pass --format alpaca|sharegpt|openai|preference|kto",
            )
        name, style = detected
    else:
        name = fmt  # type: ignore[assignment]
        style = detected[1] if detected and name in ("preference", "kto") else "alpaca"
    return name, spec_for_format(name, style=style)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """A JSON array's rows all stay alive while they are checked, and Python's cycle collector would
    walk them again and again as they are parsed (~10% of the time on 200k rows). Reading and
    checking rows makes no reference cycles, so the collector is paused for the pass."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def validate_file(path: Path, fmt: str = "auto", display: str | None = None, max_listed: int = MAX_LISTED) -> Report:
    """Validate a dataset file given on the command line (`--format` or auto-detected)."""
    source = DatasetFile(path)
    shown = display or str(path)
    with _gc_paused():
        head, rest = _peek(source.entries())
        rows = [v if isinstance(v, BadRow) else Row(i, v, line) for i, v, line in head]
        name, spec = resolve_format(rows, fmt, shown)
        return validate_rows(source, chain(head, rest), spec, name, shown, max_listed)


def validate_with_spec(path: Path, spec: Spec, label: str, display: str | None = None,
                       max_listed: int = MAX_LISTED) -> Report:  # fmt: skip
    source = DatasetFile(path)
    with _gc_paused():
        return validate_rows(source, source.entries(), spec, label, display or str(path), max_listed)
