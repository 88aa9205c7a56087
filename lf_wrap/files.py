"""Writing generated files safely: temp file + fsync + rename, under a lock.

A reader (LLaMA-Factory, another lf-wrap) sees either the old complete file or the new
complete file, never a partial one, even when the writer is killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from lf_wrap.errors import LfWrapError

LOCK_TIMEOUT_S = 60.0


@contextlib.contextmanager
def locked(path: Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold an OS-level lock beside `path` (`<path>.lock`); released if the process dies."""
    lock = FileLock(str(path) + ".lock", timeout=timeout)
    try:
        with lock:
            yield
    except Timeout as err:
        raise LfWrapError(
            f"{path}: another lf-wrap process has held its lock for over {timeout:.0f} s",
            hint=f"wait for it to finish; if none is running, delete {path}.lock",
        ) from err


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write `data` to `path` atomically (same-directory temp file, fsync, rename)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def remove_stale_temps(directory: Path, name: str) -> None:
    """Delete temp files a killed writer of `directory/name` may have left behind."""
    for stale in directory.glob(f".{name}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
