"""`dataset_info.json`: read it strictly, validate its entries, register new ones safely.

Registering copies the data file into the dataset dir as `<name><suffix>` (unless it is
already inside it), because LLaMA-Factory resolves `file_name` relative to `dataset_dir`
and a dataset dir that holds its own data can be moved or shared as a whole.  The input
file is only ever read.  The copy and the new `dataset_info.json` are written atomically
while `dataset_info.json.lock` is held, so concurrent `register` runs never lose entries.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from lf_wrap.data.formats import DEFAULT_TAGS, FormatName, spec_from_entry
from lf_wrap.data.validate import MAX_LISTED, Report, validate_file, validate_with_spec
from lf_wrap.util.errors import LfWrapError
from lf_wrap.util.files import atomic_copy, atomic_write, locked, read_json_object, remove_stale_temps
from lf_wrap.util.render import render_json

INFO_NAME = "dataset_info.json"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
HUB_KEYS = ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")


def check_name(name: str, what: str = "dataset name") -> str:
    if not NAME_RE.match(name):
        raise LfWrapError(
            f"invalid {what} {name!r}",
            hint="use 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit "
            "(no spaces, commas, quotes or slashes: LLaMA-Factory splits dataset lists on commas)",
        )
    return name


def read_info(dataset_dir: Path, *, must_exist: bool = True) -> dict[str, Any]:
    path = dataset_dir / INFO_NAME
    if not path.exists():
        if must_exist:
            raise LfWrapError(
                f"{path}: no such file",
                hint=f"register a dataset first: lf-wrap data register FILE --name NAME --dataset-dir {dataset_dir}",
            )
        return {}
    return read_json_object(
        path,
        shape="an object mapping dataset names to entries",
        hint="fix the file by hand (lf-wrap never overwrites a corrupt dataset_info.json); it should look like "
        '{"my_data": {"file_name": "my_data.json"}}',
    )


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
    except ValueError:
        return False
    return True


def entry_file(dataset_dir: Path, name: str, entry: Any) -> Path:
    """The local data file an entry points to, refusing paths that leave the dataset dir."""
    where = f"{dataset_dir / INFO_NAME}: {name}"
    if not isinstance(entry, dict):
        raise LfWrapError(f"{where}: entry must be an object, got {type(entry).__name__}")
    hub = [k for k in HUB_KEYS if k in entry]
    if hub:
        raise LfWrapError(
            f"{where}: is a remote dataset ({hub[0]}); lf-wrap validates local files only",
            hint="download it and register the file with `lf-wrap data register`",
        )
    file_name = entry.get("file_name")
    if not isinstance(file_name, str) or not file_name:
        raise LfWrapError(
            f"{where}.file_name: missing or not a string", hint='set "file_name": "<file in the dataset dir>"'
        )
    if Path(file_name).is_absolute() or ".." in Path(file_name).parts:
        raise LfWrapError(
            f"{where}.file_name: {file_name!r} points outside the dataset dir",
            hint="use a path relative to the dataset dir, without '..' (lf-wrap data register copies files in)",
        )
    path = dataset_dir / file_name
    if not _inside(path, dataset_dir):
        raise LfWrapError(
            f"{where}.file_name: {file_name!r} is a link that leads outside the dataset dir",
            hint="copy the file into the dataset dir instead of linking it",
        )
    if not path.exists():
        raise LfWrapError(f"{where}.file_name: {path} does not exist", hint="fix file_name or register the file again")
    return path


def lookup(info: dict[str, Any], dataset_dir: Path, name: str) -> Any:
    if name not in info:
        close = difflib.get_close_matches(name, list(info), n=1)
        raise LfWrapError(
            f"{dataset_dir / INFO_NAME}: no dataset named {name!r}",
            hint=f"did you mean {close[0]!r}?" if close else
            f"register it: lf-wrap data register FILE --name {name} --dataset-dir {dataset_dir}",
        )  # fmt: skip
    return info[name]


def validate_entry(dataset_dir: Path, name: str, max_listed: int = MAX_LISTED) -> Report:
    """Validate a registered dataset exactly as its dataset_info.json entry describes it."""
    info = read_info(dataset_dir)
    entry = lookup(info, dataset_dir, name)
    path = entry_file(dataset_dir, name, entry)
    spec = spec_from_entry(entry, where=f"{dataset_dir / INFO_NAME}: {name}")
    label = spec.formatting
    return validate_with_spec(path, spec, label, max_listed=max_listed)


# -- registering -----------------------------------------------------------------------
def build_entry(report: Report, file_name: str) -> dict[str, Any]:
    """Render the dataset_info.json entry for a validated file from templates/dataset_info/."""
    fmt: FormatName = report.format  # type: ignore[assignment]
    spec = report.spec
    required = {"prompt", "response", "messages", "chosen", "rejected"}
    columns = {
        name: key
        for name, key in spec.columns.items()
        if key and (key in report.keys_seen or name in required)
        and not (spec.formatting == "alpaca" and name == "messages")
    }  # fmt: skip
    if spec.formatting == "alpaca" and spec.ranking:
        columns.pop("response", None)
    context: dict[str, Any] = {"file_name": file_name, "columns": columns, "formatting": spec.formatting}
    context["tags"] = {k: v for k, v in spec.tags.items() if v} if spec.tags != DEFAULT_TAGS else None
    return render_json(f"dataset_info/{fmt}.json.j2", context)


@dataclass
class Registration:
    name: str
    action: Literal["added", "unchanged", "replaced"]
    entry: dict[str, Any]
    info_path: Path
    data_path: Path
    copied: bool
    report: Report

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "action": self.action, "entry": self.entry,
                "dataset_info": str(self.info_path), "data_file": str(self.data_path), "copied": self.copied,
                "validation": self.report.to_dict()}  # fmt: skip

    def describe(self) -> str:
        """What `lf-wrap data register` says it did."""
        where = f"in {self.info_path}" + (f" (data copied to {self.data_path})" if self.copied else "")
        if self.action == "unchanged":
            return f"{self.name!r} is already registered {where}, unchanged"
        return f"{'registered' if self.action == 'added' else 'replaced'} {self.name!r} {where}"


def _target(file: Path, name: str, dataset_dir: Path) -> tuple[Path, str, bool]:
    """Where a registered file lives: (path, file_name for the entry, whether to copy it there)."""
    if _inside(file, dataset_dir) and not file.is_symlink():
        target = file.resolve()
        return target, target.relative_to(dataset_dir.resolve()).as_posix(), False
    target = dataset_dir / f"{name}{file.suffix.lower()}"
    return target, target.name, True


def check_register(file: Path, name: str, dataset_dir: Path, report: Report) -> None:
    """Raise what `register` of this validated file would refuse, writing nothing."""
    check_name(name)
    if dataset_dir.exists() and not dataset_dir.is_dir():
        raise LfWrapError(f"{dataset_dir}: exists and is not a directory", hint="pick another --dataset-dir")
    target, file_name, must_copy = _target(file, name, dataset_dir)
    entry = build_entry(report, file_name)
    info_path = dataset_dir / INFO_NAME
    old = read_info(dataset_dir, must_exist=False).get(name)
    how = f"register it under another name (lf-wrap data register {file} --name NEW --dataset-dir {dataset_dir})"
    if old is not None and old != entry:
        raise LfWrapError(
            f"{info_path}: a different dataset named {name!r} is already registered: "
            + json.dumps(old, ensure_ascii=False),
            hint=f"{how}, then pass that name",
        )
    if must_copy and target.exists() and not _same_bytes(file, target):
        raise LfWrapError(f"{target}: exists with different content", hint=f"{how}, then pass that name")


def register(
    file: Path,
    name: str,
    dataset_dir: Path,
    fmt: str = "auto",
    force: bool = False,
    max_listed: int = MAX_LISTED,
) -> Registration:
    check_name(name)
    report = validate_file(file, fmt, max_listed=max_listed)
    if not report.ok:
        raise DatasetInvalid(report)
    if dataset_dir.exists() and not dataset_dir.is_dir():
        raise LfWrapError(f"{dataset_dir}: exists and is not a directory", hint="pick another --dataset-dir")
    dataset_dir.mkdir(parents=True, exist_ok=True)
    info_path = dataset_dir / INFO_NAME

    target, file_name, must_copy = _target(file, name, dataset_dir)
    entry = build_entry(report, file_name)

    with locked(info_path):
        # Every write into the dataset dir happens under this lock, so any temp file
        # there now was left by a writer that was killed (SIGKILL cannot be cleaned up).
        for pattern in ("*.json", "*.jsonl"):
            remove_stale_temps(dataset_dir, pattern)
        info = read_info(dataset_dir, must_exist=False)
        old = info.get(name)
        if old == entry and (not must_copy or _same_bytes(file, target)):
            return Registration(name, "unchanged", entry, info_path, target, False, report)
        if old is not None and old != entry and not force:
            raise LfWrapError(
                f"{info_path}: a different entry named {name!r} exists: {json.dumps(old, ensure_ascii=False)}",
                hint="pick another --name, or pass --force to replace it",
            )
        copied = False
        if must_copy and not _same_bytes(file, target):
            if target.exists() and not force:
                raise LfWrapError(
                    f"{target}: exists with different content",
                    hint="pick another --name, or pass --force to replace that file",
                )
            atomic_copy(file, target)
            copied = True
        info[name] = entry
        atomic_write(info_path, json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    return Registration(name, "replaced" if old is not None else "added", entry, info_path, target, copied, report)


def _same_bytes(a: Path, b: Path, chunk: int = 1 << 20) -> bool:
    """Same content? Compared a chunk at a time: a dataset of gigabytes is never read whole into memory."""
    if not b.exists():
        return False
    if a.stat().st_size != b.stat().st_size:
        return False
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            block = fa.read(chunk)
            if block != fb.read(chunk):
                return False
            if not block:
                return True


class DatasetInvalid(LfWrapError):
    """Validation found errors; carries the report so the CLI can list them.

    `outcome` says what did not happen because of them ("not registered", "no statistics computed"…)."""

    def __init__(self, report: Report, outcome: str = "not registered") -> None:
        first = next((i for i in report.issues if i.severity == "error"), None)
        where = first.location(report.file) if first else report.file
        message = f"{report.file}: {report.errors} error(s); {outcome}"
        if first is not None:
            message += f" (first: {where}: {first.message})"
        super().__init__(
            message,
            hint=f"fix those rows (`lf-wrap data validate {report.file}` lists every one), then run this again",
            location=where,
        )
        self.report = report
