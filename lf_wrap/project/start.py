"""Starting a run from another run's result (`--from-run NAME`, `from_run:` in lf-wrap.yaml).

The other run's merged model when it has one (`lf-wrap export`), else its LoRA adapter, merged
into the base model in memory before a new adapter is trained (`create_new_adapter`), so that
DPO's reference model is the SFT model and not the base. What the run started from is recorded
in its manifest, and `lf-wrap export` merges onto the same start.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from lf_wrap.project.config import Project
from lf_wrap.project.runs import RunFolder
from lf_wrap.util.errors import LfWrapError
from lf_wrap.util.files import read_json_object


@dataclass(frozen=True)
class StartPoint:
    """Where a run starts: another run's merged model, its adapter (merged in memory), or its full fine-tune."""

    run: str
    run_dir: str
    kind: Literal["merged", "adapter", "full"]
    model: str  # model_name_or_path for training
    adapter: str | None = None  # kind "adapter": merged into `model` before a new adapter is trained
    stage: str | None = None  # what the other run trained

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_model_dir(path: Path) -> bool:
    return (path / "config.json").is_file() and any(
        p.suffix in (".safetensors", ".bin") for p in path.iterdir() if p.is_file()
    )


def resolve_from_run(project: Project) -> StartPoint | None:
    """The run named by `from_run:` / --from-run, checked: finished, of the same model and template."""
    c = project.config
    if not c.from_run:
        return None
    where = project.origin("from_run", "--from-run")
    where = "--from-run" if where == "--set" else where
    runs_dir = project.path(c.runs_dir).resolve()
    root = runs_dir / c.from_run
    if c.from_run == c.run_name:
        raise LfWrapError(
            f"{where}: {c.from_run!r} is this run itself",
            hint="give this run another name (--set run_name=NEW), e.g. the SFT run's name with -dpo",
        )
    if not root.is_dir():
        others = (
            sorted(p.name for p in runs_dir.iterdir() if (p / "manifest.json").exists()) if runs_dir.is_dir() else []
        )
        raise LfWrapError(
            f"{where}: no run named {c.from_run!r} in {runs_dir}",
            hint=(f"runs there: {', '.join(others)}" if others else "train one first: lf-wrap train")
            + "; pass the run_name of the run to start from",
        )
    run = RunFolder(root)
    train = run.manifest().get("train") or {}
    status = train.get("status")
    if status and status != "succeeded":
        raise LfWrapError(
            f"{where}: run {c.from_run!r} did not finish (its training {status})",
            hint=f"finish it first (lf-wrap train --set run_name={c.from_run} --resume), or start from another run",
        )
    config = train.get("config") or {}
    if config.get("template") and config["template"] != c.template:
        raise LfWrapError(
            f"{where}: run {c.from_run!r} was trained with template {config['template']!r}, this project uses "
            f"{c.template!r}",
            hint=f"set `template: {config['template']}`: the model answers in the format it was trained on",
        )
    stage = config.get("stage")
    if _is_model_dir(run.merged):
        return StartPoint(c.from_run, str(root), "merged", str(run.merged.resolve()), None, stage)
    if (run.output / "adapter_config.json").is_file():
        if c.method in ("full", "qlora"):
            why = (
                "trains whole weights"
                if c.method == "full"
                else "cannot merge an adapter into a quantized model (LLaMA-Factory would keep training the old "
                "adapter, and DPO's reference would be the base model)"
            )
            raise LfWrapError(
                f"{where}: run {c.from_run!r} has a LoRA adapter but no merged model, and `method: {c.method}` {why}",
                hint=f"merge it first: lf-wrap export --set run_name={c.from_run}  (or train this run with LoRA)",
            )
        _check_same_base(project, run.output / "adapter_config.json", where)
        return StartPoint(c.from_run, str(root), "adapter", project.model_ref(), str(run.output.resolve()), stage)
    if _is_model_dir(run.output):
        return StartPoint(c.from_run, str(root), "full", str(run.output.resolve()), None, stage)
    raise LfWrapError(
        f"{where}: run {c.from_run!r} has no adapter ({run.output / 'adapter_config.json'}) and no merged model "
        f"({run.merged}) to start from",
        hint=f"train it first (lf-wrap train --set run_name={c.from_run}), or name a run that finished training",
    )


def _check_same_base(project: Project, adapter_config: Path, where: str) -> None:
    base = read_json_object(adapter_config).get("base_model_name_or_path")
    mine = project.model_ref()
    if isinstance(base, str) and base and Path(base).resolve() != Path(mine).resolve() and base != mine:
        raise LfWrapError(
            f"{where}: the adapter of run {project.config.from_run!r} was trained on {base}, this project's "
            f"model is {mine}",
            hint=f"set `model: {base}` (an adapter only fits the model it was trained on)",
        )


def start_values(project: Project, start: StartPoint) -> dict[str, tuple[Any, str]]:
    """The training keys a start point sets, each with where it came from."""
    origin = project.origin("from_run", "--from-run")
    label = f"--from-run {start.run}" if origin == "--set" else f"{origin}: from_run {start.run!r}"
    if start.kind == "adapter":
        return {
            "adapter_name_or_path": (start.adapter, f"{label}, its adapter (merged into the base model first)"),
            "create_new_adapter": (True, f"{label}: a new adapter on top of the merged one"),
        }
    what = "its merged model" if start.kind == "merged" else "its fully fine-tuned model"
    return {"model_name_or_path": (start.model, f"{label}, {what}")}


def recorded_start(run_dir: Path) -> StartPoint | None:
    """What a trained run started from, as its manifest recorded it."""
    found = (RunFolder(run_dir).manifest().get("train") or {}).get("from_run")
    if not isinstance(found, dict):
        return None
    try:
        return StartPoint(**found)
    except TypeError:
        return None
