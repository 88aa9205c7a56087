"""Preference training (LLaMA-Factory's `stage: dpo` and `stage: kto`): the checks that belong to it.

    stage dpo   pairs: a prompt, a chosen and a rejected answer (a dataset registered with
                `"ranking": true`); `pref_loss` picks the objective: sigmoid (DPO), hinge, ipo,
                kto_pair, orpo (no reference model), simpo (no reference model, `simpo_gamma`)
    stage kto   single answers marked good or bad (a boolean `kto_tag` column)

Everything here runs before the engine starts. LLaMA-Factory itself only notices a dataset of
the wrong kind after the model has loaded ("The dataset is not applicable in the current training
stage"), and KTO rows without a boolean tag are silently dropped until none are left.

`--from-run NAME` (`from_run:` in lf-wrap.yaml) starts a run from another run's result: its
merged model when it has one (`lf-wrap export`), else its LoRA adapter, merged into the base
model in memory before a new adapter is trained (`create_new_adapter`), so that DPO's reference
model is the SFT model and not the base. What the run started from is recorded in its manifest,
and `lf-wrap export` merges onto the same start.

Progress: the DPO/KTO trainers log rewards/chosen, rewards/rejected, rewards/accuracies and
rewards/margins beside the loss, but LLaMA-Factory's trainer_log.jsonl keeps only the accuracy.
`LogMetrics` reads them from the engine's own log lines (transformers prints each log dict),
and `summary` takes the full-precision history from output/trainer_state.json for the manifest.
"""

from __future__ import annotations

import ast
import json
import re
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lf_wrap.util.errors import LfWrapError

if TYPE_CHECKING:
    from lf_wrap.project.config import Project, ProjectConfig

PREFERENCE_STAGES = ("dpo", "kto")
PREF_LOSSES = ("sigmoid", "hinge", "ipo", "kto_pair", "orpo", "simpo")
# The metrics DPO and KTO log (trainer.py: get_batch_loss_metrics / log), shown and recorded.
METRICS = ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins")
KTO_METRICS = ("kl",)

# LLaMA-Factory keys that only one stage (or one loss) reads: set elsewhere they do nothing.
_STAGE_KEYS: dict[str, tuple[str, ...]] = {
    "pref_loss": ("dpo",),
    "simpo_gamma": ("dpo",),
    "dpo_label_smoothing": ("dpo",),
    "pref_bco_weight": ("dpo",),
    "ld_alpha": ("dpo",),
    "pref_beta": ("dpo", "kto"),
    "pref_ftx": ("dpo", "kto"),
    "kto_chosen_weight": ("kto",),
    "kto_rejected_weight": ("kto",),
}


def settings_problems(config: ProjectConfig, where: Any) -> list[str]:
    """Preference keys that the project's stage (or loss) ignores. `where(key)` names a key's place."""
    problems: list[str] = []
    for key, stages in _STAGE_KEYS.items():
        if key in config.train and config.stage not in stages:
            want = " or ".join(f"`stage: {s}`" for s in stages)
            problems.append(
                f"{where(f'train.{key}')}: only {want} reads it, and this project trains `stage: {config.stage}`; "
                f"set {want} (`--set stage={stages[0]}`), or remove {key}"
            )
    loss = config.train.get("pref_loss", "sigmoid")
    if config.stage == "dpo" and "simpo_gamma" in config.train and loss != "simpo":
        problems.append(
            f"{where('train.simpo_gamma')}: only `pref_loss: simpo` reads it (this project uses {loss!r}); "
            "set pref_loss: simpo, or remove simpo_gamma"
        )
    if config.stage == "dpo" and config.train.get("dpo_label_smoothing") and loss != "sigmoid":
        problems.append(
            f"{where('train.dpo_label_smoothing')}: only the sigmoid loss takes label smoothing "
            f"(LLaMA-Factory refuses it with {loss!r}); remove it or set pref_loss: sigmoid"
        )
    return problems


# -- the data must fit the stage ---------------------------------------------------------
def dataset_kind(dataset_dir: Path, name: str) -> Literal["pairs", "kto", "sft"]:
    """What a registered dataset holds, as LLaMA-Factory will read it (its dataset_info.json entry)."""
    from lf_wrap.data.formats import spec_from_entry
    from lf_wrap.data.registry import INFO_NAME, lookup, read_info

    info = read_info(dataset_dir)
    spec = spec_from_entry(lookup(info, dataset_dir, name), where=f"{dataset_dir / INFO_NAME}: {name}")
    if spec.ranking:
        return "pairs"
    return "kto" if spec.col("kto_tag") else "sft"


def _file_has_pairs(dataset_dir: Path, name: str) -> bool:
    """Does the registered file itself hold chosen/rejected answers (registered without `ranking`)?"""
    from lf_wrap.data.formats import detect_format
    from lf_wrap.data.reader import DatasetFile, Row
    from lf_wrap.data.registry import entry_file, lookup, read_info

    try:
        path = entry_file(dataset_dir, name, lookup(read_info(dataset_dir), dataset_dir, name))
        for row in DatasetFile(path).rows():
            if isinstance(row, Row) and isinstance(row.value, dict):
                found = detect_format(row.value)
                return found is not None and found[0] == "preference"
    except (LfWrapError, OSError):
        return False
    return False


