"""No traceback holes: a user's file that cannot be read, a folder that cannot be written, and a
JSON file of the wrong shape are one message naming the path (exit 2), for every command that
reads or writes the user's files. Under --json that message is the one JSON object on stdout.

The tests run as root on some machines, where chmod cannot take a permission away, so "cannot
be read/written" is injected: every open of a path under a denied folder raises the
PermissionError the kernel would (`denied`).
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lf_wrap.cli import main
from tests.conftest import DATASETS
from tests.helpers import assert_no_crash, fake_model, free_port

ROWS = [{"instruction": "q", "output": "a"}]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    fake_model(tmp_path / "m")
    (tmp_path / "d.json").write_text(json.dumps(ROWS))
    reg = CliRunner().invoke(main, ["data", "register", str(DATASETS / "magic_conch.json"), "--name", "magic_conch"])
    assert reg.exit_code == 0, reg.output
    return tmp_path


@pytest.fixture
def denied(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """`denied(path)`: from now on, opening `path` (or anything under it) fails with EACCES."""
    roots: list[str] = []

    def blocked(target: Any) -> bool:
        try:
            text = os.path.abspath(os.fspath(target))
        except TypeError:  # a file descriptor
            return False
        return any(text == r or text.startswith(r + os.sep) for r in roots)

    def refuse(target: Any) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", os.fspath(target))

    real_open, real_os_open, real_mkdir, real_replace = builtins.open, os.open, os.mkdir, os.replace

    def fake_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if blocked(file):
            refuse(file)
        return real_open(file, *args, **kwargs)

    def fake_os_open(path: Any, *args: Any, **kwargs: Any) -> int:
        if blocked(path):
            refuse(path)
        return real_os_open(path, *args, **kwargs)

    def fake_mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
        if blocked(path):
            refuse(path)
        real_mkdir(path, *args, **kwargs)

    def fake_replace(src: Any, dst: Any) -> None:
        if blocked(dst):
            refuse(dst)
        real_replace(src, dst)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)  # what Path.open calls
    monkeypatch.setattr(os, "open", fake_os_open)  # tempfile.mkstemp, file locks
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    monkeypatch.setattr(os, "replace", fake_replace)  # the rename that finishes an atomic write
    return lambda path: roots.append(os.path.abspath(path))


def server_record(root: Path, run: str, **info: Any) -> Path:
    path = root / "runs" / run / "serve.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info))
    return path


def finished_run(root: Path, run: str, adapter_config: str) -> None:
    """runs/<run>: trained, with an adapter whose adapter_config.json holds `adapter_config`."""
    out = root / "runs" / run / "output"
    out.mkdir(parents=True)
    (out / "adapter_config.json").write_text(adapter_config)
    (root / "runs" / run / "manifest.json").write_text(json.dumps({"train": {"status": "succeeded"}}))


DEAD = f"http://127.0.0.1:{free_port()}"
NO_ENGINE = {"LF_WRAP_LLAMAFACTORY_CLI": "/nonexistent/bin/tool", "LF_WRAP_VLLM": "/nonexistent/bin/tool",
             "LF_WRAP_FAKE_GPUS": "none"}  # fmt: skip
# (case, what to break: a function of the folder, the command, the text the message must hold)
CASES: list[tuple[str, Callable[[Path, Callable[[Path], None]], None], list[str], str]] = [
    # -- a dataset file that cannot be read
    ("validate-unreadable", lambda w, deny: deny(w / "d.json"), ["data", "validate", "d.json"], "d.json: cannot read it"),
    ("stats-unreadable", lambda w, deny: deny(w / "d.json"), ["data", "stats", "d.json"], "d.json: cannot read it"),
    ("convert-unreadable", lambda w, deny: deny(w / "d.json"), ["data", "convert", "d.json", "o.json", "--to", "openai"],
     "d.json: cannot read it"),
    ("register-unreadable", lambda w, deny: deny(w / "d.json"), ["data", "register", "d.json", "--name", "d"],
     "d.json: cannot read it"),
    ("init-unreadable", lambda w, deny: deny(w / "d.json"), ["init", "--model", "m", "--dataset", "d.json"],
     "d.json: cannot read it"),
    ("check-golden-unreadable", lambda w, deny: deny(w / "d.json"),
     ["check", "--base-url", DEAD, "--golden-file", "d.json"], "d.json: cannot read it"),
    ("eval-dataset-unreadable", lambda w, deny: deny(w / "d.json"),
     ["eval", "--base-url", DEAD, "--tuned-url", DEAD, "--dataset", "d.json"], "d.json: cannot read it"),
    ("validate-entry-unreadable", lambda w, deny: deny(w / "data" / "magic_conch.json"),
     ["data", "validate", "--dataset-dir", "data", "--name", "magic_conch"], "magic_conch.json: cannot read it"),
    ("dataset-info-unreadable", lambda w, deny: deny(w / "data" / "dataset_info.json"),
     ["data", "validate", "--dataset-dir", "data", "--name", "magic_conch"], "dataset_info.json: cannot read it"),
    # -- a folder that cannot be written
    ("convert-unwritable", lambda w, deny: (w / "out").mkdir() or deny(w / "out"),
     ["data", "convert", "d.json", "out/o.json", "--to", "openai"], "out/o.json: cannot write it"),
    ("register-unwritable", lambda w, deny: (w / "out").mkdir() or deny(w / "out"),
     ["data", "register", "d.json", "--name", "d", "--dataset-dir", "out"], "out/dataset_info.json.lock: cannot write"),
    ("init-unwritable", lambda w, deny: (w / "out").mkdir() or deny(w / "out"), ["init", "--demo", "out/lf-wrap.yaml"],
     "out/lf-wrap.yaml: cannot write it"),
    ("report-unwritable", lambda w, deny: finished_run(w, "r", "{}") or deny(w / "runs" / "r" / "report.html"),
     ["report", "--run", "r"], "report.html: cannot write it"),
    ("a-folder-under-a-file", lambda w, deny: None, ["data", "convert", "d.json", "d.json/o.json", "--to", "openai"],
     "d.json/o.json: cannot write it"),
    # -- the project file, model and adapter files
    ("project-unreadable", lambda w, deny: (w / "p.yaml").write_text("model: m\n") and deny(w / "p.yaml"),
     ["render", "train", "--config", "p.yaml"], "p.yaml: cannot read it"),
    ("model-config-a-list", lambda w, deny: (w / "m" / "config.json").write_text("[]") and None,
     ["serve", "--model", "m", "--dry-run"], "m/config.json: top level must be a JSON object, got array"),
    ("model-config-unreadable", lambda w, deny: deny(w / "m" / "config.json"),
     ["serve", "--model", "m", "--dry-run"], "m/config.json: cannot read it"),
    ("adapter-config-corrupt", lambda w, deny: finished_run(w, "sft", "{not json"),
     ["serve", "--model", "m", "--adapter", "runs/sft/output", "--dry-run"], "adapter_config.json:1:2: invalid JSON"),
    ("adapter-config-a-list", lambda w, deny: finished_run(w, "sft", "[8]"),
     ["serve", "--model", "m", "--adapter", "runs/sft/output", "--dry-run"], "adapter_config.json: top level must be"),
    ("from-run-adapter-config-a-list", lambda w, deny: finished_run(w, "sft", "[8]"),
     ["render", "train", "--set", "from_run=sft", "--set", "model=m"], "adapter_config.json: top level must be"),
    # -- lf-wrap's own records, edited by hand
    ("serve-json-no-base-url-check", lambda w, deny: server_record(w, "magic-conch", pid=1, pgid=1) and None,
     ["check", "--no-golden"], "serve.json: not a server record lf-wrap wrote (no valid base_url)"),
    ("serve-json-no-base-url-chat", lambda w, deny: server_record(w, "magic-conch", pid=1, pgid=1) and None,
     ["chat"], "serve.json: not a server record lf-wrap wrote (no valid base_url)"),
    ("serve-json-a-list-status", lambda w, deny: (w / "runs" / "x").mkdir(parents=True)
     or ((w / "runs" / "x" / "serve.json").write_text("[]") and None), ["serve", "status", "--run", "x"],
     "serve.json: top level must be a JSON object, got array"),
    ("serve-json-no-pid-stop", lambda w, deny: server_record(w, "x", base_url=DEAD) and None,
     ["serve", "stop", "--run", "x"], "serve.json: not a server record lf-wrap wrote (no valid pid, pgid)"),
    ("manifest-a-list", lambda w, deny: (w / "runs" / "r").mkdir(parents=True)
     or ((w / "runs" / "r" / "manifest.json").write_text("[]") and None), ["report", "--run", "r"],
     "manifest.json: top level must be a JSON object, got array"),
]  # fmt: skip


@pytest.mark.parametrize(("breaks", "args", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_an_unreadable_or_wrong_shaped_file_is_one_message_naming_it(workspace, denied, breaks, args, expected):
    breaks(workspace, denied)
    result = CliRunner().invoke(main, args, env=NO_ENGINE)
    assert_no_crash(result)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr, result.output


def test_the_cases_cover_every_command_that_reads_or_writes_a_users_file():
    covered = {tuple(a for a in args[:2] if not a.startswith("-")) for _, _, args, _ in CASES}
    needed = {("data", "validate"), ("data", "stats"), ("data", "convert"), ("data", "register"), ("init",),
              ("check",), ("eval",), ("report",), ("render", "train"), ("serve",), ("serve", "status"),
              ("serve", "stop"), ("chat",)}  # fmt: skip
    assert needed <= {c[: len(n)] for c in covered for n in needed if c[: len(n)] == n}


def test_under_json_the_message_is_the_one_json_object(workspace, denied):
    denied(workspace / "d.json")
    result = CliRunner().invoke(main, ["data", "stats", "d.json", "--json"])
    assert_no_crash(result)
    payload = json.loads(result.stdout)
    assert payload["exit_code"] == 2 and payload["error"].startswith("d.json: cannot read it (Permission denied)")


def test_a_list_shaped_generation_config_does_not_stop_a_chat(workspace):
    """The chat only takes the default temperature from it; the server reads that file itself and
    says more, so an odd one is passed over (and the chat reaches the server, here: none)."""
    (workspace / "m" / "generation_config.json").write_text("[]")
    server_record(workspace, "magic-conch", pid=1, pgid=1, base_url=DEAD, model=str(workspace / "m"))
    result = CliRunner().invoke(main, ["chat"], input="hi\n")
    assert_no_crash(result)
    assert result.exit_code == 1 and f"cannot connect to {DEAD}/v1" in result.stderr


def test_a_dataset_entry_without_its_columns_is_one_problem_not_one_per_row(workspace):
    rows = [{"instruction": f"q{i}", "chosen": "a", "rejected": "b"} for i in range(500)]
    (workspace / "data" / "pairs.json").write_text(json.dumps(rows))
    info = json.loads((workspace / "data" / "dataset_info.json").read_text())
    info["pairs"] = {"file_name": "pairs.json", "ranking": True, "columns": {"prompt": "instruction"}}
    (workspace / "data" / "dataset_info.json").write_text(json.dumps(info))
    result = CliRunner().invoke(main, ["data", "validate", "--dataset-dir", "data", "--name", "pairs", "--json"])
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    errors = [i for i in report["issues"] if i["severity"] == "error"]
    assert report["errors"] == 2, errors[:3]  # chosen and rejected: once each, for the entry
    assert {i["field"] for i in errors} == {"columns.chosen", "columns.rejected"}
    assert all(i["row"] is None and i["line"] is None for i in errors)
    assert report["warnings"] == 2  # and the rows' chosen/rejected keys it does not map: once per key
