"""Files: read a JSON object with one rule for every kind of failure; write generated files
safely (temp file + fsync + rename, under a lock); hash a file.

A reader (LLaMA-Factory, another lf-wrap) sees either the old complete file or the new
complete file, never a partial one, even when the writer is killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from filelock import FileLock, Timeout

from lf_wrap.util.errors import LfWrapError

LOCK_TIMEOUT_S = 60.0


def cannot(err: OSError, path: Path, doing: str) -> LfWrapError:
    """An OSError while reading or writing a user's path, as the one message lf-wrap gives for it
    (naming the path the user knows, not the temp file beside it that failed first)."""
    return LfWrapError(
        f"{path}: cannot {doing} it ({err.strerror or type(err).__name__})",
        hint="check that the path is right and that you may read and write there",
    )


@contextlib.contextmanager
def locked(path: Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold an OS-level lock beside `path` (`<path>.lock`); released if the process dies."""
    lock = FileLock(str(path) + ".lock", timeout=timeout)
    try:
        lock.acquire()
    except Timeout as err:
        raise LfWrapError(
            f"{path}: another lf-wrap process has held its lock for over {timeout:.0f} s",
            hint=f"wait for it to finish; if none is running, delete {path}.lock",
        ) from err
    except OSError as err:
        raise cannot(err, Path(str(path) + ".lock"), "write") from None
    try:
        yield
    finally:
        lock.release()


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write `data` to `path` atomically (same-directory temp file, fsync, rename); a path that
    cannot be written (no such folder, no permission, a full disk) is one message naming it."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        _write_then_rename(path, lambda out: out.write(raw))
    except OSError as err:
        raise cannot(err, path, "write") from None


def atomic_copy(src: Path, dst: Path, chunk: int = 1 << 20) -> None:
    """Copy `src` to `dst` atomically like `atomic_write`, streamed (never the whole file in memory)."""

    def copy(out: BinaryIO) -> None:
        with src.open("rb") as inp:
            while block := inp.read(chunk):
                out.write(block)

    try:
        _write_then_rename(dst, copy)
    except OSError as err:
        reading = err.filename == str(src)
        raise cannot(err, src if reading else dst, "read" if reading else "write") from None


def _write_then_rename(path: Path, fill: Callable[[BinaryIO], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, (path.stat().st_mode & 0o777) if path.exists() else 0o644)
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


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def json_type(value: Any) -> str:
    """A JSON value's type as JSON calls it (object, array, string, number, boolean, null)."""
    if value is None:
        return "null"
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return kinds.get(type(value), type(value).__name__)


def read_json_object(
    path: Path,
    *,
    shape: str = "a JSON object",
    hint: str | None = None,
    error: type[LfWrapError] = LfWrapError,
) -> dict[str, Any]:
    """The JSON object in `path`, or one message that names the path and says what is wrong with
    it: it cannot be read (missing, a folder, no permission: any OSError), is not UTF-8, is not
    JSON (file:line:col), or holds another JSON value where an object belongs (a list, say).

    One rule for every JSON object lf-wrap reads. `error` says whose fault it is: LfWrapError
    (exit 2) for the user's files, ExternalError (exit 1) for files an engine wrote. A reader
    that can do without the file catches the error; none gets a traceback."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise error(f"{path}: cannot read it ({err.strerror or type(err).__name__})", hint=hint) from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise error(f"{path}: not valid UTF-8 (offset {err.start})", hint=hint) from None
    except json.JSONDecodeError as err:
        raise error(f"{path}:{err.lineno}:{err.colno}: invalid JSON: {err.msg}", hint=hint) from None
    if not isinstance(data, dict):
        raise error(f"{path}: top level must be {shape}, got {json_type(data)}", hint=hint)
    return data
