"""Finding an engine's executable: the same order for every engine."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from lf_wrap.util.errors import LfWrapError


def _source_checkout() -> Path:
    return Path(__file__).resolve().parents[2]


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def locate(
    script: str, *, env_var: str, setting: str, configured: str | None, venv: Path, project_root: Path | None, hint: str
) -> Path:
    """`configured` (project file) or $env_var, then <root>/<venv>/bin/<script> for the
    project, the working dir and lf-wrap's own checkout, then PATH."""
    explicit = configured or os.environ.get(env_var)
    if explicit:
        path = Path(explicit).expanduser()
        if not _executable(path):
            raise LfWrapError(f"{script} not found at {path} (from {env_var} or `{setting}:`)", hint=hint)
        return path.absolute()
    for root in dict.fromkeys(p for p in (project_root, Path.cwd(), _source_checkout()) if p is not None):
        candidate = root / venv / "bin" / script
        if _executable(candidate):
            return candidate.absolute()
    found = shutil.which(script)
    if found:
        return Path(found).absolute()
    raise LfWrapError(f"{script} not found", hint=hint)
