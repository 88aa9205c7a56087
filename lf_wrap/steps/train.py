"""`lf-wrap train`: check everything that can be checked, then run `llamafactory-cli train`.

Order matters: model folder, datasets (registered and valid), run folder state, the
engine, the hardware, DeepSpeed and the chat-template agreement are all checked before
the engine loads a model. `--dry-run` runs exactly this plan and stops before `execute`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lf_wrap.data.registry import entry_file, lookup, read_info, validate_entry
from lf_wrap.data.stats import char_lengths
from lf_wrap.engines.llamafactory import LlamaFactory
from lf_wrap.engines.training_log import LogMetrics, average_loss, last_checkpoint, read_trainer_log, reward_summary
from lf_wrap.model.folder import count_parameters, human_count
from lf_wrap.model.template_agreement import progress_line, raise_if_harmful, scope
from lf_wrap.model.thinking import training_thinking
from lf_wrap.model.tokenizer import check_tokenizer_class
from lf_wrap.project.chat_template import data_shape, training_options
from lf_wrap.project.config import Project
from lf_wrap.project.hardware import Hardware, detect
from lf_wrap.project.launch import DEEPSPEED_PRESETS, deepspeed_config, global_batch
from lf_wrap.project.memory import MemoryPlan
from lf_wrap.project.recipe import render_train
from lf_wrap.project.run_step import RunStep
from lf_wrap.project.runs import RunFolder
from lf_wrap.project.stages import PREFERENCE_STAGES, check_stage_data
from lf_wrap.project.start import StartPoint, resolve_from_run
from lf_wrap.steps.memory_check import plan_for, refuse_if_too_big, setup_from
from lf_wrap.steps.memory_check import summary as memory_summary
from lf_wrap.util.errors import LfWrapError
from lf_wrap.util.files import atomic_write, sha256_file
from lf_wrap.util.process import shell_line
from lf_wrap.util.progress import Progress
from lf_wrap.util.render import Rendered, render_json


@dataclass
class TrainPlan:
    project: Project
    run: RunFolder
    rendered: Rendered
    command: list[str]
    datasets: list[dict[str, Any]]
    model_dir: Path
    engine: LlamaFactory | None
    resume_from: Path | None = None
    overwrite: bool = False
    probe: dict[str, Any] | None = None
    deepspeed: tuple[Path, str] | None = None  # (where, JSON text) when lf-wrap renders a preset
    notes: list[str] = field(default_factory=list)
    hardware: Hardware | None = None
    start: StartPoint | None = None  # --from-run: another run's merged model or adapter (project/start.py)
    memory: MemoryPlan | None = None  # per device, before the model loads (steps/memory_check.py)

    @property
    def launch_env(self) -> dict[str, str]:
        return self.project.launch.env()

    @property
    def global_batch_size(self) -> int:
        return global_batch(self.rendered.values, self.project.launch)

    def batch_arithmetic(self) -> str:
        v, launch = self.rendered.values, self.project.launch
        return (
            f"global batch size {self.global_batch_size} = {v.get('per_device_train_batch_size', 1)} per device"
            f" x {v.get('gradient_accumulation_steps', 1)} accumulation x {launch.nproc_per_node} processes"
            f" x {launch.nnodes} nodes"
        )

    def before_lines(self, dry_run: bool) -> list[str]:
        """What `train` says (stderr) before the engine starts: the hardware, the batch, the template check."""
        lines = [self.hardware.summary()] if self.hardware is not None else []
        lines += [] if dry_run else [self.batch_arithmetic()]
        lines += [memory_summary(self.memory)] if self.memory is not None and not dry_run else []
        lines += [progress_line(self.probe["template_check"])] if self.probe else []
        return lines + self.notes

    def dry_run_lines(self) -> list[str]:
        """What `train --dry-run` says (stderr) after the YAML: what it would write and run, on which node."""
        lines = [f"# would write {self.deepspeed[0]}:\n{self.deepspeed[1]}".rstrip("\n")] if self.deepspeed else []
        lines.append(f"# {self.batch_arithmetic()}")
        lines += [f"# {line}" for line in self.memory.lines()] if self.memory is not None else []
        launch = self.project.launch
        if launch.distributed:
            lines.append(f"# node {launch.node_rank} of {launch.nnodes}:")
        return [*lines, f"# would run: {shell_line(self.command, self.launch_env)}"]


def check_datasets(project: Project) -> list[dict[str, Any]]:
    """Every dataset registered and valid; all problems reported at once."""
    dataset_dir = project.path(project.config.dataset_dir)
    info = read_info(dataset_dir)
    facts: list[dict[str, Any]] = []
    problems: list[str] = []
    for name in project.config.datasets:
        try:
            path = entry_file(dataset_dir, name, lookup(info, dataset_dir, name))
            report = validate_entry(dataset_dir, name, max_listed=10)
        except LfWrapError as err:
            problems.append(str(err))
            continue
        if not report.ok:
            problems.extend(report.lines())
            continue
        facts.append(
            {
                "name": name,
                "file": str(path.resolve()),
                "sha256": sha256_file(path),
                "rows": report.rows,
                "formatting": report.spec.formatting,
                "ranking": report.spec.ranking,
            }
        )
    if problems:
        raise LfWrapError(
            "datasets are not ready for training:\n" + "\n".join(f"  {p}" for p in problems),
            hint=f"fix them, then register again with `lf-wrap data register … --dataset-dir {dataset_dir}`",
        )
    return facts


def plan(
    project: Project,
    *,
    resume: bool = False,
    overwrite: bool = False,
    template_check: bool = True,
    hardware: Hardware | None = None,
) -> TrainPlan:
    """Every pre-flight check of `lf-wrap train`; `--dry-run` stops after this, the real run executes it.

    `hardware` replaces the look at this machine (tests; LF_WRAP_FAKE_GPUS does the same)."""
    c = project.config
    model_dir = project.model_dir()
    check_tokenizer_class(model_dir)
    # pairs for dpo, kto_tag rows for kto, neither for sft; before the rows are read
    check_stage_data(c.stage, c.datasets, project.path(c.dataset_dir), project.origin("datasets", "datasets"))
    datasets = check_datasets(project)
    start = resolve_from_run(project)
    if start is not None and start.kind != "adapter":
        model_dir = Path(start.model)  # what is trained, and what the template check looks at
    run = RunFolder(project.run_dir.resolve())
    extra: dict[str, Any] = {}
    resume_from: Path | None = None
    has_output = run.output.exists() and any(run.output.iterdir())
    if resume:
        resume_from = last_checkpoint(run.output) if run.output.exists() else None
        if resume_from is None:
            raise LfWrapError(
                f"{run.output}: no checkpoint to resume from",
                hint="checkpoints are saved every `save_steps`; start a new run without --resume",
            )
        extra["resume_from_checkpoint"] = str(resume_from)
        project.origins["train.resume_from_checkpoint"] = "--resume: the last checkpoint"
    elif has_output and not overwrite:
        raise LfWrapError(
            f"{run.root} already holds a training run",
            hint="pass --resume to continue it, --overwrite to start over, or --set run_name=NEW for a new run",
        )
    if overwrite:
        extra["overwrite_output_dir"] = True
        project.origins["train.overwrite_output_dir"] = "--overwrite"
    engine = LlamaFactory.find(project.config.llamafactory_cli, project.root)
    hardware = hardware or detect(engine.python)
    launch = project.launch
    use_cpu = project.config.train.get("use_cpu", hardware.use_cpu)
    if launch.distributed and use_cpu and "ddp_backend" not in project.config.train:
        extra["ddp_backend"] = "gloo"  # NCCL needs GPUs
        project.origins["train.ddp_backend"] = "lf-wrap: distributed training on CPU needs gloo (NCCL needs GPUs)"
    deepspeed: tuple[Path, str] | None = None
    if project.config.deepspeed:
        choice = project.config.deepspeed
        if choice in DEEPSPEED_PRESETS:
            text = json.dumps(render_json(f"deepspeed/{choice}.json.j2", {}), indent=2) + "\n"
            deepspeed = (run.root / "deepspeed.json", text)
            extra["deepspeed"] = str(run.root / "deepspeed.json")
        else:
            extra["deepspeed"] = str(deepspeed_config(choice))
        project.origins["train.deepspeed"] = project.origin("deepspeed", "--deepspeed") + f" ({choice})"
    if extra:
        project.config.train = {**project.config.train, **extra}
    rendered = render_train(
        project, command=f"lf-wrap train  (llamafactory-cli train {run.train_yaml})", hardware=hardware
    )
    command = engine.command("train", run.train_yaml)
    p = TrainPlan(project, run, rendered, command, datasets, model_dir, engine, resume_from, overwrite)
    p.deepspeed = deepspeed
    p.hardware = hardware
    p.start = start
    p.notes.extend(hardware_warnings(p))
    setup = setup_from(rendered.values, project.config.method, launch, hardware, project.config.deepspeed)
    p.memory = plan_for(model_dir, setup, hardware)
    refuse_if_too_big(p.memory, model_dir, setup, hardware)  # before the template check's LLaMA-Factory import
    if project.config.deepspeed and not engine.has_module("deepspeed"):
        raise LfWrapError(
            "DeepSpeed is not installed in the training environment",
            hint=f"{engine.python} -m pip install deepspeed   (it needs CUDA GPUs), or drop --deepspeed",
        )
    if template_check:
        probe = engine.probe(
            model_dir, project.config.template, options=training_options(project), data=data_shape(project)
        )
        p.probe = probe
        check = probe["template_check"]
        check["serve_with"] = project.config.chat_template
        check["scope"] = scope(check)  # where it agrees for this data only: the manifest keeps it for chat
        # the verdict, the first difference and the verified fixes
        raise_if_harmful(check, model_dir, project.config.chat_template)
        if check["verdict"] == "no_chat_template":
            p.notes.append(
                f"warning: {model_dir} has no chat template; "
                f"LLaMA-Factory's export will write its {check['template']!r} template"
            )
    return p


# Training on CPU: an honest order of magnitude, not a promise.
CPU_WARN_PARAMS = 100_000_000
CPU_FLOPS_PER_CORE = 10e9  # assumed sustained FLOP/s per core for fp32 training
CHARS_PER_TOKEN = 4  # English text; Chinese and code have fewer characters per token


def hardware_warnings(p: TrainPlan) -> list[str]:
    """Settings that contradict the machine, and the cost of a big model on CPU."""
    hw, v = p.hardware, p.rendered.values
    if hw is None or hw.cuda:
        return []
    out = []
    for key, bad in (("use_cpu", False), ("bf16", True), ("fp16", True)):
        if v.get(key) is bad:
            where = p.project.origin(f"train.{key}", "the project")
            out.append(f"note: {where} sets {key}: {str(bad).lower()}, though {hw.summary()}")
    estimate = cpu_estimate(p)
    if estimate:
        out.append(estimate)
    return out


def _duration(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def cpu_estimate(p: TrainPlan) -> str | None:
    """A warning with the arithmetic when a model of over ~100M parameters would train on CPU."""
    v = p.rendered.values
    if v.get("use_cpu") is not True:
        return None
    params = count_parameters(p.model_dir)
    if params is None or params <= CPU_WARN_PARAMS:
        return None
    cutoff = int(v.get("cutoff_len", 2048))
    lengths: list[int] = []
    dataset_dir = p.project.path(p.project.config.dataset_dir)
    for facts in p.datasets:
        report = validate_entry(dataset_dir, facts["name"])
        chars = char_lengths(Path(facts["file"]), report)
        lengths += [min(cutoff, math.ceil(c / CHARS_PER_TOKEN)) for c in chars]
    rows = len(lengths)
    mean = sum(lengths) / rows if rows else 0.0
    max_steps = int(v.get("max_steps") or -1)
    seen: float  # rows seen in training
    if max_steps > 0:
        seen = max_steps * p.global_batch_size
        how = f"{max_steps} steps x {p.global_batch_size} rows x ~{mean:.0f} tokens"
    else:
        epochs = float(v.get("num_train_epochs", 3.0))
        seen = rows * epochs
        how = f"{rows} rows x ~{mean:.0f} tokens x {epochs:g} epochs"
    tokens = seen * mean
    flops = 6 * params * tokens
    cores = os.cpu_count() or 1
    rate = cores * CPU_FLOPS_PER_CORE
    return (
        f"warning: training a {human_count(params)}-parameter model on CPU. Estimate: {how} = {tokens:,.0f} tokens;"
        f" x 6 x {human_count(params)} parameters = {flops:.1e} FLOPs; at an assumed {CPU_FLOPS_PER_CORE / 1e9:.0f}"
        f" GFLOP/s per core x {cores} cores that is about {_duration(flops / rate)}"
        f" (tokens counted as characters / {CHARS_PER_TOKEN}, capped at cutoff_len {cutoff})."
        f" The float32 weights alone take {params * 4 / 1e9:.1f} GB of memory, training several times that."
        " Train on a machine with a CUDA GPU, or pick a smaller model."
    )


def execute(p: TrainPlan, *, as_json: bool = False) -> dict[str, Any]:
    assert p.engine is not None
    run = p.run
    if p.overwrite:
        for path in (run.output, run.merged):
            if path.exists():
                shutil.rmtree(path)
        run.train_log.unlink(missing_ok=True)
    run.root.mkdir(parents=True, exist_ok=True)
    atomic_write(run.train_yaml, p.rendered.text)
    if p.deepspeed is not None:
        atomic_write(*p.deepspeed)
    env = {**p.engine.env(offline=True), **p.launch_env}
    step = RunStep(run, "train", p.command, run.train_log, env_changes=p.launch_env)
    probe = p.probe
    step.start(
        {
            "cwd": str(run.root),
            "config_file": str(run.train_yaml),
            "config_sha256": sha256_file(run.train_yaml),
            "config": p.rendered.values,
            "template": p.rendered.template,
            "model": {"path": str(p.model_dir), "config_sha256": sha256_file(p.model_dir / "config.json")},
            "datasets": p.datasets,
            "stage": p.rendered.values.get("stage"),
            "from_run": p.start.to_dict() if p.start else None,
            "thinking": training_thinking(
                p.project.config.template, p.rendered.values, [Path(d["file"]) for d in p.datasets]
            ),
            "engine": {"cli": str(p.engine.cli), **((probe or {}).get("versions") or {})},
            "template_check": (probe or {}).get("template_check"),
            "resumed_from": str(p.resume_from) if p.resume_from else None,
            "launch": {
                **asdict(p.project.launch),
                "world_size": p.project.launch.world_size,
                "global_batch_size": p.global_batch_size,
                "env": p.launch_env,
            },
        },
    )
    progress = Progress.choose(as_json, "train")
    log_path = run.output / "trainer_log.jsonl"
    offset = 0 if not p.resume_from else (log_path.stat().st_size if log_path.exists() else 0)
    state = {"offset": offset}

    stage = str(p.rendered.values.get("stage"))
    rewards = LogMetrics(run.train_log) if stage in PREFERENCE_STAGES else None  # DPO/KTO: rewards beside the loss

    def poll() -> None:
        entries, state["offset"] = read_trainer_log(log_path, state["offset"])
        progress.update(rewards.attach(entries) if rewards else entries)

    try:
        outcome = step.run(env, on_poll=poll)
        if rewards:
            progress.update(rewards.attach([], final=True))
    finally:
        progress.close()
    record = step.finish(
        outcome,
        {
            "final_loss": progress.last_loss,
            "final_eval_loss": progress.last_eval_loss,  # with a validation split (val_size / eval_dataset)
            "validation": _validation(p.rendered.values),
            "train_loss_avg": average_loss(run.output),
            "steps": (progress.last or {}).get("current_steps"),
            "total_steps": (progress.last or {}).get("total_steps"),
            "adapter": str(run.output) if (run.output / "adapter_config.json").exists() else None,
            "preference": reward_summary(run.output, stage) if stage in PREFERENCE_STAGES else None,
        },
        what="training",
        interrupted="; the engine and its workers were stopped",
        resume="continue with `lf-wrap train --resume` (from the last checkpoint)",
    )
    return {"run": str(run.root), **record}


def _validation(values: dict[str, Any]) -> dict[str, Any] | None:
    """The validation split the run evaluated on (None: none); `lf-wrap eval` answers its rows."""
    val_size, eval_dataset = float(values.get("val_size") or 0), values.get("eval_dataset")
    if val_size <= 0 and not eval_dataset:
        return None
    return {"val_size": val_size, "eval_dataset": eval_dataset, "eval_steps": values.get("eval_steps"),
            "seed": values.get("seed")}  # fmt: skip


def done_line(p: TrainPlan, result: dict[str, Any]) -> str:
    """What `lf-wrap train` says when the engine is done."""
    loss, eval_loss = result.get("final_loss"), result.get("final_eval_loss")
    return (
        f"trained {p.run.name} in {result['duration_s']:.0f} s"
        + (f", final loss {loss:.4f}" if loss is not None else "")
        + (f", eval loss {eval_loss:.4f}" if eval_loss is not None else "")
        + f"; adapter in {p.run.output}"
    )
