"""Preference training (LLaMA-Factory's `stage: dpo` and `stage: kto`): what each stage reads.

    stage dpo   pairs: a prompt, a chosen and a rejected answer (a dataset registered with
                `"ranking": true`); `pref_loss` picks the objective: sigmoid (DPO), hinge, ipo,
                kto_pair, orpo (no reference model), simpo (no reference model, `simpo_gamma`)
    stage kto   single answers marked good or bad (a boolean `kto_tag` column)

Everything here runs before the engine starts. LLaMA-Factory itself only notices a dataset of
the wrong kind after the model has loaded ("The dataset is not applicable in the current training
stage"), and KTO rows without a boolean tag are silently dropped until none are left. A run that
starts from another run's result (`--from-run`) is project/start.py; the rewards DPO and KTO log
are read by engines/training_log.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from lf_wrap.data.formats import detect_format, spec_from_entry
from lf_wrap.data.reader import DatasetFile, Row
from lf_wrap.data.registry import INFO_NAME, entry_file, lookup, read_info
from lf_wrap.util.errors import LfWrapError

PREFERENCE_STAGES = ("dpo", "kto")

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


def settings_problems(stage: str, train: dict[str, Any], where: Callable[[str], str]) -> list[str]:
    """Preference keys in `train` that the stage (or its loss) ignores. `where(key)` names a key's place."""
    problems: list[str] = []
    for key, stages in _STAGE_KEYS.items():
        if key in train and stage not in stages:
            want = " or ".join(f"`stage: {s}`" for s in stages)
            problems.append(
                f"{where(f'train.{key}')}: only {want} reads it, and this project trains `stage: {stage}`; "
                f"set {want} (`--set stage={stages[0]}`), or remove {key}"
            )
    loss = train.get("pref_loss", "sigmoid")
    if stage == "dpo" and "simpo_gamma" in train and loss != "simpo":
        problems.append(
            f"{where('train.simpo_gamma')}: only `pref_loss: simpo` reads it (this project uses {loss!r}); "
            "set pref_loss: simpo, or remove simpo_gamma"
        )
    if stage == "dpo" and train.get("dpo_label_smoothing") and loss != "sigmoid":
        problems.append(
            f"{where('train.dpo_label_smoothing')}: only the sigmoid loss takes label smoothing "
            f"(LLaMA-Factory refuses it with {loss!r}); remove it or set pref_loss: sigmoid"
        )
    return problems


# -- the data must fit the stage ---------------------------------------------------------
def dataset_kind(dataset_dir: Path, name: str) -> Literal["pairs", "kto", "sft"]:
    """What a registered dataset holds, as LLaMA-Factory will read it (its dataset_info.json entry)."""
    info = read_info(dataset_dir)
    spec = spec_from_entry(lookup(info, dataset_dir, name), where=f"{dataset_dir / INFO_NAME}: {name}")
    if spec.ranking:
        return "pairs"
    return "kto" if spec.col("kto_tag") else "sft"


def _file_has_pairs(dataset_dir: Path, name: str) -> bool:
    """Does the registered file itself hold chosen/rejected answers (registered without `ranking`)?"""
    try:
        path = entry_file(dataset_dir, name, lookup(read_info(dataset_dir), dataset_dir, name))
        for row in DatasetFile(path).rows():
            if isinstance(row, Row) and isinstance(row.value, dict):
                found = detect_format(row.value)
                return found is not None and found[0] == "preference"
    except (LfWrapError, OSError):
        return False
    return False


def check_stage_data(stage: str, datasets: list[str], dataset_dir: Path, location: str) -> None:
    """Every dataset of the kind the stage trains on, or one message naming each misfit and the fix
    (`location`: where the project names its datasets)."""
    info = dataset_dir / INFO_NAME
    problems: list[str] = []
    for name in datasets:
        try:
            kind = dataset_kind(dataset_dir, name)
        except LfWrapError:
            continue  # not registered, or a broken entry: check_datasets reports it with every other problem
        if stage == "dpo" and kind != "pairs":
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
        elif stage == "kto" and kind != "kto":
            if kind == "pairs":
                fix = "it holds chosen/rejected pairs: train it with `stage: dpo` (or `pref_loss: kto_pair`)"
            else:
                fix = (
                    "KTO learns from answers marked good or bad: give every row a boolean "
                    '"kto_tag" (true: a good answer, false: a bad one) and register it again '
                    f"(lf-wrap data register FILE --name {name} --force)"
                )
            problems.append(f"dataset {name!r} has no kto_tag column, and `stage: kto` needs one: {fix}")
        elif stage not in PREFERENCE_STAGES and kind != "sft":
            want = "dpo" if kind == "pairs" else "kto"
            what = "preference pairs (ranking)" if kind == "pairs" else "KTO data (kto_tag)"
            problems.append(
                f"dataset {name!r} is {what}, which `stage: {stage}` cannot train on: "
                f"set `stage: {want}` (--set stage={want}), or list a dataset of prompts and answers"
            )
    if problems:
        raise LfWrapError(
            f"the datasets do not fit `stage: {stage}`:\n" + "\n".join(f"  - {p}" for p in problems),
            hint="LLaMA-Factory would fail only after loading the model "
            '("The dataset is not applicable in the current training stage")',
            location=location,
        )
