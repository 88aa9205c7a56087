"""The one family of user-facing errors.

Code deep inside lf-wrap raises `LfWrapError` (or a subclass); the CLI boundary turns
it into a `click.ClickException` with the right exit code.  A traceback means a bug.
"""

from __future__ import annotations


class LfWrapError(Exception):
    """A mistake the user can fix: bad input, bad usage, bad configuration (exit 2)."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ExternalError(LfWrapError):
    """An external step (an engine, a download, a server) failed (exit 1)."""

    exit_code = 1
