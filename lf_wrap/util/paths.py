"""Where lf-wrap's own files are: `templates/`, `datasets/` and `examples/` of a source checkout, or
the copies packaged inside the wheel (pyproject.toml force-includes them)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


def _bundled(name: str) -> Path:
    packaged = Path(str(resources.files("lf_wrap"))) / name
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / name


def templates_dir() -> Path:
    return _bundled("templates")


def datasets_dir() -> Path:
    return _bundled("datasets")


def examples_dir() -> Path:
    return _bundled("examples")


def demo_project() -> Path:
    """The built-in demo's project file: what `make demo` uses, what `lf-wrap init --demo`
    copies, and what lf-wrap uses in a folder without lf-wrap.yaml."""
    return examples_dir() / "magic_conch.yaml"


def cache_dir() -> Path:
    """lf-wrap's cache: $LF_WRAP_CACHE_DIR, else $XDG_CACHE_HOME/lf-wrap, else ~/.cache/lf-wrap."""
    if os.environ.get("LF_WRAP_CACHE_DIR"):
        return Path(os.environ["LF_WRAP_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lf-wrap"
