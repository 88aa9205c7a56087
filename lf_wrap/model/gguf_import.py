"""`lf-wrap model import FILE.gguf DIR`: a GGUF file (what llama.cpp and Ollama users have on
disk) becomes a Hugging Face folder that LLaMA-Factory can fine-tune.

The conversion itself is transformers' own GGUF loader, run in the training environment by
engines/inside/gguf_import.py; this side checks what it can before that (the file is readable
and a GGUF; the destination is free), converts into a hidden temporary folder, records where
the weights came from (lf-wrap-import.json: the source path, its size and sha256, the GGUF's
facts), proves the folder with the model and EOS checks, and only then renames it into place:
a refused or failed import leaves nothing half-written.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path
from typing import Any

from lf_wrap import __version__
from lf_wrap.engines.llamafactory import LlamaFactory
from lf_wrap.model import eos
from lf_wrap.model.folder import check_model_dir, human_count
from lf_wrap.util import console
from lf_wrap.util.errors import ExternalError, LfWrapError
from lf_wrap.util.files import atomic_write, cannot, sha256_file
from lf_wrap.util.process import run_logged, shell_line, tail

INSIDE = Path(__file__).resolve().parents[1] / "engines" / "inside" / "gguf_import.py"
RECORD = "lf-wrap-import.json"
DTYPES = ("auto", "float32", "bfloat16", "float16")


def check_source(src: Path) -> int:
    """The file exists, is readable and starts like a GGUF; returns its size."""
    if not src.exists():
        raise LfWrapError(f"{src} does not exist", hint="pass the path of a .gguf file")
    if src.is_dir():
        raise LfWrapError(f"{src} is a folder, not a GGUF file", hint="pass the .gguf file inside it")
    try:
        with src.open("rb") as handle:
            magic = handle.read(4)
        size = src.stat().st_size
    except OSError as err:
        raise cannot(err, src, "read") from None
    if magic != b"GGUF":
        raise LfWrapError(
            f"{src} is not a GGUF file (it starts with {magic!r}; a GGUF file starts with b'GGUF')",
            hint="pass the .gguf file itself; Ollama keeps its models as blobs/sha256-… under ~/.ollama/models",
        )
    return size


def check_destination(dest: Path, force: bool) -> None:
    if dest.exists() and not dest.is_dir():
        raise LfWrapError(f"{dest} exists and is not a folder", hint="choose a new folder for the model")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise LfWrapError(
            f"{dest} already exists and is not empty",
            hint="choose a new folder, or pass --force to replace what is there",
        )


def _apply_umask(folder: Path) -> None:
    """transformers writes some files 0600; a model folder is shared like any other output."""
    mask = os.umask(0)
    os.umask(mask)
    for path in folder.iterdir():
        if path.is_file():
            path.chmod(0o666 & ~mask)


def _last_json(log: Path) -> dict[str, Any] | None:
    for line in reversed(tail(log, 50).splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            return value if isinstance(value, dict) else None
    return None


def import_gguf(src: Path, dest: Path, *, force: bool = False, dtype: str = "auto") -> dict[str, Any]:
    """Convert `src` into the folder `dest`; returns the import record."""
    size = check_source(src)
    check_destination(dest, force)
    engine = LlamaFactory.find()
    if not engine.has_module("gguf"):
        raise LfWrapError(
            f"the training environment ({engine.python}) has no `gguf` package, which transformers needs to read GGUF",
            hint="update it with `make setup-train` (requirements/train.lock pins gguf), "
            "or pip install gguf==0.19.0 there",
        )
    parent = dest.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise cannot(err, parent, "create") from None
    work = parent / f".{dest.name}.importing-{os.getpid()}"
    log = parent / f".{dest.name}.import-{os.getpid()}.log"
    shutil.rmtree(work, ignore_errors=True)
    cmd = [str(engine.python), "-I", str(INSIDE), str(src.absolute()), str(work), "--dtype", dtype]
    console.note(f"$ {shell_line(cmd)}")
    console.note(f"model import: sha256 of {src} ({human_count(size)}B) ...")
    digest = sha256_file(src)
    console.note("model import: converting with transformers' GGUF loader (~30 s for 135M parameters) ...")
    try:
        work.mkdir()
        outcome = run_logged(cmd, log, env=engine.env(offline=True), cwd=parent)
        result = _last_json(log)
        if outcome.interrupted:
            raise ExternalError(f"model import stopped ({outcome.interrupted}); nothing was written to {dest}")
        if outcome.returncode == 2 and result and "error" in result:
            raise LfWrapError(str(result["error"]), hint=result.get("hint"))
        if outcome.returncode != 0 or result is None or "error" in result:
            raise ExternalError(
                f"the GGUF conversion failed (exit {outcome.returncode}); nothing was written to {dest}\n{tail(log)}",
                hint="the command above reproduces it",
            )
        _apply_umask(work)
        record = {
            "source": str(src.absolute()),
            "sha256": digest,
            "size_bytes": size,
            "imported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "lf_wrap": __version__,
            "command": cmd,
            "seconds": round(outcome.duration_s, 1),
            "facts": result,
        }
        atomic_write(work / RECORD, json.dumps(record, indent=2) + "\n")
        check_model_dir(work)
        report = eos.inspect(work, None)
        if not report.ok:
            raise ExternalError(
                "the imported folder does not stop where the model's answers end: "
                + "; ".join(report.problems + report.disagreements),
                hint="; ".join(report.fixes) or None,
            )
        if dest.exists():
            shutil.rmtree(dest)
        work.rename(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        log.unlink(missing_ok=True)
    record["path"] = str(dest)
    return record


def describe(record: dict[str, Any]) -> str:
    facts = record["facts"]
    special = facts["special_tokens"]
    return (
        f"imported {record['path']}: {facts['architecture']} ({facts['model_type']}), "
        f"{human_count(facts['parameters'])} parameters as {facts['dtype']} "
        f"(GGUF tensors {', '.join(facts['tensor_types'])}) in {record['seconds']:.0f} s\n"
        f"  special tokens from the GGUF: bos {special['bos_token']!r}, eos {special['eos_token']!r}, "
        f"pad {special['pad_token']!r}, unk {special['unk_token']!r}; stop ids {facts['stop_ids']}\n"
        f"  context {facts['context_length']}, "
        f"chat template {'kept' if facts['has_chat_template'] else 'none in the file'}\n"
        f"  source {record['source']} (sha256 {record['sha256'][:16]}…), recorded in {RECORD}"
    )