def check_stage_data(project: Project) -> None:
    """Every dataset of the kind the stage trains on, or one message naming each misfit and the fix."""
    from lf_wrap.data.registry import INFO_NAME

    c = project.config
    dataset_dir = project.path(c.dataset_dir)
    info = dataset_dir / INFO_NAME
    problems: list[str] = []
    for name in c.datasets:
        try:
            kind = dataset_kind(dataset_dir, name)
        except LfWrapError:
            continue  # not registered, or a broken entry: check_datasets reports it with every other problem
        if c.stage == "dpo" and kind != "pairs":
            if _file_has_pairs(dataset_dir, name):
                fix = (
                    f'its file holds chosen/rejected answers but the entry in {info} lacks "ranking": true; '
                    f"register it again: lf-wrap data register FILE --name {name} --format preference --force"
                )
            elif kind == "kto":
                fix = "it is KTO data (single answers with a kto_tag): train it with `stage: kto`"
            else:
                fix = (
                    "DPO learns from pairs: register a file of prompt + chosen + rejected rows "
                    "(lf-wrap data register FILE --name NAME) and list it in `datasets:`, "
                    "or train this one with `stage: sft`"
                )
            problems.append(f"dataset {name!r} is not preference pairs, and `stage: dpo` needs them: {fix}")
        elif c.stage == "kto" and kind != "kto":
            if kind == "pairs":
                fix = "it holds chosen/rejected pairs: train it with `stage: dpo` (or `pref_loss: kto_pair`)"
            else:
                fix = (
                    "KTO learns from answers marked good or bad: give every row a boolean "
                    '"kto_tag" (true: a good answer, false: a bad one) and register it again '
                    f"(lf-wrap data register FILE --name {name} --force)"
                )
            problems.append(f"dataset {name!r} has no kto_tag column, and `stage: kto` needs one: {fix}")
        elif c.stage not in PREFERENCE_STAGES and kind != "sft":
            want = "dpo" if kind == "pairs" else "kto"
            what = "preference pairs (ranking)" if kind == "pairs" else "KTO data (kto_tag)"
            problems.append(
                f"dataset {name!r} is {what}, which `stage: {c.stage}` cannot train on: "
                f"set `stage: {want}` (--set stage={want}), or list a dataset of prompts and answers"
            )
    if problems:
        raise LfWrapError(
            f"the datasets do not fit `stage: {c.stage}`:\n" + "\n".join(f"  - {p}" for p in problems),
            hint="LLaMA-Factory would fail only after loading the model "
            '("The dataset is not applicable in the current training stage")',
            location=project.origin("datasets", "datasets"),
        )


# -- starting from another run -----------------------------------------------------------
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
    from lf_wrap.project.runs import RunFolder

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
    try:
        base = json.loads(adapter_config.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError):
        return
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
    from lf_wrap.project.runs import RunFolder

    found = (RunFolder(run_dir).manifest().get("train") or {}).get("from_run")
    if not isinstance(found, dict):
        return None
    try:
        return StartPoint(**found)
    except TypeError:
        return None


# -- progress and the manifest -------------------------------------------------------------
_LOG_DICT = re.compile(r"\{'(?:loss|rewards/[a-z]+)': [^{}]*\}")


def _numbers(logged: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in logged.items():
        try:
            out[str(key)] = float(value)
        except (TypeError, ValueError):
            continue
    return out


class LogMetrics:
    """Pairs the rewards printed in the engine's log with the progress entries of trainer_log.jsonl.

    Each training log step prints one dict (transformers' ProgressCallback: `{'loss': '0.6931',
    'rewards/chosen': '0.01', ...}`, four significant digits) and writes one trainer_log.jsonl
    line; the two are matched in order. An entry whose dict has not reached the log yet waits for
    the next poll (or the end of the run)."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.offset = log.stat().st_size if log.exists() else 0
        self.found: deque[dict[str, float]] = deque()
        self.waiting: list[dict[str, Any]] = []

    def _read(self) -> None:
        if not self.log.exists():
            return
        with self.log.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n")
        if end == -1:
            return
        self.offset += end + 1
        for match in _LOG_DICT.finditer(data[: end + 1].decode("utf-8", errors="replace")):
            try:
                logged = ast.literal_eval(match.group(0))
            except (ValueError, SyntaxError):
                continue
            if isinstance(logged, dict) and "loss" in logged and any(k in logged for k in METRICS):
                self.found.append(_numbers(logged))

    def attach(self, entries: list[dict[str, Any]], final: bool = False) -> list[dict[str, Any]]:
        """The entries ready to show, each training step with its rewards added."""
        self._read()
        self.waiting.extend(entries)
        ready: list[dict[str, Any]] = []
        while self.waiting:
            entry = self.waiting[0]
            if entry.get("loss") is not None:
                if not self.found and not final:
                    break
                if self.found:
                    logged = self.found.popleft()
                    entry = {**entry, **{k: logged[k] for k in (*METRICS, *KTO_METRICS) if k in logged}}
            ready.append(entry)
            self.waiting.pop(0)
        return ready


def summary(output_dir: Path, stage: str) -> dict[str, Any] | None:
    """The rewards over training, from output/trainer_state.json (full precision), for the manifest."""
    path = output_dir / "trainer_state.json"
    try:
        history = json.loads(path.read_text(encoding="utf-8")).get("log_history") or []
    except (OSError, ValueError):
        return None
    keys = (*METRICS, *KTO_METRICS, "loss")
    steps = [
        {"step": h.get("step"), "epoch": h.get("epoch"), **{k: h[k] for k in keys if k in h}}
        for h in history
        if isinstance(h, dict) and "loss" in h and any(k in h for k in METRICS)
    ]
    if not steps:
        return None
    return {"stage": stage, "metrics": list(METRICS), "first": steps[0], "last": steps[-1], "history": steps}
