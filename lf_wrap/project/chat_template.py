"""The chat template a project trains and serves with, checked for that project.

`lf-wrap template check`, `train`, `export --chat-template` and `serve --chat-template` run the
template check (model/template_agreement.py judges its answer) on the project's model and
LLaMA-Factory template, with the project's data settings and the kinds of conversation its
datasets hold. `chat_template: training` in the project file serves what LLaMA-Factory trained
on: `served_template` is the one place that turns that setting into a --chat-template choice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lf_wrap.data.formats import spec_from_entry
from lf_wrap.data.registry import entry_file, lookup, read_info
from lf_wrap.data.shape import conversation_shape, total
from lf_wrap.engines.llamafactory import LlamaFactory
from lf_wrap.model.template_agreement import (
    JINJA_NAME,
    OPTION_KEYS,
    bad_input,
    known_template,
    scope,
    serve_training_agrees,
    training_jinja,
)
from lf_wrap.project.config import Project
from lf_wrap.util.errors import LfWrapError
from lf_wrap.util.files import atomic_write


def training_options(project: Project) -> dict[str, Any]:
    """The project's settings that change what LLaMA-Factory trains a conversation as."""
    train = project.config.train
    return {k: train[k] for k in OPTION_KEYS if k in train}


def data_shape(project: Project) -> dict[str, Any] | None:
    """Which kinds of conversation the project's datasets train (lf_wrap/data/shape.py); None
    when a dataset cannot be read yet (then every conversation counts)."""
    dataset_dir = project.path(project.config.dataset_dir)
    try:
        info = read_info(dataset_dir)
        shapes = []
        for name in project.config.datasets:
            entry = lookup(info, dataset_dir, name)
            spec = spec_from_entry(entry, where=name)
            shapes.append(conversation_shape(entry_file(dataset_dir, name, entry), spec))
    except (LfWrapError, OSError):
        return None
    shape = total(shapes)
    if not shape.rows:
        return None
    return shape.kinds()


def probe_project(
    project: Project, model_dir: Path | None = None, template: str | None = None, all_conversations: bool = False
) -> dict[str, Any]:
    """Run the template check for a project's (or the given) model and template, counting the
    kinds of conversation the project's data trains (every kind with `all_conversations`)."""
    name = template or project.config.template
    known_template(name)
    if model_dir is None:
        model_dir = project.model_dir()
    elif not model_dir.is_dir():
        raise LfWrapError(
            f"--model {model_dir}: no such folder",
            hint="pass a model folder (its tokenizer files are enough), or leave --model out for the project's",
        )
    engine = LlamaFactory.find(project.config.llamafactory_cli, project.root)
    data = None if all_conversations else data_shape(project)
    probe = engine.probe(model_dir.resolve(), name, options=training_options(project), data=data)
    check = probe["template_check"]
    check["versions"] = probe.get("versions")
    bad_input(check, model_dir)
    return check


def judge(
    project: Project, model_dir: Path | None, template: str | None, all_conversations: bool
) -> tuple[dict[str, Any], bool]:
    """`lf-wrap template check`: the check, and whether what the project serves is harmful (a project
    with `chat_template: training` serves the template made from LLaMA-Factory's: that is judged)."""
    check = probe_project(project, model_dir, template, all_conversations=all_conversations)
    check["serve_with"] = project.config.chat_template
    check["scope"] = scope(check)
    if project.config.chat_template == "training":
        return check, not serve_training_agrees(check)
    return check, bool(check["harmful"])


def served_template(project: Project, given: str | None) -> str | None:
    """The --chat-template choice to use: the one given, else `training` for a project that serves
    what LLaMA-Factory trained on (`chat_template: training`), else None (the model's own)."""
    if given is None and project.config.chat_template == "training":
        return "training"
    return given


def chat_template_text(project: Project, choice: str) -> str:
    """`training`: the verified Jinja template of the project's LLaMA-Factory template; else a file's text."""
    if choice == "training":
        model_dir = project.model_dir()
        return training_jinja(probe_project(project, model_dir), model_dir)
    path = Path(choice)
    if not path.is_file():
        raise LfWrapError(f"--chat-template {choice}: no such file", hint="pass `training` or a .jinja file")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise LfWrapError(f"--chat-template {choice}: cannot read it ({err})", location="--chat-template") from None


def chat_template_file(project: Project, choice: str) -> Path:
    """A file vLLM can read with --chat-template: the training template is written into the run folder."""
    if choice != "training":
        path = Path(choice)
        if not path.is_file():
            raise LfWrapError(f"--chat-template {choice}: no such file", hint="pass `training` or a .jinja file")
        return path.resolve()
    out = project.run_dir.resolve() / JINJA_NAME
    atomic_write(out, chat_template_text(project, choice))
    return out
