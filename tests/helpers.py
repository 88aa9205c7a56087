"""What many test files need, in one place: lf-wrap as a subprocess, a free port, the command
tree, a real served model (vLLM's RemoteOpenAIServer, the lf-wrap way), and a result check that
can fail.

    result = lfw("check", "--config", cfg, "--json")            # the installed console script
    with Served(cfg, "--api-key", KEY) as server:                 # serve --detach ... serve stop
        httpx.get(f"{server.url}/health")
    assert_no_crash(CliRunner().invoke(main, [...]))              # an exception, not a message: fails
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
from click.testing import Result

from lf_wrap.util.network import free_port

__all__ = [
    "LFW",
    "Served",
    "assert_no_crash",
    "commands",
    "fake_model",
    "fake_safetensors",
    "free_port",
    "leaves",
    "lfw",
    "shell_script",
]

LFW = str(Path(sys.executable).parent / "lf-wrap")


def lfw(
    *args: object,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 900,
    unset: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """Run the installed `lf-wrap` with `args` (the environment: this one, plus `env`, less `unset`)."""
    environ = {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in unset}
    return subprocess.run([LFW, *map(str, args)], cwd=cwd, input=input, capture_output=True, text=True,
                          timeout=timeout, env=environ, check=False)  # fmt: skip


def shell_script(path: Path, body: str) -> Path:
    """An executable /bin/sh script at `path` (a stand-in for nvidia-smi, an environment's Python ...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def commands(group: click.Group, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], click.Command]:
    """Every command and group under `group` by its path (e.g. ("serve", "stop")), in --help's order:
    the root group loads its commands' modules on demand, so they are listed through click's API."""
    out: dict[tuple[str, ...], click.Command] = {}
    with click.Context(group) as ctx:
        for name in group.list_commands(ctx):
            cmd = group.get_command(ctx, name)
            assert cmd is not None, name
            out[(*prefix, name)] = cmd
            if isinstance(cmd, click.Group):
                out.update(commands(cmd, (*prefix, name)))
    return out


def leaves(group: click.Group) -> dict[tuple[str, ...], click.Command]:
    """The commands that run something (no groups)."""
    return {path: cmd for path, cmd in commands(group).items() if not isinstance(cmd, click.Group)}


def assert_no_crash(result: Result) -> None:
    """The command ended by itself (an exit code, a message), not with an exception that escaped it:
    what "never a traceback" means for a CliRunner result (its output never holds the traceback text)."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"the command raised {result.exception!r}\n{result.output}") from result.exception


def fake_model(path: Path) -> Path:
    """A model folder that passes lf-wrap's checks (config, weights, tokenizer files), no real weights."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": "qwen2", "max_position_embeddings": 512}))
    (path / "model.safetensors").write_bytes(b"")
    (path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    return path


def fake_safetensors(path: Path, shapes: dict[str, list[int]]) -> None:
    """A valid safetensors file with these tensor shapes (float32, zeros), written sparse: a header
    that says 200M parameters takes a few kB of disk, and the safetensors library reads it."""
    header: dict[str, Any] = {}
    offset = 0
    for name, shape in shapes.items():
        size = 4
        for dim in shape:
            size *= dim
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)


class Served:
    """A real `lf-wrap serve --detach` for the length of a `with` block, in the manner of vLLM's
    RemoteOpenAIServer (tests/utils.py): a free port; `serve --detach` polls /health and, when the
    server dies while starting, fails with the end of its log; leaving the block stops it with
    `serve stop` (SIGTERM to the process group, a wait, then SIGKILL), and kills the group itself
    should that fail. `args` go to `serve` (--set, --api-key, --model, ...)."""

    def __init__(self, config: Path | str | None, *args: object, cwd: Path | None = None,
                 env: dict[str, str] | None = None, unset: tuple[str, ...] = (), timeout_s: float = 300) -> None:  # fmt: skip
        self.project = ["--config", str(config)] if config is not None else []
        self.root = cwd or (Path(config).parent if config is not None else Path.cwd())
        self.unset = unset
        self.args = [str(a) for a in args]
        self.cwd, self.env, self.timeout_s = cwd, env, timeout_s
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"  # the server's root; the API is at `api`
        self.api = f"{self.url}/v1"
        self.started: subprocess.CompletedProcess[str] | None = None

    @property
    def _run_sets(self) -> list[str]:
        """The --set/--run options that say which run the server belongs to (what `serve stop` needs)."""
        keep: list[str] = []
        for i, arg in enumerate(self.args):
            if i > 0 and self.args[i - 1] in ("--set", "--run", "--runs-dir"):
                keep += [self.args[i - 1], arg]
        return keep

    def __enter__(self) -> Served:
        self.started = lfw("serve", *self.project, *self.args, "--detach", "--port", self.port, "--timeout",
                           self.timeout_s, cwd=self.cwd, env=self.env, unset=self.unset,
                           timeout=self.timeout_s + 120)  # fmt: skip
        if self.started.returncode != 0:
            self.stop()
            raise AssertionError(f"lf-wrap serve failed:\n{self.started.stdout}\n{self.started.stderr}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def out(self) -> str:
        return self.started.stdout if self.started else ""

    @property
    def err(self) -> str:
        return self.started.stderr if self.started else ""

    def record(self) -> dict[str, Any]:
        """The server's serve.json (its pid, process group, base URL), found by its port."""
        for path in self.root.glob("**/serve.json"):
            with contextlib.suppress(OSError, ValueError):
                info = json.loads(path.read_text())
                if info.get("port") == self.port:
                    return {**info, "path": str(path)}
        return {}

    def stop(self) -> None:
        info = self.record()
        lfw("serve", "stop", *self.project, *self._run_sets, cwd=self.cwd, env=self.env, unset=self.unset, timeout=120)
        if info.get("pgid") and Path(info["path"]).exists():  # `serve stop` failed: stop the group here
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(info["pgid"]), signal.SIGKILL)
