"""How a command's result and its failures leave: under --json exactly one JSON object on stdout,
else lines for people; errors on stderr with their exit code."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, NoReturn

import click

from lf_wrap.util.errors import LfWrapError, failure_payload


def echo_json(payload: Any, *, err: bool = False) -> None:
    click.echo(json.dumps(payload, ensure_ascii=False, indent=2), err=err)


def echo_lines(lines: Iterable[str], *, err: bool = False) -> None:
    for line in lines:
        click.echo(line, err=err)


def emit(as_json: bool, payload: Any, lines: Iterable[str]) -> None:
    """A command's result: under --json the one JSON object, else the lines for people."""
    if as_json:
        echo_json(payload)
    else:
        echo_lines(lines)


def error_payload(err: LfWrapError | click.ClickException) -> dict[str, Any]:
    """The one JSON object a failure prints under --json (a usage error's location: its option)."""
    if isinstance(err, LfWrapError):
        return err.payload()
    param = getattr(err, "param", None)
    where = "/".join(param.opts) if isinstance(param, click.Parameter) and param.opts else None
    hint = "see --help" if isinstance(err, click.UsageError) else None
    return failure_payload(err.format_message(), hint, where or getattr(err, "option_name", None), err.exit_code)


def exit_with(err: LfWrapError, *, json_printed: bool) -> NoReturn:
    """Fail with `err`; when the --json object (with the failure's keys) is out, only the message goes to stderr."""
    if json_printed:
        click.echo(f"Error: {err}", err=True)
        raise SystemExit(err.exit_code)
    raise err


def fail_report(report: Any, as_json: bool) -> NoReturn:
    """A dataset with errors: every problem listed (stderr), or under --json the report with the failure keys."""
    if as_json:
        first = next((i for i in report.issues if i.severity == "error"), None)
        where = first.location(report.file) if first else report.file
        hint = "fix the rows listed in issues, then validate again"
        echo_json({**report.to_dict(), **failure_payload(report.summary(), hint, where, 2)})
    else:
        click.echo("\n".join(report.lines()), err=True)
    raise SystemExit(2)
