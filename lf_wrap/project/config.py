"""The project file (`lf-wrap.yaml`) and `--set` overrides, validated before anything runs.

Top-level keys are lf-wrap's own choices (model, datasets, template, method, ...).  The
`train:` and `export:` blocks hold any LLaMA-Factory argument; their names and types are
checked against LLaMA-Factory's own parser (see engines/schema.py).  Every problem is
collected and reported at once, each naming the file, line and key.

Without a project file lf-wrap uses the built-in demo's (examples/magic_conch.yaml), whose
relative paths are relative to the current directory. Values a project does not set come
from lf_wrap/project/defaults.py and the hardware check; every rendered value records its origin.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import click
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lf_wrap.data.registry import check_name
from lf_wrap.engines import schema
from lf_wrap.model.folder import model_dtype
from lf_wrap.model.hub import is_hub_id
from lf_wrap.project.defaults import LORA_ALPHA_SOURCE, export_defaults, stage_defaults, train_defaults
from lf_wrap.project.hardware import Hardware
from lf_wrap.project.launch import Launch
from lf_wrap.util.errors import LfWrapError
from lf_wrap.util.paths import demo_project
from lf_wrap.util.render import Rendered, render_yaml

PROJECT_FILE = "lf-wrap.yaml"
Method = Literal["lora", "qlora", "full"]

# LLaMA-Factory keys that lf-wrap derives from its own settings: say where to set them.
DERIVED_KEYS = {
    "model_name_or_path": "set `model:` at the top level",
    "dataset": "set `datasets:` at the top level",
    "dataset_dir": "set `dataset_dir:` at the top level",
    "template": "set `template:` at the top level",
    "finetuning_type": "set `method:` (lora, qlora or full) at the top level",
    "stage": "set `stage:` (sft, dpo or kto) at the top level",
    "output_dir": "lf-wrap puts the output in <runs_dir>/<run_name>/output; set `run_name:` or `runs_dir:`",
    "adapter_name_or_path": "lf-wrap takes the adapter from the run; set `run_name:` (or `from_run:` to start "
    "from another run's adapter or merged model)",
    "export_dir": "lf-wrap exports to <runs_dir>/<run_name>/merged; set `run_name:` or `runs_dir:`",
    "deepspeed": "set `deepspeed:` at the top level (z0, z2, z3, z3-offload or a file), or --deepspeed",
}

DEMO_LABEL = "examples/magic_conch.yaml"
DEMO_NOTE = (
    f"note: no {PROJECT_FILE} here: using the built-in demo project ({DEMO_LABEL}); "
    "write your own with `lf-wrap init --model DIR --dataset FILE`"
)
# Settings every project must give, and how.
REQUIRED = {
    "model": "set `model:` to your base model's folder (or a hub id fetched with `lf-wrap model pull`)",
    "template": "set `template:` to the LLaMA-Factory chat template that matches the model",
    "datasets": "set `datasets:` to names registered in <dataset_dir>/dataset_info.json",
}
# Stand-ins so that the rest of a file with a missing or invalid required key is still checked.
_PLACEHOLDERS: dict[str, Any] = {"model": "", "template": "default", "datasets": ["placeholder"]}


class ProjectConfig(BaseModel):
    """lf-wrap.yaml, as a validated model (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid")

    run_name: str = ""  # default: the first dataset's name, `_` as `-`
    model: str
    template: str
    method: Method = "lora"
    stage: Literal["sft", "dpo", "kto"] = "sft"  # dpo/kto: preference training (lf_wrap/project/stages.py)
    from_run: str | None = None  # start from this run's merged model or adapter (--from-run)
    datasets: list[str]
    dataset_dir: str = "data"
    runs_dir: str = "runs"
    llamafactory_cli: str | None = None  # default: .venvs/train, then PATH
    vllm: str | None = None  # path to the `vllm` script; default: .venvs/serve, then PATH
    # distributed training (LLaMA-Factory's torchrun launcher) and DeepSpeed
    nproc_per_node: int = Field(1, ge=1)
    nnodes: int = Field(1, ge=1)
    node_rank: int = Field(0, ge=0)
    master_addr: str = "127.0.0.1"
    master_port: int = Field(29500, ge=1, le=65535)
    deepspeed: str | None = None  # z0 | z2 | z3 | z3-offload | path to a DeepSpeed JSON
    # the chat template the tuned model is served with: the model's own, or one rendering exactly
    # what LLaMA-Factory trained on (export writes it into the merged model; serve passes it to vLLM)
    chat_template: Literal["model", "training"] = "model"
    train: dict[str, Any] = Field(default_factory=dict)
    export: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _derive_run_name(self) -> ProjectConfig:
        if not self.run_name:
            self.run_name = self.datasets[0].replace("_", "-") if self.datasets else "run"
        return self


TOP_KEYS = list(ProjectConfig.model_fields)


@dataclass
class Project:
    config: ProjectConfig
    root: Path  # folder relative paths are resolved against
    source: str  # where the settings came from, for messages
    origins: dict[str, str] = field(default_factory=dict)  # "model", "train.lora_rank" -> "lf-wrap.yaml:3", "--set"
    demo: bool = False  # the built-in demo project (examples/magic_conch.yaml)

    def origin(self, key: str, default: str) -> str:
        return self.origins.get(key, default)

    def path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.root / p)

    @property
    def run_dir(self) -> Path:
        return self.path(self.config.runs_dir) / self.config.run_name

    @property
    def launch(self) -> Launch:
        c = self.config
        return Launch(c.nproc_per_node, c.nnodes, c.node_rank, c.master_addr, c.master_port)

    def model_ref(self) -> str:
        """A local model folder as an absolute path; a hub id (lf_wrap.model.hub.is_hub_id) as given."""
        local = self.path(self.config.model)
        if local.exists() or not is_hub_id(self.config.model):
            return str(local.resolve())
        return self.config.model


