"""Every default value lf-wrap writes into a LLaMA-Factory config, with where it came from.

This is the only place these values live: the templates in templates/train/ and
templates/export/ name the keys (`p("lora_rank")`) but carry no values, and
`lf-wrap render train` prints each value beside its source.  A project file's `train:` /
`export:` block, or `--set`, overrides any of them; `bf16`, `fp16` and `use_cpu` are
decided from the machine (lf_wrap/project/hardware.py) unless the project sets them.

Sources, LLaMA-Factory v0.9.5 (github.com/hiyouga/LLaMA-Factory, tag v0.9.5):
  examples/train_lora/qwen3_lora_sft.yaml      (llama3_lora_sft.yaml in earlier releases)
  examples/train_full/qwen3_full_sft.yaml
  examples/train_qlora/qwen3_lora_sft_otfq.yaml
  examples/merge_lora/qwen3_lora_sft.yaml
  src/llamafactory/hparams/*.py                (argument defaults, where no example sets the key)
Deliberately not copied from the examples: `max_samples: 1000` (it silently drops every
row after the 1000th) and `resume_from_checkpoint` (lf-wrap's --resume sets it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LF_EXAMPLE = "LLaMA-Factory example default"

# Validation split (LLaMA-Factory's `val_size`), off by default; `lf-wrap init` writes it for a
# dataset of VAL_MIN_ROWS rows or more. Why 1000: LLaMA-Factory's examples hold out 10%
# (`val_size: 0.1`), and from 1000 rows that is >= 100 rows. The eval loss is a mean over the
# held-out rows; its standard error is about sd/sqrt(rows), and per-row losses spread about as
# much as their mean, so 100 rows measure it to ~±10% and 30 rows only to ~±18%: too coarse to
# tell a flattening curve from noise, for rows taken out of a small training set. Above
# VAL_MAX_ROWS x 10 rows a fixed VAL_MAX_ROWS rows (val_size > 1 is a row count) keeps each
# evaluation short.
VAL_MIN_ROWS = 1000
VAL_FRACTION = 0.1
VAL_MAX_ROWS = 1000


@dataclass(frozen=True)
class Default:
    value: Any
    source: str  # shown as the YAML comment by `lf-wrap render`


def _example(value: Any, example: str = "qwen3_lora_sft.yaml") -> Default:
    return Default(value, f"{LF_EXAMPLE} ({example})")


def _lf_wrap(value: Any, why: str) -> Default:
    return Default(value, f"lf-wrap default: {why}")


# Keys of every training template.
TRAIN_COMMON: dict[str, Default] = {
    "trust_remote_code": _example(True),
    "cutoff_len": _example(2048),
    "overwrite_cache": _lf_wrap(True, "re-read the data every run, so an edited file is never trained from a cache"),
    "preprocessing_num_workers": _lf_wrap(1, "one process (the example's 16 only pays off on large datasets)"),
    "dataloader_num_workers": _lf_wrap(0, "load batches in the training process (the example uses 4)"),
    "logging_steps": _example(10),
    "save_steps": _example(500),
    "plot_loss": _example(True),
    "overwrite_output_dir": _lf_wrap(False, "never replace a run silently (--overwrite sets it)"),
    "save_only_model": _example(False),
    "report_to": _example("none"),
    "per_device_train_batch_size": _example(1),
    "gradient_accumulation_steps": _example(8),
    "learning_rate": _example(1.0e-4),
    "num_train_epochs": _example(3.0),
    "lr_scheduler_type": _example("cosine"),
    "warmup_ratio": _example(0.1),
    "ddp_timeout": _example(180000000),
    "val_size": _lf_wrap(
        0.0,
        f"off: no validation split. `lf-wrap init` turns it on from {VAL_MIN_ROWS} rows (val_size "
        f"{VAL_FRACTION}); below that a 10% split is under {int(VAL_MIN_ROWS * VAL_FRACTION)} rows, whose eval loss is "
        "too noisy to act on, and every row held out is one the model never learns",
    ),
}

# LoRA (and QLoRA) adapters.  lora_alpha is not set by the examples: LLaMA-Factory then
# uses 2 x lora_rank, which config.render_train computes from the rank actually used.
TRAIN_LORA: dict[str, Default] = {
    "lora_rank": _example(8),
    "lora_dropout": Default(0.0, "LLaMA-Factory default (finetuning_args.py)"),
    "lora_target": _example("all"),
}
LORA_ALPHA_SOURCE = "LLaMA-Factory default: 2 x lora_rank (finetuning_args.py)"

TRAIN_QLORA: dict[str, Default] = {
    "quantization_bit": _example(4, "qwen3_lora_sft_otfq.yaml"),
    "quantization_method": _example("bnb", "qwen3_lora_sft_otfq.yaml"),
    "double_quantization": Default(True, "LLaMA-Factory default (model_args.py)"),
}

# Full fine-tuning moves every weight: a 10x smaller learning rate, less accumulation.
TRAIN_FULL: dict[str, Default] = {
    "gradient_accumulation_steps": _example(2, "qwen3_full_sft.yaml"),
    "learning_rate": _example(1.0e-5, "qwen3_full_sft.yaml"),
}

EXPORT: dict[str, Default] = {
    "trust_remote_code": _example(True, "merge_lora/qwen3_lora_sft.yaml"),
    "export_size": _example(5, "merge_lora/qwen3_lora_sft.yaml"),
    "export_device": _example("cpu", "merge_lora/qwen3_lora_sft.yaml"),
    "export_legacy_format": _example(False, "merge_lora/qwen3_lora_sft.yaml"),
}


def train_defaults(method: str) -> dict[str, Default]:
    """The defaults for `method` (lora, qlora or full), in no particular order."""
    if method == "full":
        return {**TRAIN_COMMON, **TRAIN_FULL}
    if method == "qlora":
        return {**TRAIN_COMMON, **TRAIN_LORA, **TRAIN_QLORA}
    return {**TRAIN_COMMON, **TRAIN_LORA}


# Preference training (stage dpo / kto): examples/train_lora/qwen3_lora_dpo.yaml and
# qwen3_lora_kto.yaml (v0.9.5): beta 0.1, the sigmoid (DPO) loss, a learning rate 20x below SFT's
# (the policy starts at the reference model and must stay near it). v0.9.5 has no full-parameter
# DPO/KTO example: full runs take the same rate, already below the full SFT example's 1e-5.
# pref_ftx (an SFT loss added to DPO) and simpo_gamma are LLaMA-Factory's argument defaults.
TRAIN_DPO: dict[str, Default] = {
    "pref_beta": _example(0.1, "qwen3_lora_dpo.yaml"),
    "pref_loss": _example("sigmoid", "qwen3_lora_dpo.yaml"),
    "pref_ftx": Default(0.0, "LLaMA-Factory default (finetuning_args.py)"),
    "learning_rate": _example(5.0e-6, "qwen3_lora_dpo.yaml"),
}
TRAIN_SIMPO: dict[str, Default] = {
    "simpo_gamma": Default(0.5, "LLaMA-Factory default (finetuning_args.py)"),
}
TRAIN_KTO: dict[str, Default] = {
    "pref_beta": _example(0.1, "qwen3_lora_kto.yaml"),
    "pref_ftx": Default(0.0, "LLaMA-Factory default (finetuning_args.py)"),
    "learning_rate": _example(5.0e-6, "qwen3_lora_kto.yaml"),
}


def stage_defaults(stage: str, method: str, pref_loss: str | None = None) -> dict[str, Default]:
    """What a preference stage changes on top of train_defaults(method); {} for sft."""
    if stage == "dpo":
        found = {**TRAIN_DPO, **(TRAIN_SIMPO if pref_loss == "simpo" else {})}
    elif stage == "kto":
        found = dict(TRAIN_KTO)
    else:
        return {}
    if method == "full":
        lr = found["learning_rate"]
        found["learning_rate"] = Default(lr.value, lr.source[:-1] + "; there is no full-parameter example)")
    return found


def export_defaults() -> dict[str, Default]:
    return dict(EXPORT)
