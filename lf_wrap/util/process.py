"""Run an engine as a child process: argument list (never a shell), output to a log file,
Ctrl-C / SIGTERM forwarded to the child's whole process group, nothing left behind."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

GRACE_S = 10.0


@dataclass
class Outcome:
    returncode: int
    interrupted: str | None  # "SIGINT" / "SIGTERM" when the user stopped it
    duration_s: float


def shell_line(cmd: list[str], env_changes: Mapping[str, str] | None = None) -> str:
    """How to type the command in a shell (for printing and logs only; never executed)."""
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env_changes or {}).items())
    line = " ".join(shlex.quote(c) for c in cmd)
    return f"{prefix} {line}" if prefix else line


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_group(pgid: int, grace_s: float = 15.0) -> None:
    """SIGTERM the process group, wait up to `grace_s` for it to go (reaping our own children), then SIGKILL."""
    _kill_group(pgid, signal.SIGTERM)
    end = time.monotonic() + grace_s
    while _group_alive(pgid) and time.monotonic() < end:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(-pgid, os.WNOHANG)
        time.sleep(0.1)
    _kill_group(pgid, signal.SIGKILL)


def spawn(
    cmd: list[str], log_path: Path, *, env: Mapping[str, str], cwd: Path, header: str = ""
) -> subprocess.Popen[bytes]:
    """Start `cmd` (an argument list, never a shell) in its own process group, its output appended
    to `log_path` after `header`; signals sent to the group reach every child it starts."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        if header:
            log.write(header.encode())
            log.flush()
        return subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,  # its own process group: signals reach every child
        )


@contextlib.contextmanager
def _forward_signals(on_signal: Callable[[int], None]) -> Iterator[None]:
    previous: dict[signal.Signals, Any] = {}  # what signal.signal returned: a handler, SIG_DFL/SIG_IGN or None

    def handler(signum: int, _frame: FrameType | None) -> None:
        on_signal(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not the main thread (e.g. inside some test runners)
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_logged(
    cmd: list[str],
    log_path: Path,
    *,
    env: Mapping[str, str],
    cwd: Path,
    on_poll: Callable[[], None] | None = None,
    poll_s: float = 0.5,
    header: str = "",
) -> Outcome:
    """Run `cmd`, appending its output to `log_path`; returns when it and its children are gone."""
    stopped: list[int] = []
    start = time.monotonic()
    started: list[int] = []  # the child's pid (= its process group) once it exists

    def on_signal(signum: int) -> None:
        stopped.append(signum)
        for pgid in started:
            _kill_group(pgid, signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)

    # The handlers go in before the child starts: a Ctrl-C while it starts stops it too,
    # instead of a KeyboardInterrupt that would leave it running.
    with _forward_signals(on_signal):
        proc = spawn(cmd, log_path, env=env, cwd=cwd, header=header)
        pgid = proc.pid
        started.append(pgid)
        if stopped:  # a signal came while the child was starting
            _kill_group(pgid, signal.SIGINT if stopped[0] == signal.SIGINT else signal.SIGTERM)
        deadline: float | None = None
        while True:
            try:
                proc.wait(timeout=poll_s)
                break
            except subprocess.TimeoutExpired:
                pass
            if on_poll is not None:
                on_poll()
            if stopped and deadline is None:
                deadline = time.monotonic() + GRACE_S
            if deadline is not None and time.monotonic() > deadline:
                _kill_group(pgid, signal.SIGKILL)
        if on_poll is not None:
            on_poll()
    # The engine is gone; make sure its workers are too (dataloader, torchrun children).
    if _group_alive(pgid):
        stop_group(pgid, grace_s=3.0)
    interrupted = signal.Signals(stopped[0]).name if stopped else None
    return Outcome(proc.returncode, interrupted, time.monotonic() - start)


def tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 64 * 1024))
        data = f.read().decode("utf-8", "replace")
    return "\n".join(data.splitlines()[-lines:])
