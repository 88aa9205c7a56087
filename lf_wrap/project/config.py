"""The project file (`lf-wrap.yaml`) and `--set` overrides, validated before anything runs.

Top-level keys are lf-wrap's own choices (model, datasets, template, method, ...).  The
`train:` and `export:` blocks hold any LLaMA-Factory argument; their names and types are
checked against LLaMA-Factory's own parser (see engines/schema.py).  Every problem is
collected and reported at once, each naming the file, line and key.

Without a project file lf-wrap uses the built-in demo's (examples/magic_conch.yaml), whose
relative paths are relative to the current directory. What the settings make for LLaMA-Factory
(every value, with where it came from) is project/recipe.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lf_wrap.data.registry import check_name
from lf_wrap.engines import schema
from lf_wrap.model.folder import check_model_dir
from lf_wrap.model.hub import is_hub_id
from lf_wrap.project.launch import Launch
from lf_wrap.project.stages import settings_problems
from lf_wrap.util import console
from lf_wrap.util.errors import LfWrapError
from lf_wrap.util.files import cannot
from lf_wrap.util.paths import demo_project

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


class EvalSettings(BaseModel):
    """The `eval:` block: what `lf-wrap eval` checks every time (steps/evaluate_gate.py)."""

    model_config = ConfigDict(extra="forbid")

    fail_on: list[str] = Field(default_factory=list)  # rules like "worse>0", "canary<0": exit 1 when one fails


class ProjectConfig(BaseModel):
    """lf-wrap.yaml, as a validated model (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid")

    run_name: str = ""  # default: the first dataset's name, `_` as `-`
    model: str
    template: str
    method: Method = "lora"
    stage: Literal["sft", "dpo", "kto"] = "sft"  # dpo/kto: preference training (project/stages.py)
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
    eval: EvalSettings = Field(default_factory=EvalSettings)  # `lf-wrap eval`'s regression gate

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

    def model_dir(self) -> Path:
        """The base model's folder, checked (config, weights, tokenizer); a hub id that is not
        downloaded yet is one message saying how to fetch it."""
        ref = self.config.model
        local = self.path(ref)
        if local.exists() or not is_hub_id(ref):
            check_model_dir(local, "model")
            return local.resolve()
        raise LfWrapError(
            f"model {ref!r}: no such folder ({local})",
            hint=f"if it is a hub id, download it first: lf-wrap model pull {ref}   (then set `model:` to the path it "
            "prints); for the demo model: lf-wrap model tiny models/tiny-qwen2",
        )


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
            console.note(DEMO_NOTE)
    if not config_file.is_file():
        raise LfWrapError(f"{config_file}: no such file", hint="create one with `lf-wrap init`")
    try:
        text = config_file.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise cannot(err, config_file, "read") from None
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
    problems.extend(settings_problems(config.stage, config.train, lambda key: _where_key(source, lines, key, origins)))
    bits = config.train.get("quantization_bit", 4)
    if config.method == "qlora" and isinstance(bits, int) and bits not in (2, 3, 4, 5, 6, 8):
        problems.append(
            f"{_where_key(source, lines, 'train.quantization_bit', origins)}: QLoRA needs 2, 3, 4, 5, 6 or 8 bits"
        )
    rank = config.train.get("lora_rank")
    if config.method != "full" and isinstance(rank, int) and rank <= 0:
        problems.append(f"{_where_key(source, lines, 'train.lora_rank', origins)}: must be a positive integer")
    return problems


def init_text() -> str:
    """The demo project file (what `lf-wrap init --demo` writes)."""
    return demo_project().read_text(encoding="utf-8")
