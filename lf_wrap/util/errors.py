"""The one family of user-facing errors.

Code deep inside lf-wrap raises `LfWrapError` (or a subclass); the CLI boundary turns
it into a `click.ClickException` with the right exit code.  A traceback means a bug.

Exit codes: 2 bad input or usage (`LfWrapError`), 1 an external step failed
(`ExternalError`), 130 / 143 interrupted by SIGINT (Ctrl-C) / SIGTERM (`Interrupted`:
128 + the signal's number, what a shell reports for a process the signal ended).
"""

from __future__ import annotations

import importlib


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
