"""A run folder, `runs/<run-name>/`, and its manifest.

    train.yaml  train.log  output/ (adapter, checkpoints, trainer_log.jsonl)
    export.yaml export.log merged/ (the merged model)
    manifest.json — versions, hashes, commands, timings, outcome of every step

The manifest is rewritten atomically after each step, so it is always valid JSON.
"""

from __future__ import annotations

import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from lf_wrap import __version__
from lf_wrap.data.registry import check_name
from lf_wrap.project.config import PROJECT_FILE, is_demo_file
from lf_wrap.util.errors import LfWrapError
from lf_wrap.util.files import atomic_write, locked, read_json_object
from lf_wrap.util.paths import demo_project


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
    server_record = property(lambda self: self.root / "serve.json")  # a detached server's (steps/serve.py)

    def manifest(self) -> dict[str, Any]:
        """The run's record ({} before its first step); a damaged one is one message naming it."""
        if not self.manifest_path.exists():
            return {}
        return read_json_object(
            self.manifest_path, hint="lf-wrap writes it atomically, so it was edited: fix it by hand or delete it"
        )

    def thinking(self) -> dict[str, Any]:
        """How the run was trained to think, as `train` recorded it (model/thinking.py); {} before."""
        train = self.manifest().get("train")
        found = train.get("thinking") if isinstance(train, dict) else None
        return found if isinstance(found, dict) else {}

    def template_scope(self) -> dict[str, Any] | None:
        """Where the run's template check agreed only for its data (model/template_agreement.py's
        `scope`, as `train` recorded it); None when it agreed everywhere, or before training."""
        train = self.manifest().get("train")
        check = train.get("template_check") if isinstance(train, dict) else None
        found = check.get("scope") if isinstance(check, dict) else None
        return found if isinstance(found, dict) and isinstance(found.get("line"), str) else None

    def server(self) -> dict[str, Any] | None:
        """The record of the run's detached server (serve.json); None when there is none."""
        return read_server_record(self.server_record)

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


def read_server_record(path: Path) -> dict[str, Any] | None:
    """A detached server's record (`serve --detach` writes it): None when there is none. One that
    cannot be read, or lacks the pid, process group or base URL lf-wrap wrote into it, is one
    message naming the file: lf-wrap never acts on a guess about which process to stop."""
    if not path.exists():
        return None
    hint = "lf-wrap writes it when it starts a server; if none runs for this run, delete the file"
    info = read_json_object(path, hint=hint)
    wrong = [k for k, kind in (("pid", int), ("pgid", int), ("base_url", str)) if not isinstance(info.get(k), kind)]
    if wrong:
        raise LfWrapError(f"{path}: not a server record lf-wrap wrote (no valid {', '.join(wrong)})", hint=hint)
    return info


def locate_run_dir(
    config_file: Path | None, sets: tuple[str, ...] = (), run: str | None = None, runs_dir: Path | None = None
) -> Path:
    """The run folder, read leniently: `--run`/`--runs-dir`, then `--set run_name=/runs_dir=/datasets=`,
    then the project file's raw YAML (only `run_name`, `runs_dir` and `datasets`, which the run name
    defaults to). Nothing else is validated: `serve status` and `serve stop` must work even when a
    typo elsewhere in the project file would stop `train`. Other `--set` keys do not move the run
    folder and are ignored. Paths given on the command line are relative to the current folder,
    paths in a project file to its folder (the built-in demo's: the current folder)."""
    if config_file is None:
        config_file = Path(PROJECT_FILE) if Path(PROJECT_FILE).exists() else demo_project()
    elif not config_file.is_file():
        raise LfWrapError(f"{config_file}: no such file", hint="pass the project file the run was started with")
    data: dict[str, Any] = {}
    if run is None or runs_dir is None:
        try:
            loaded = yaml.safe_load(config_file.read_text(encoding="utf-8", errors="replace"))
        except (OSError, yaml.YAMLError) as err:
            raise LfWrapError(
                f"{config_file}: cannot read run_name/runs_dir from it ({type(err).__name__})",
                hint="pass --run NAME (and --runs-dir DIR) to name the run folder directly",
            ) from None
        data = loaded if isinstance(loaded, dict) else {}
    for item in sets:
        key, eq, value = item.partition("=")
        if eq and key.strip() in ("run_name", "runs_dir"):
            data[key.strip()] = value
        elif eq and key.strip() == "datasets":
            data["datasets"] = [d.strip() for d in value.split(",") if d.strip()]
    root = Path.cwd() if is_demo_file(config_file) else config_file.resolve().parent
    name = run or data.get("run_name")
    if not name:
        datasets = data.get("datasets")
        first = datasets[0] if isinstance(datasets, list) and datasets else None
        name = first.replace("_", "-") if isinstance(first, str) else "run"
    check_name(str(name), "run name")
    if runs_dir is not None:
        base = runs_dir.expanduser().absolute()
    else:
        raw = Path(str(data.get("runs_dir") or "runs")).expanduser()
        base = raw if raw.is_absolute() else root / raw
    return (base / str(name)).resolve()
