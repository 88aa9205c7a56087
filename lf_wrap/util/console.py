"""What a step says while it runs: progress and notes on stderr, as they happen.

The command line (lf_wrap/cli/) prints what a command returns; a step that runs for a while
(training, an export's repairs, a server starting) says what happens as it happens through
here. Each line is flushed at once. Only cli/ imports click: the layers below speak through
these few functions, which write to whatever `sys.stderr` / `sys.stdout` are at the moment
(a terminal, a pipe, or click's test runner).
"""

from __future__ import annotations

import sys

_ANSI = {"bold": "\x1b[1m", "dim": "\x1b[2m"}
_RESET = "\x1b[0m"


def note(text: str = "", *, end: str = "\n") -> None:
    """A line (or, with `end=""`, a piece of one) on stderr."""
    sys.stderr.write(text + end)
    sys.stderr.flush()


def out(text: str = "", *, end: str = "\n") -> None:
    """A line on stdout: what a piped command's reader takes (an answer, a result)."""
    sys.stdout.write(text + end)
    sys.stdout.flush()


def style(text: str, *, bold: bool = False, dim: bool = False) -> str:
    """`text` in bold or dimmed, for a terminal (only used where stdout is one)."""
    codes = (_ANSI["bold"] if bold else "") + (_ANSI["dim"] if dim else "")
    return f"{codes}{text}{_RESET}" if codes else text
