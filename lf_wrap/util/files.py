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

from lf_wrap.util.errors import LfWrapError

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


def atomic_copy(src: Path, dst: Path, chunk: int = 1 << 20) -> None:
    """Copy `src` to `dst` atomically like `atomic_write`, streamed (never the whole file in memory)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out, src.open("rb") as inp:
            while block := inp.read(chunk):
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, (dst.stat().st_mode & 0o777) if dst.exists() else 0o644)
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def remove_stale_temps(directory: Path, name: str) -> None:
    """Delete temp files a killed writer of `directory/name` may have left behind."""
    for stale in directory.glob(f".{name}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
