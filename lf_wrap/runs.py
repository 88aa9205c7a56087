"""A run folder, `runs/<run-name>/`, and its manifest.

    train.yaml  train.log  output/ (adapter, checkpoints, trainer_log.jsonl)
    export.yaml export.log merged/ (the merged model)
    manifest.json — versions, hashes, commands, timings, outcome of every step

The manifest is rewritten atomically after each step, so it is always valid JSON.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lf_wrap import __version__
from lf_wrap.files import atomic_write, locked


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class RunFolder:
    def __init__(self, root: Path) -> None:
        self.root = root

    name = property(lambda self: self.root.name)
    train_yaml = property(lambda self: self.root / "train.yaml")
    train_log = property(lambda self: self.root / "train.log")
    output = property(lambda self: self.root / "output")
    export_yaml = property(lambda self: self.root / "export.yaml")
    export_log = property(lambda self: self.root / "export.log")
    merged = property(lambda self: self.root / "merged")
    manifest_path = property(lambda self: self.root / "manifest.json")

    def manifest(self) -> dict[str, Any]:
        if not self.manifest_path.exists():
            return {}
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except ValueError:
            return {}

    def record(self, section: str, data: dict[str, Any]) -> dict[str, Any]:
        """Merge `data` into `manifest[section]` and write the manifest atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        with locked(self.manifest_path):
            manifest = self.manifest()
            manifest.setdefault("lf_wrap_version", __version__)
            manifest.setdefault("run_name", self.name)
            manifest.setdefault("created", now())
            manifest.setdefault("host", {"python": sys.version.split()[0], "platform": platform.platform()})
            manifest.setdefault(section, {}).update(data)
            atomic_write(self.manifest_path, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        return manifest
