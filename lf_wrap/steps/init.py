"""`lf-wrap init`: a project file for the user's own model and data, each value explained.

`plan` checks everything and decides every value without writing anything: the model
(a folder, or a hub id found offline in the local cache), the chat template (picked from
the model folder, lf_wrap/model/template_choice.py), the dataset (a file is validated and
checked against the dataset dir; a name must be registered there), cutoff_len (from the
data's token lengths with the model's own tokenizer), and LLaMA-Factory's example
hyperparameters (lf_wrap/project/defaults.py).  `write` then registers the dataset file, if one was
given, and writes the project file.  Bad input writes nothing.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lf_wrap.data.registry import (
    DatasetInvalid,
    check_name,
    check_register,
    entry_file,
    lookup,
    read_info,
    register,
    validate_entry,
)
from lf_wrap.data.stats import load_tokenizer, suggest_cutoff_len, token_lengths
from lf_wrap.data.validate import Report, validate_file
from lf_wrap.engines import schema
from lf_wrap.model.folder import check_model_dir, count_parameters, human_count, max_positions
from lf_wrap.model.hub import is_hub_id
from lf_wrap.model.template_choice import detect
from lf_wrap.project import small_data
from lf_wrap.project.config import PROJECT_FILE, init_text
from lf_wrap.project.defaults import LF_EXAMPLE, Default, train_defaults
from lf_wrap.util.errors import ExternalError, LfWrapError
from lf_wrap.util.files import atomic_write
from lf_wrap.util.process import shell_line
from lf_wrap.util.render import comment_text, to_yaml

# The hyperparameters written out for the user to see and edit; every other value comes
# from lf_wrap/project/defaults.py at train time (`lf-wrap render train` shows them all).
# written only where the recipe sets them (small_data.py: models up to 1B parameters)
WRITTEN_IF_SET = ("disable_gradient_checkpointing",)
WRITTEN_KEYS = (
    "lora_rank",
    "learning_rate",
    "num_train_epochs",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "lr_scheduler_type",
    "warmup_ratio",
    "logging_steps",
)
COMMENT_AT = 34


@dataclass
class InitPlan:
    path: Path
    text: str
    to_register: tuple[Path, str, Path] | None = None  # (file, name, dataset_dir), registered by `write`
    registered: str = ""  # what `write` did, for the message
    notes: list[str] = field(default_factory=list)
    replay: tuple[list[dict[str, str]], str, Path] | None = None  # (rows, name, dataset_dir), written by `write`

    @property
    def config_arg(self) -> str:
        return "" if self.path == Path(PROJECT_FILE) else f" --config {self.path}"


def _refuse_existing(path: Path, force: bool) -> None:
    if path.is_dir():
        raise LfWrapError(f"{path}: is a folder", hint="give the path of the project file to write, e.g. lf-wrap.yaml")
    if path.exists() and not force:
        raise LfWrapError(f"{path}: exists", hint="edit it, or pass --force to replace it")


def write_demo(path: Path, force: bool) -> None:
    _refuse_existing(path, force)
    atomic_write(path, init_text())


def _relative(target: Path, given: str, base: Path) -> str:
    """`target` as the project file should name it: relative to its folder unless given absolute."""
    if Path(given).expanduser().is_absolute():
        return str(target.resolve())
    try:
        return os.path.relpath(target.resolve(), base.resolve())
    except ValueError:  # another drive
        return str(target.resolve())


def resolve_model(ref: str) -> tuple[Path, dict[str, Any], str]:
    """(model folder, its config.json, how it was found) for a folder or a cached hub id."""
    local = Path(ref).expanduser()
    if not local.exists() and is_hub_id(ref):
        from lf_wrap.model.hub import cached, hf_cache_dir

        try:
            path = cached(ref)
        except LfWrapError:  # neither a folder nor a hub id in the cache: say both
            raise LfWrapError(
                f"model {ref!r}: no such folder ({local.absolute()}), and not in the local Hugging Face cache"
                f" ({hf_cache_dir()})",
                hint=f"a hub id: download it first with `lf-wrap model pull {ref}`; a folder: check the path "
                "(for the demo model: lf-wrap model tiny models/tiny-qwen2)",
            ) from None
        return path, check_model_dir(path, "model"), f"hub id {ref}, from the local cache"
    config = check_model_dir(local, "model")
    return local.resolve(), config, ""


def dataset_name(file: Path) -> str:
    """A registrable name from a file name: my data (v2).json -> my_data_v2."""
    name = re.sub(r"[^A-Za-z0-9_.\-]+", "_", file.stem).strip("_.-")[:64]
    return name or "dataset"


@dataclass
class _Dataset:
    name: str
    file: Path
    report: Report
    comment: str
    to_register: tuple[Path, str, Path] | None = None


def resolve_dataset(ref: str, dataset_dir: Path) -> _Dataset:
    file = Path(ref).expanduser()
    if file.is_file():
        report = validate_file(file, "auto")
        if not report.ok:
            raise DatasetInvalid(report)
        name = dataset_name(file)
        check_register(file, name, dataset_dir, report)
        comment = f"{file} ({report.format}, {report.rows} rows), registered in {dataset_dir}/dataset_info.json"
        return _Dataset(name, file, report, comment, (file, name, dataset_dir))
    if file.exists():
        raise LfWrapError(
            f"dataset {ref}: not a file", hint="pass a dataset file (.json or .jsonl) or a registered name"
        )
    if "/" in ref or os.sep in ref or file.suffix.lower() in (".json", ".jsonl"):
        raise LfWrapError(
            f"dataset file {ref}: no such file",
            hint=f"pass an existing dataset file, or the name of a dataset registered in {dataset_dir}",
        )
    check_name(ref)
    info = read_info(dataset_dir)
    entry = lookup(info, dataset_dir, ref)
    path = entry_file(dataset_dir, ref, entry)
    report = validate_entry(dataset_dir, ref)
    if not report.ok:
        raise DatasetInvalid(report)
    comment = f"registered in {dataset_dir}/dataset_info.json ({report.format}, {report.rows} rows)"
    return _Dataset(ref, path, report, comment)


def choose_cutoff_len(model_dir: Path, config: dict[str, Any], data: _Dataset) -> tuple[int, str, str | None]:
    """(cutoff_len, why, a note for the user when the data could not be measured)."""
    default = train_defaults("lora")["cutoff_len"]
    try:
        tokenizer = load_tokenizer(model_dir)
        lengths = token_lengths(data.file, data.report, tokenizer)
    except ImportError:
        why = "transformers is not installed in lf-wrap's environment, so token lengths were not counted"
        note = f"note: {why} (pip install 'lf-wrap[model]'); cutoff_len is {LF_EXAMPLE.lower()} {default.value}"
        return default.value, f"{default.source}: {why}", note
    except LfWrapError as err:
        why = f"token lengths not counted ({err.message})"
        return default.value, f"{default.source}: {why}", f"note: {why}; cutoff_len is {default.value}"
    if not lengths:
        return default.value, f"{default.source}: the dataset has no rows", None
    value, why = suggest_cutoff_len(lengths, max_positions(config))
    return value, why, None


def plan(
    path: Path,
    model_ref: str,
    dataset_ref: str,
    dataset_dir: Path,
    template: str | None,
    force: bool,
    replay: bool = True,
) -> InitPlan:
    _refuse_existing(path, force)
    model_dir, config, found = resolve_model(model_ref)
    if template is not None:
        if template not in schema.templates():
            hint = schema.suggest(template, schema.templates())
            raise LfWrapError(
                f"--template {template}: not a LLaMA-Factory chat template",
                hint=hint or "`lf-wrap render --list-templates` lists them",
            )
        template_why = "given with --template; `lf-wrap train` checks it against the model's chat template"
    data = resolve_dataset(dataset_ref, dataset_dir)
    proven_settings: dict[str, Any] = {}
    serve_training = False
    notes: list[str] = []
    if template is None:
        detection = detect(model_dir)
        template = detection.template
        runner = f"; runner-up: {detection.runner_up}" if detection.runner_up else ""
        template_why = f"picked from the model folder: {detection.reason}{runner}"
        proven = _prove(model_dir, detection, data, path.parent, notes)
        if proven is not None:
            best = proven.best
            template, proven_settings = best.template, dict(best.settings)
            serve_training = best.rank == 3
            template_why = f"picked from the model folder: {detection.reason}; {proven.reason()}"
    cutoff, cutoff_why, note = choose_cutoff_len(model_dir, config, data)
    params = count_parameters(model_dir)

    base = path.parent
    model_value = str(model_dir) if found else _relative(model_dir, model_ref, base)
    kind = str(config.get("model_type", "?"))
    size = f"{human_count(params)} parameters" if params else "parameter count unknown (no *.safetensors)"
    defaults: dict[str, Default] = train_defaults("lora")
    replay_rows: list[dict[str, str]] = []
    replay_name = data.name + small_data.REPLAY_SUFFIX
    small = small_data.applies(data.report.rows)
    if small and replay and (params or 0) >= small_data.REPLAY_MIN_PARAMS:
        replay_rows = make_replay(model_dir, proven_settings.get("default_system"), path.parent, notes)
    rows = data.report.rows + len(replay_rows)
    if small:
        defaults = {**defaults, **small_data.values(rows, params)}
    batch = defaults["per_device_train_batch_size"].value * defaults["gradient_accumulation_steps"].value
    steps = math.ceil(rows / batch)
    epochs = defaults["num_train_epochs"].value
    run_name = data.name.replace("_", "-")
    datasets_value = [data.name, replay_name] if replay_rows else [data.name]
    datasets_why = data.comment + (
        f"; {replay_name}: {len(replay_rows)} replay rows, the base model's own answers to general questions "
        f"(lf_wrap/project/general_prompts_en.json), so the tune keeps what the model knew "
        f"({small_data.MEASURED}; --no-replay leaves them out)"
        if replay_rows
        else ""
    )

    lines = [
        "# lf-wrap project file for your model and data, written by `lf-wrap init`.",
        "# Read by train, export, serve and check; relative paths are relative to this file's folder.",
        "# `lf-wrap render train` prints every value that will run and where it came from, including",
        "# those not written here (lf_wrap/project/defaults.py); `lf-wrap train --dry-run` runs every check.",
        "# Override any value for one command with --set KEY=VALUE.",
        _line(
            "run_name", run_name, "from the dataset name; runs/<run_name>/ holds config, logs, adapter, merged model"
        ),
        _line("model", model_value, f"{found + ': ' if found else ''}{kind}, {size}"),
        _line("template", template, template_why),
        *(
            [
                _line(
                    "chat_template",
                    "training",
                    "the model's own template cannot agree with any setting; "
                    "export and serve use one that renders what LLaMA-Factory trains on",
                )
            ]
            if serve_training
            else []
        ),
        _line("method", "lora", "a LoRA adapter, as LLaMA-Factory's SFT examples train (lora | qlora | full)"),
        _line("stage", "sft", "supervised fine-tuning"),
        _line("datasets", datasets_value, datasets_why),
        _line("dataset_dir", _relative(dataset_dir, str(dataset_dir), base), "where dataset_info.json is"),
        _line("runs_dir", "runs", "one folder per run under it"),
        "train:                            # any LLaMA-Factory training argument (see `lf-wrap render train`)",
        "  # bf16, fp16 and use_cpu are decided when you train, from the GPUs found then. Hyperparameters:",
        *(
            [
                f"  # lf-wrap's small-data recipe ({rows} rows <= {small_data.SMALL_ROWS}; small_data.py in",
                "  # lf_wrap/project/ says why); the rest LLaMA-Factory's example values.",
            ]
            if small
            else ["  # LLaMA-Factory's example values (its examples use them for 4B-8B models and thousands of rows)."]
        ),
        _line("cutoff_len", cutoff, cutoff_why, indent=2),
        *(
            _line(
                key,
                value,
                f"the template check proves the {template!r} template then agrees with the model's",
                indent=2,
            )
            for key, value in proven_settings.items()
        ),
    ]
    for key in WRITTEN_KEYS:
        default = defaults[key]
        why = default.source
        if key == "num_train_epochs" and not small:
            why += f"; {rows} rows / batch {batch} = {steps} steps per epoch, {steps * epochs:g} in all"
        lines.append(_line(key, default.value, why, indent=2))
    for key in WRITTEN_IF_SET:
        if key in defaults:
            lines.append(_line(key, defaults[key].value, defaults[key].source, indent=2))
    lines.append(validation_line(data.report.rows))
    lines.append(_line("export", {}, "any LLaMA-Factory export argument, e.g. export_size: 2"))
    registered = f"registered {data.name!r} in {dataset_dir}/dataset_info.json" if data.to_register else ""
    if replay_rows:
        registered += ("; " if registered else "") + f"registered {replay_name!r} ({len(replay_rows)} replay rows)"
    return InitPlan(path, "\n".join(lines) + "\n", data.to_register, registered, [*notes, *([note] if note else [])],
                    (replay_rows, replay_name, dataset_dir) if replay_rows else None)  # fmt: skip


def make_replay(model_dir: Path, system: str | None, root: Path, notes: list[str]) -> list[dict[str, str]]:
    """The base model's own answers to lf-wrap's general prompts (in the training environment);
    [] with a note where that cannot run (no LLaMA-Factory environment, no chat template)."""
    import json
    import subprocess
    import tempfile

    from lf_wrap.engines.llamafactory import LlamaFactory
    from lf_wrap.model.folder import has_chat_template
    from lf_wrap.util import console

    if not has_chat_template(model_dir):
        notes.append("note: no replay rows: the model has no chat template (a base model answers no questions)")
        return []
    try:
        engine = LlamaFactory.find(project_root=root)
    except LfWrapError:
        notes.append("note: no replay rows: the training environment is missing (make setup-train)")
        return []
    program = Path(__file__).resolve().parents[1] / "engines" / "inside" / "answer_prompts.py"
    with tempfile.TemporaryDirectory(prefix="lf-wrap-replay-") as tmp:
        out = Path(tmp) / "replay.json"
        cmd = [
            str(engine.python),
            "-I",
            str(program),
            str(model_dir),
            str(small_data.GENERAL_PROMPTS),
            str(out),
            "--max-new-tokens",
            str(small_data.REPLAY_MAX_NEW_TOKENS),
            *(["--system", system] if system else []),
        ]
        console.note(f"init: replay rows: the base model answers {small_data.GENERAL_PROMPTS.name} (greedy) ...")
        console.note(f"$ {shell_line(cmd)}")
        done = subprocess.run(cmd, capture_output=True, text=True, env=engine.env(offline=True), check=False)
        if done.returncode != 0 or not out.is_file():
            raise ExternalError(
                f"the base model could not answer the replay prompts (exit {done.returncode}):\n{done.stderr[-2000:]}",
                hint="the command above reproduces it; --no-replay skips it",
            )
        rows: list[dict[str, str]] = json.loads(out.read_text(encoding="utf-8"))
    console.note(f"init: {len(rows)} replay rows ({done.stdout.strip().splitlines()[-1] if done.stdout else ''})")
    return rows


def _prove(model_dir: Path, guess: Any, data: _Dataset, root: Path, notes: list[str]) -> Any:
    """The template check on the folder's guess and runner-ups; None (with a note) without LLaMA-Factory."""
    from lf_wrap.data.shape import conversation_shape
    from lf_wrap.engines.llamafactory import LlamaFactory
    from lf_wrap.model.template_choice import prove

    try:
        engine = LlamaFactory.find(project_root=root)
    except LfWrapError:
        notes.append("note: LLaMA-Factory not found (make setup-train): the template is the folder's guess, "
                     "unchecked; `lf-wrap train` checks it")  # fmt: skip
        return None
    return prove(model_dir, guess, engine, conversation_shape(data.file, data.report.spec).kinds())