def _key_lines(text: str) -> dict[str, int]:
    """Line numbers of `key` and `block.key` in a YAML mapping (best effort)."""
    lines: dict[str, int] = {}
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return lines
    if not isinstance(node, yaml.MappingNode):
        return lines
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode):
            lines[k.value] = k.start_mark.line + 1
            if isinstance(v, yaml.MappingNode):
                for k2, _ in v.value:
                    if isinstance(k2, yaml.ScalarNode):
                        lines[f"{k.value}.{k2.value}"] = k2.start_mark.line + 1
    return lines


def _where_key(source: str, lines: dict[str, int], key: str, origins: dict[str, str] | None = None) -> str:
    if origins and origins.get(key) == "--set":
        return f"--set {key}"
    line = lines.get(key)
    return f"{source}:{line}: {key}" if line else f"{source}: {key}"


def is_demo_file(path: Path) -> bool:
    """Is `path` one of the bundled demo project files itself (examples/*.yaml, not a copy)?"""
    try:
        return path.suffix == ".yaml" and path.resolve().parent == demo_project().resolve().parent
    except OSError:
        return False


def load_project(config_file: Path | None, sets: tuple[str, ...] = ()) -> Project:
    """Read the project file (the demo's if there is none), apply --set overrides, validate all of it.

    Relative paths in a project file are relative to its folder; in the demo file, to the
    current directory (it describes a demo run in the folder lf-wrap runs in).
    """
    if config_file is None:
        if Path(PROJECT_FILE).exists():
            config_file = Path(PROJECT_FILE)
        else:
            config_file = demo_project()
            click.echo(DEMO_NOTE, err=True)
    if not config_file.is_file():
        raise LfWrapError(f"{config_file}: no such file", hint="create one with `lf-wrap init`")
    text = config_file.read_text(encoding="utf-8", errors="replace")
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise LfWrapError(f"{config_file}{at}: invalid YAML: {problem}", hint="fix the YAML syntax there") from None
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise LfWrapError(f"{config_file}: must be a mapping of settings, got {type(loaded).__name__}")
    data: dict[str, Any] = loaded
    lines = _key_lines(text)
    demo = is_demo_file(config_file)
    root = Path.cwd() if demo else config_file.resolve().parent
    source = str(config_file)
    label = f"demo file examples/{config_file.name}" if demo else source
    origins = {key: f"{label}:{line}" for key, line in lines.items()}
    problems: list[str] = []
    for item in sets:
        _apply_set(data, item, problems, origins)
    config = _validate(data, source, lines, problems, origins)
    return Project(config=config, root=root, source=source, origins=origins, demo=demo)


