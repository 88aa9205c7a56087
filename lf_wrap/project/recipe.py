"""What a project makes for LLaMA-Factory: every value of the training and export configs,
each with where it came from, and the YAML rendered from templates/ (util/render.py).

Lowest precedence first: lf-wrap's own settings, lf_wrap/project/defaults.py (LLaMA-Factory's
example values), the hardware check (project/hardware.py), the project's `train:`/`export:`
blocks, `--set`. A run started from another run (project/start.py) trains and merges from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lf_wrap.engines.llamafactory import LlamaFactory
from lf_wrap.model.folder import model_dtype
from lf_wrap.project.config import Project, ProjectConfig
from lf_wrap.project.defaults import LORA_ALPHA_SOURCE, export_defaults, stage_defaults, train_defaults
from lf_wrap.project.hardware import Hardware, detect
from lf_wrap.project.start import recorded_start, resolve_from_run, start_values
from lf_wrap.util.errors import LfWrapError
from lf_wrap.util.files import read_json_object
from lf_wrap.util.render import Rendered, render_yaml


def train_template(config: ProjectConfig) -> str:
    return f"train/{config.stage}_{config.method}.yaml.j2"


def project_hardware(project: Project) -> Hardware:
    """The hardware check for this project: asks the project's training environment, if found."""
    try:
        python: Path | None = LlamaFactory.find(project.config.llamafactory_cli, project.root).python
    except LfWrapError:
        python = None
    return detect(python)


def _model_config(project: Project) -> dict[str, Any]:
    """The model's config.json, for its dtype; {} where there is none yet (`train` checks the folder)."""
    try:
        return read_json_object(Path(project.model_ref()) / "config.json")
    except LfWrapError:
        return {}


def train_values(project: Project, hardware: Hardware) -> tuple[dict[str, Any], dict[str, str]]:
    """Every value of the training config, and where each came from, lowest precedence first:
    lf-wrap's settings, lf_wrap/project/defaults.py, the hardware check, the project's `train:`, --set."""
    c = project.config
    run_dir = project.run_dir.resolve()
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}

    def put(key: str, value: Any, origin: str) -> None:
        values[key] = value
        origins[key] = origin

    run_from = project.origin("run_name", f"the first dataset's name, {c.datasets[0]!r}")
    put("model_name_or_path", project.model_ref(), project.origin("model", "model"))
    put("dataset", ",".join(c.datasets), project.origin("datasets", "datasets"))
    put("dataset_dir", str(project.path(c.dataset_dir).resolve()), project.origin("dataset_dir", "lf-wrap default"))
    put("template", c.template, project.origin("template", "template"))
    put("output_dir", str(run_dir / "output"), f"<runs_dir>/<run_name>/output; run_name from {run_from}")
    put("stage", c.stage, project.origin("stage", "lf-wrap default: supervised fine-tuning"))
    put("do_train", True, "lf-wrap: `train` trains")
    put("finetuning_type", "full" if c.method == "full" else "lora", project.origin("method", "lf-wrap default: lora"))
    for key, default in train_defaults(c.method).items():
        put(key, default.value, default.source)
    for key, default in stage_defaults(c.stage, c.method, c.train.get("pref_loss")).items():
        put(key, default.value, default.source)
    for key, default in hardware.train_values(model_dtype(_model_config(project))).items():
        put(key, default.value, default.source)
    for chosen, others in (("use_cpu", ("bf16", "fp16")), ("bf16", ("fp16",)), ("fp16", ("bf16",))):
        for other in others:  # the project decided itself: the hardware check adds no other precision
            if c.train.get(chosen) is True and other not in c.train:
                put(other, False, f"lf-wrap: the project sets {chosen}")
    for key, value in c.train.items():
        put(key, value, project.origin(f"train.{key}", "lf-wrap"))
    if c.method != "full" and "lora_alpha" not in c.train:
        put("lora_alpha", 2 * int(values["lora_rank"]), LORA_ALPHA_SOURCE)
    if float(values.get("val_size") or 0) > 0 or values.get("eval_dataset"):  # a validation split: evaluate on it
        why = "val_size" if float(values.get("val_size") or 0) > 0 else "eval_dataset"
        for key, value, because in (
            ("eval_strategy", "steps", f"lf-wrap: {why} is set, so evaluate during training"),
            ("eval_steps", values.get("logging_steps", 10), "lf-wrap: every logging_steps, beside a train loss"),
            ("per_device_eval_batch_size", values.get("per_device_train_batch_size", 1), "lf-wrap: the training batch"),
        ):
            if key not in c.train:
                put(key, value, because)
    if c.from_run:  # --from-run: start from another run's merged model or adapter (project/start.py)
        start = resolve_from_run(project)
        for key, (value, because) in start_values(project, start).items() if start else ():
            put(key, value, because)
    return values, origins


def render_train(project: Project, command: str | None = None, hardware: Hardware | None = None) -> Rendered:
    """The training YAML, every value with a comment saying where it came from."""
    values, origins = train_values(project, hardware or project_hardware(project))
    run_dir = project.run_dir.resolve()
    cmd = command or f"llamafactory-cli train {run_dir / 'train.yaml'}"
    return render_yaml(train_template(project.config), values, {"has": lambda key: key in values}, cmd, origins)


def render_export(project: Project, command: str | None = None) -> Rendered:
    c = project.config
    if c.method == "full":
        raise LfWrapError(
            "method `full` trains the whole model: there is no adapter to merge",
            hint="the trained model is already in <runs_dir>/<run_name>/output",
        )
    run_dir = project.run_dir.resolve()
    values: dict[str, Any] = {
        "model_name_or_path": project.model_ref(),
        "adapter_name_or_path": str(run_dir / "output"),
        "template": c.template,
        "finetuning_type": "lora",
        "export_dir": str(run_dir / "merged"),
    }
    origins = {
        "model_name_or_path": project.origin("model", "model"),
        "adapter_name_or_path": "the run's adapter: <runs_dir>/<run_name>/output",
        "template": project.origin("template", "template"),
        "finetuning_type": "lf-wrap: a LoRA adapter is merged",
        "export_dir": "<runs_dir>/<run_name>/merged",
    }
    start = recorded_start(run_dir)  # the run started from another run's result: merge onto the same start
    if start is not None and start.kind != "adapter":
        values["model_name_or_path"] = start.model
        origins["model_name_or_path"] = f"the model the run started from ({start.run}'s {start.kind} model)"
    elif start is not None:
        values["adapter_name_or_path"] = f"{start.adapter},{run_dir / 'output'}"
        origins["adapter_name_or_path"] = f"{start.run}'s adapter (the run's start), then the run's own"
    for key, default in export_defaults().items():
        values[key], origins[key] = default.value, default.source
    for key, value in c.export.items():
        values[key], origins[key] = value, project.origin(f"export.{key}", "lf-wrap")
    cmd = command or f"llamafactory-cli export {run_dir / 'export.yaml'}"
    return render_yaml("export/merge_lora.yaml.j2", values, {}, cmd, origins)