def validation_line(rows: int) -> str:
    """`val_size` for a dataset of `rows` rows: a held-out split from VAL_MIN_ROWS rows (lf_wrap/project/defaults.py
    says why), as a comment below that."""
    from lf_wrap.project.defaults import VAL_FRACTION, VAL_MAX_ROWS, VAL_MIN_ROWS

    if rows < VAL_MIN_ROWS:
        return (
            f"  # val_size: off: {rows} rows < {VAL_MIN_ROWS}, too few to spare a useful validation split "
            "(lf_wrap/project/defaults.py says why); set it to watch an eval loss anyway"
        )
    value: float | int = VAL_FRACTION if rows * VAL_FRACTION <= VAL_MAX_ROWS else VAL_MAX_ROWS
    held = math.ceil(rows * VAL_FRACTION) if isinstance(value, float) else value
    why = (
        f"{rows} rows >= {VAL_MIN_ROWS}: hold out {held} rows for an eval loss beside the training loss; "
        "`lf-wrap eval` compares base and tuned answers on them"
    )
    return _line("val_size", value, why, indent=2)


def _line(key: str, value: Any, why: str, indent: int = 0) -> str:
    text = f"{' ' * indent}{key}: {to_yaml(value)}"
    return f"{text:<{COMMENT_AT}}# {comment_text(why)}" if len(text) < COMMENT_AT else f"{text}  # {comment_text(why)}"


def write(p: InitPlan) -> None:
    """Register the dataset file (if one was given) and the replay rows, then write the project file."""
    if p.to_register is not None:
        file, name, dataset_dir = p.to_register
        register(file, name, dataset_dir)
    if p.replay is not None:
        import json

        rows, name, dataset_dir = p.replay
        file = dataset_dir / f"{name}.json"
        atomic_write(file, json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
        register(file, name, dataset_dir, force=True)
    atomic_write(p.path, p.text)