def _apply_set(data: dict[str, Any], item: str, problems: list[str], origins: dict[str, str]) -> None:
    if "=" not in item:
        problems.append(f"--set {item!r}: expected KEY=VALUE, e.g. --set learning_rate=1e-4")
        return
    key, raw = item.split("=", 1)
    key = key.strip()
    if "." in key:
        block, sub = key.split(".", 1)
        if block not in ("train", "export"):
            problems.append(f"--set {key}: only train.KEY and export.KEY take a dot")
            return
        _block(data, block)[sub] = schema.parse_cli_value(sub, raw)
        origins[f"{block}.{sub}"] = "--set"
        return
    if key in TOP_KEYS:
        if key in ("train", "export"):
            problems.append(f"--set {key}: set one key at a time, e.g. --set {key}.learning_rate=1e-4")
        elif key == "datasets":
            data[key] = [d.strip() for d in raw.split(",") if d.strip()]
        else:
            data[key] = raw
        origins[key] = "--set"
        return
    lf_keys = schema.arguments()
    if key in lf_keys:
        block = "train" if "train" in lf_keys[key]["used_by"] else "export"
        _block(data, block)[key] = schema.parse_cli_value(key, raw)
        origins[f"{block}.{key}"] = "--set"
        return
    hint = schema.suggest(key, set(TOP_KEYS) | set(lf_keys))
    problems.append(
        f"--set {key}: unknown key" + (f"; {hint}" if hint else "; see `lf-wrap render train` for the keys")
    )


def _block(data: dict[str, Any], block: str) -> dict[str, Any]:
    """The train/export block --set writes into (an empty one if the file has none)."""
    if not isinstance(data.get(block), dict):
        data[block] = {}
    return data[block]


def _validate(
    data: dict[str, Any], source: str, lines: dict[str, int], problems: list[str], origins: dict[str, str] | None = None
) -> ProjectConfig:
    bad_fields: set[str] = set()
    try:
        config = ProjectConfig.model_validate(data)
    except ValidationError as err:
        for e in err.errors():
            loc = ".".join(str(x) for x in e["loc"])
            top = str(e["loc"][0]) if e["loc"] else ""
            bad_fields.add(top)
            if e["type"] == "extra_forbidden":
                hint = schema.suggest(top, TOP_KEYS)
                lf_hint = " (a LLaMA-Factory key? put it under `train:`)" if top in schema.arguments() else ""
                problems.append(
                    f"{_where_key(source, lines, loc)}: unknown key" + (f"; {hint}" if hint else "") + lf_hint
                )
            elif e["type"] == "missing" and top in REQUIRED:
                problems.append(
                    f"{source}: {top}: missing; {REQUIRED[top]} "
                    "(`lf-wrap init --model DIR --dataset FILE` writes a complete project file)"
                )
            else:
                problems.append(f"{_where_key(source, lines, loc, origins)}: {e['msg']}")
        # Check the rest too, so that every problem is reported in one go.
        rest = {k: v for k, v in data.items() if k not in bad_fields}
        config = ProjectConfig.model_validate({**_PLACEHOLDERS, **rest})
    problems.extend(_check_semantics(config, source, lines, origins))
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise LfWrapError(f"{len(problems)} problem{'s' * (len(problems) != 1)} in the settings:\n{listing}")
    return config


