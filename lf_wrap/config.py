"""The project file (`lf-wrap.yaml`) and `--set` overrides, validated before anything runs.

Top-level keys are lf-wrap's own choices (model, datasets, template, method, ...).  The
`train:` and `export:` blocks hold any LLaMA-Factory argument; their names and types are
checked against LLaMA-Factory's own parser (see engines/schema.py).  Every problem is
collected and reported at once, each naming the file, line and key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lf_wrap.data.registry import check_name
from lf_wrap.distributed import Launch
from lf_wrap.engines import schema
from lf_wrap.errors import LfWrapError
from lf_wrap.render import Rendered, render_yaml

PROJECT_FILE = "lf-wrap.yaml"
Method = Literal["lora", "qlora", "full"]

# LLaMA-Factory keys that lf-wrap derives from its own settings: say where to set them.
DERIVED_KEYS = {
    "model_name_or_path": "set `model:` at the top level",
    "dataset": "set `datasets:` at the top level",
    "dataset_dir": "set `dataset_dir:` at the top level",
    "template": "set `template:` at the top level",
    "finetuning_type": "set `method:` (lora, qlora or full) at the top level",
    "stage": "set `stage:` at the top level",
    "output_dir": "lf-wrap puts the output in <runs_dir>/<run_name>/output; set `run_name:` or `runs_dir:`",
    "adapter_name_or_path": "lf-wrap takes the adapter from the run; set `run_name:`",
    "export_dir": "lf-wrap exports to <runs_dir>/<run_name>/merged; set `run_name:` or `runs_dir:`",
    "deepspeed": "set `deepspeed:` at the top level (z0, z2, z3, z3-offload or a file), or --deepspeed",
}

DEMO_TRAIN: dict[str, Any] = {
    # Measured on 2 CPU cores: the tiny model memorises the 56-row demo set (loss ~0.15,
    # 48/56 answers reproduced exactly after merging) in ~40 s. Rank 64 is near full rank
    # for hidden 128; rank 16 or a higher learning rate plateau at a loss of ~6.
    "lora_rank": 64,
    "lora_alpha": 64,
    "learning_rate": 3.0e-3,
    "num_train_epochs": 100.0,
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 1,
    "lr_scheduler_type": "constant",
    "warmup_ratio": 0.0,
    "cutoff_len": 256,
    "logging_steps": 10,
    "save_steps": 200,
    "bf16": False,
    "use_cpu": True,
}


class ProjectConfig(BaseModel):
    """lf-wrap.yaml, as a validated model (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid")

    run_name: str = "magic-conch"
    model: str = "models/tiny-qwen2"
    template: str = "qwen"
    method: Method = "lora"
    stage: Literal["sft"] = "sft"
    datasets: list[str] = Field(default_factory=lambda: ["magic_conch"])
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
    train: dict[str, Any] = Field(default_factory=lambda: dict(DEMO_TRAIN))
    export: dict[str, Any] = Field(default_factory=dict)


TOP_KEYS = list(ProjectConfig.model_fields)


@dataclass
class Project:
    config: ProjectConfig
    root: Path  # folder relative paths are resolved against
    source: str  # where the settings came from, for messages

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
        """A local model folder as an absolute path; anything else (a hub id) as given."""
        local = self.path(self.config.model)
        if local.exists() or self.config.model.startswith((".", "/", "~")):
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


def _where(source: str, lines: dict[str, int], key: str) -> str:
    line = lines.get(key)
    return f"{source}:{line}: {key}" if line else f"{source}: {key}"


def load_project(config_file: Path | None, sets: tuple[str, ...] = ()) -> Project:
    """Read the project file (if any), apply --set overrides, validate all of it."""
    data: dict[str, Any] = {}
    lines: dict[str, int] = {}
    if config_file is None and Path(PROJECT_FILE).exists():
        config_file = Path(PROJECT_FILE)
    if config_file is not None:
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
        data = loaded
        lines = _key_lines(text)
        root = config_file.resolve().parent
        source = str(config_file)
    else:
        root = Path.cwd()
        source = "defaults"
    problems: list[str] = []
    for item in sets:
        _apply_set(data, item, problems)
    config = _validate(data, source, lines, problems)
    return Project(config=config, root=root, source=source)


def _apply_set(data: dict[str, Any], item: str, problems: list[str]) -> None:
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
        return
    if key in TOP_KEYS:
        if key in ("train", "export"):
            problems.append(f"--set {key}: set one key at a time, e.g. --set {key}.learning_rate=1e-4")
        elif key == "datasets":
            data[key] = [d.strip() for d in raw.split(",") if d.strip()]
        else:
            data[key] = raw
        return
    lf_keys = schema.arguments()
    if key in lf_keys:
        block = "train" if "train" in lf_keys[key]["used_by"] else "export"
        _block(data, block)[key] = schema.parse_cli_value(key, raw)
        return
    hint = schema.suggest(key, set(TOP_KEYS) | set(lf_keys))
    problems.append(
        f"--set {key}: unknown key" + (f"; {hint}" if hint else "; see `lf-wrap render train` for the keys")
    )


def _block(data: dict[str, Any], block: str) -> dict[str, Any]:
    """The train/export block --set writes into (starting from the defaults if absent)."""
    if not isinstance(data.get(block), dict):
        data[block] = dict(DEMO_TRAIN) if block == "train" else {}
    return data[block]


def _validate(data: dict[str, Any], source: str, lines: dict[str, int], problems: list[str]) -> ProjectConfig:
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
                problems.append(f"{_where(source, lines, loc)}: unknown key" + (f"; {hint}" if hint else "") + lf_hint)
            else:
                problems.append(f"{_where(source, lines, loc)}: {e['msg']}")
        # Check the rest too, so that every problem is reported in one go.
        config = ProjectConfig.model_validate({k: v for k, v in data.items() if k not in bad_fields})
    problems.extend(_check_semantics(config, source, lines))
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise LfWrapError(f"{len(problems)} problem{'s' * (len(problems) != 1)} in the settings:\n{listing}")
    return config


def _check_semantics(config: ProjectConfig, source: str, lines: dict[str, int]) -> list[str]:
    problems: list[str] = []
    for what, value in (("run_name", config.run_name),):
        try:
            check_name(value, "run name")
        except LfWrapError as err:
            problems.append(f"{_where(source, lines, what)}: {err.message}")
    if not config.datasets:
        problems.append(f"{_where(source, lines, 'datasets')}: needs at least one dataset name")
    for name in config.datasets:
        try:
            check_name(name)
        except LfWrapError as err:
            problems.append(f"{_where(source, lines, 'datasets')}: {err.message}")
    for problem in Launch(config.nproc_per_node, config.nnodes, config.node_rank, config.master_addr,
                          config.master_port).problems():  # fmt: skip
        problems.append(problem if source == "defaults" else f"{source}: {problem}")
    if config.template not in schema.templates():
        hint = schema.suggest(config.template, schema.templates())
        problems.append(
            f"{_where(source, lines, 'template')}: {config.template!r} is not a LLaMA-Factory chat template"
            + (f"; {hint}" if hint else "; run `lf-wrap render --list-templates`")
        )
    for block in ("train", "export"):
        values: dict[str, Any] = getattr(config, block)
        valid = schema.arguments(block)
        for key, value in list(values.items()):
            where = _where(source, lines, f"{block}.{key}")
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
    bits = config.train.get("quantization_bit", 4)
    if config.method == "qlora" and isinstance(bits, int) and bits not in (2, 3, 4, 5, 6, 8):
        problems.append(f"{_where(source, lines, 'train.quantization_bit')}: QLoRA needs 2, 3, 4, 5, 6 or 8 bits")
    rank = config.train.get("lora_rank")
    if config.method != "full" and isinstance(rank, int) and rank <= 0:
        problems.append(f"{_where(source, lines, 'train.lora_rank')}: must be a positive integer")
    return problems


# -- rendering -------------------------------------------------------------------------
def train_template(config: ProjectConfig) -> str:
    return f"train/{config.stage}_{config.method}.yaml.j2"


def render_train(project: Project, command: str | None = None) -> Rendered:
    c = project.config
    run_dir = project.run_dir.resolve()
    overrides: dict[str, Any] = {
        "model_name_or_path": project.model_ref(),
        "dataset": ",".join(c.datasets),
        "dataset_dir": str(project.path(c.dataset_dir).resolve()),
        "template": c.template,
        "output_dir": str(run_dir / "output"),
        **c.train,
    }
    cmd = command or f"llamafactory-cli train {run_dir / 'train.yaml'}"
    return render_yaml(train_template(c), overrides, {}, cmd)


def render_export(project: Project, command: str | None = None) -> Rendered:
    c = project.config
    if c.method == "full":
        raise LfWrapError(
            "method `full` trains the whole model: there is no adapter to merge",
            hint="the trained model is already in <runs_dir>/<run_name>/output",
        )
    run_dir = project.run_dir.resolve()
    overrides: dict[str, Any] = {
        "model_name_or_path": project.model_ref(),
        "adapter_name_or_path": str(run_dir / "output"),
        "template": c.template,
        "export_dir": str(run_dir / "merged"),
        **c.export,
    }
    cmd = command or f"llamafactory-cli export {run_dir / 'export.yaml'}"
    return render_yaml("export/merge_lora.yaml.j2", overrides, {}, cmd)


def init_text() -> str:
    """The `lf-wrap init` project file: the demo's settings, with comments."""
    train = "\n".join(f"  {k}: {_yaml_value(v)}" for k, v in DEMO_TRAIN.items())
    return f"""\
# lf-wrap project file. Created by `lf-wrap init`; read by train, export, render.
# Any value can be overridden for one command with --set KEY=VALUE.
run_name: magic-conch          # runs/<run_name>/ holds config, logs, adapter, merged model
model: models/tiny-qwen2       # a local model folder, or a hub id that `lf-wrap model pull` fetches
template: qwen                 # LLaMA-Factory chat template (must match the model's chat format)
method: lora                   # lora | qlora | full
stage: sft
datasets: [magic_conch]        # names registered in <dataset_dir>/dataset_info.json
dataset_dir: data
runs_dir: runs
train:                         # any LLaMA-Factory training argument
{train}
export: {{}}                     # any LLaMA-Factory export argument, e.g. export_size: 2
"""


def _yaml_value(v: Any) -> str:
    from lf_wrap.render import to_yaml

    return to_yaml(v)
