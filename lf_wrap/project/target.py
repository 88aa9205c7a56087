"""What `check`, `chat` and `eval` point at: which server, which run, which project file, and the
chat-template kwargs the run's model was trained with, resolved in one place.

- `--base-url URL` outside a project (no --config, no --set, no lf-wrap.yaml here): that server
  and nothing else; any OpenAI-compatible server can be checked, talked to or compared.
- Otherwise the project's run: its project file loaded and validated (`settings=True`, for the
  commands that read its datasets), or only its run folder found, as `serve status` finds it (a
  typo in the training settings does not stop a chat). Without --base-url the target is the
  run's detached server (runs/<name>/serve.json). The run's manifest says how its model was
  trained to think (model/thinking.py): every request sends the chat-template kwargs it was
  trained with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lf_wrap.model.thinking import request_kwargs
from lf_wrap.project.config import PROJECT_FILE, Project, load_project
from lf_wrap.project.runs import RunFolder, locate_run_dir
from lf_wrap.util.errors import LfWrapError


def in_a_project(config_file: Path | None, sets: tuple[str, ...]) -> bool:
    """Does the command line (or the current folder) name a project? Else --base-url stands alone."""
    return config_file is not None or bool(sets) or Path(PROJECT_FILE).exists()


@dataclass
class Target:
    base_url: str
    model: str | None  # None: the first model the server lists
    api_key: str | None
    project: Project | None = None  # loaded when the command reads the project's settings
    run: RunFolder | None = None  # the project's run (None: a server given by --base-url alone)
    server: dict[str, Any] | None = None  # the run's serve.json, when the target is that server
    thinking: dict[str, Any] = field(default_factory=dict)  # the run's manifest `train.thinking`

    @property
    def model_dir(self) -> Path | None:
        """The model folder the run's detached server serves (None for any other server)."""
        folder = (self.server or {}).get("model")
        return Path(folder) if isinstance(folder, str) and folder else None

    def chat_template_kwargs(self, thinking: bool | None = None) -> dict[str, Any]:
        """What each request sends: the run's trained kwargs, and enable_thinking where `thinking` asks otherwise."""
        return request_kwargs(self.thinking.get("chat_template_kwargs") or {}, thinking)


def locate(config_file: Path | None, sets: tuple[str, ...], *, settings: bool) -> tuple[Project | None, RunFolder]:
    """The project (loaded and validated with `settings`, else None) and its run folder."""
    if settings:
        project = load_project(config_file, sets)
        return project, RunFolder(project.run_dir.resolve())
    return None, RunFolder(locate_run_dir(config_file, sets))


def resolve(
    config_file: Path | None,
    sets: tuple[str, ...],
    base_url: str | None,
    model: str | None,
    api_key: str | None,
    *,
    settings: bool = False,
) -> Target:
    """The server to talk to: --base-url (any server), else the run's detached server."""
    if base_url is not None and not in_a_project(config_file, sets):
        return Target(base_url, model, api_key)
    project, run = locate(config_file, sets, settings=settings)
    server = None
    if base_url is None:
        server = run.server()
        if server is None:
            raise LfWrapError(
                f"no --base-url and no detached server for run {run.name!r} ({run.server_record})",
                hint="start one with `lf-wrap serve --detach`, or pass --base-url URL (any OpenAI-compatible server)",
            )
        base_url, model = server["base_url"], model or server.get("served_model_name")
    return Target(base_url, model, api_key, project, run, server, run.thinking())