def _check_semantics(
    config: ProjectConfig, source: str, lines: dict[str, int], origins: dict[str, str] | None = None
) -> list[str]:
    problems: list[str] = []
    for what, value in (("run_name", config.run_name),):
        try:
            check_name(value, "run name")
        except LfWrapError as err:
            problems.append(f"{_where_key(source, lines, what, origins)}: {err.message}")
    if not config.datasets:
        problems.append(f"{_where_key(source, lines, 'datasets', origins)}: needs at least one dataset name")
    for name in config.datasets:
        try:
            check_name(name)
        except LfWrapError as err:
            problems.append(f"{_where_key(source, lines, 'datasets', origins)}: {err.message}")
    for problem in Launch(config.nproc_per_node, config.nnodes, config.node_rank, config.master_addr,
                          config.master_port).problems():  # fmt: skip
        # Blame what set the keys the problem names: --set (or a train flag) first, else the file's line.
        named = [k for k in ("node_rank", "nnodes", "nproc_per_node", "master_addr", "master_port")
                 if any(form in problem for form in (k, k.replace("_", "-"), k.replace("_", " ")))]  # fmt: skip
        blamed = [k for k in named if (origins or {}).get(k) == "--set"] or [k for k in named if k in lines]
        where = _where_key(source, lines, blamed[0], origins) if blamed else source
        problems.append(f"{where}: {problem}")
    if config.template not in schema.templates():
        hint = schema.suggest(config.template, schema.templates())
        where = _where_key(source, lines, "template", origins)
        problems.append(
            f"{where}: {config.template!r} is not a LLaMA-Factory chat template"
            + (f"; {hint}" if hint else "; run `lf-wrap render --list-templates`")
        )
    for block in ("train", "export"):
        values: dict[str, Any] = getattr(config, block)
        valid = schema.arguments(block)
        for key, value in list(values.items()):
            where = _where_key(source, lines, f"{block}.{key}", origins)
            if key in DERIVED_KEYS:
                problems.append(f"{where}: lf-wrap sets this key itself; {DERIVED_KEYS[key]}")
                continue
            if key not in valid:
                other = "export" if block == "train" else "train"
                hint = schema.suggest(key, set(valid))
                if key in schema.arguments(other):
                    hint = f"it is an {other} key: put it under `{other}:`"
                problems.append(f"{where}: not a LLaMA-Factory {block} argument" + (f"; {hint}" if hint else ""))
                continue
            try:
                values[key] = schema.coerce(key, value)
            except schema.CoerceError as err:
                problems.append(f"{where}: {err}")
    if config.from_run is not None:
        try:
            check_name(config.from_run, "run name")
        except LfWrapError as err:
            problems.append(f"{_where_key(source, lines, 'from_run', origins)}: {err.message}")
    from lf_wrap.project.stages import settings_problems

    problems.extend(settings_problems(config, lambda key: _where_key(source, lines, key, origins)))
    bits = config.train.get("quantization_bit", 4)
    if config.method == "qlora" and isinstance(bits, int) and bits not in (2, 3, 4, 5, 6, 8):
        problems.append(
            f"{_where_key(source, lines, 'train.quantization_bit', origins)}: QLoRA needs 2, 3, 4, 5, 6 or 8 bits"
        )
    rank = config.train.get("lora_rank")
    if config.method != "full" and isinstance(rank, int) and rank <= 0:
        problems.append(f"{_where_key(source, lines, 'train.lora_rank', origins)}: must be a positive integer")
    return problems


# -- rendering -------------------------------------------------------------------------
def train_template(config: ProjectConfig) -> str:
    return f"train/{config.stage}_{config.method}.yaml.j2"


def project_hardware(project: Project) -> Hardware:
    """The hardware check for this project: asks the project's training environment, if found."""
    from lf_wrap.engines.llamafactory import LlamaFactory
    from lf_wrap.project.hardware import detect

    try:
        python: Path | None = LlamaFactory.find(project.config.llamafactory_cli, project.root).python
    except LfWrapError:
        python = None
    return detect(python)


def _model_config(project: Project) -> dict[str, Any]:
    path = Path(project.model_ref()) / "config.json"
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


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
    if c.from_run:  # --from-run: start from another run's merged model or adapter (lf_wrap/project/stages.py)
        from lf_wrap.project.stages import resolve_from_run, start_values

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
    from lf_wrap.project.stages import recorded_start

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


def init_text() -> str:
    """The demo project file (what `lf-wrap init --demo` writes)."""
    return demo_project().read_text(encoding="utf-8")
