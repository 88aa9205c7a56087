"""The one family of user-facing errors.

Code deep inside lf-wrap raises `LfWrapError` (or a subclass); the CLI boundary turns
it into a `click.ClickException` with the right exit code.  A traceback means a bug.

Exit codes: 2 bad input or usage (`LfWrapError`), 1 an external step failed
(`ExternalError`), 130 / 143 interrupted by SIGINT (Ctrl-C) / SIGTERM (`Interrupted`:
128 + the signal's number, what a shell reports for a process the signal ended).
"""

from __future__ import annotations

import importlib
import re
from typing import Any

# Where a message says the problem is: "file:line[:col]" at the start of a line (or of a "  - " item), or "--set KEY".
_LOCATION = re.compile(r"^\s*(?:- )?(--set [\w.]+|[^\s:][^\n:]*:\d+(?::\d+)?)(?=:)", re.MULTILINE)


def failure_payload(error: str, hint: str | None, location: str | None, exit_code: int) -> dict[str, Any]:
    """The keys every --json failure has: error, hint, location, exit_code (the one builder of them)."""
    return {"error": error, "hint": hint, "location": location, "exit_code": exit_code}


class LfWrapError(Exception):
    """A mistake the user can fix: bad input, bad usage, bad configuration (exit 2).

    `location` is where the problem is (`file:line`, `file:line: field`, `--set KEY`) when
    the raiser knows it; `lf-wrap … --json` reports it."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None, location: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.location = location

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message

    def payload(self) -> dict[str, Any]:
        """The JSON object this failure prints under --json (with the validation report, when one came with it)."""
        found = _LOCATION.search(self.message)
        where = self.location or (found.group(1) if found else None)
        report = getattr(self, "report", None)
        extra = {"report": report.to_dict()} if report is not None else {}
        return failure_payload(self.message, self.hint, where, self.exit_code) | extra


class ExternalError(LfWrapError):
    """An external step (an engine, a download, a server) failed (exit 1)."""

    exit_code = 1


class Interrupted(ExternalError):
    """The user stopped a step with Ctrl-C (SIGINT, exit 130) or SIGTERM (exit 143)."""

    def __init__(self, message: str, signal_name: str | None = "SIGINT", hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.signal_name = signal_name or "SIGINT"
        import signal  # here, not at start-up: building signal's enums costs every command ~3 ms

        try:
            self.exit_code = 128 + int(signal.Signals[self.signal_name])
        except KeyError:
            self.exit_code = 130


MODEL_EXTRA_HINT = (
    "install torch first (the CPU build is enough: pip install torch==2.13.0, as `make setup` does), "
    "then lf-wrap's model extra: pip install 'lf-wrap[model]'"
)


class MissingPackage(LfWrapError, ImportError):
    """A Python package a command needs is not installed (exit 2). Still an ImportError, so
    code that degrades without the package (`except ImportError`) keeps working."""


def require(modules: tuple[str, ...], purpose: str, hint: str = MODEL_EXTRA_HINT) -> None:
    """Import `modules` or raise MissingPackage naming the first one missing and how to install it."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise MissingPackage(
                f"{purpose} needs the Python package {name!r}, which cannot be imported here ({err})", hint=hint
            ) from None
