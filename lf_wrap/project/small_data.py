"""What `lf-wrap init` writes for a small dataset (tens to a few thousand rows), measured.

LLaMA-Factory's example values (lora_rank 8, learning_rate 1e-4, 3 epochs, 1 x 8 rows) are
written for 4B-8B models and thousands of rows. On the demo's 27 English rows they give 12
optimizer steps, and on SmolLM2-135M-Instruct a tune that did not take (0 of 12 held-out
paraphrases in the persona). bench/recipe_sweep.py measured, on that model and those rows,
through the real `lf-wrap train` and `lf-wrap eval` (held-out paraphrases and the canary),
what a small run needs; bench/recipe_sweep.json has every run (steps, time, held-out hits,
canary, drift) and the README shows it. The rules here:

- **A number of rows seen, not of epochs**: about TARGET_STEPS steps' worth of REFERENCE_BATCH
  rows, in whole passes over the data, so a small dataset is seen often enough and a big one no
  more than LLaMA-Factory's 3 epochs. 63 such steps left 9 of 16 held-out paraphrases in the
  persona; 96 (8 passes over the demo's 27 rows and 63 replay rows), 14 of 16.
- **LoRA rank 16, learning rate SMALL_MODEL_LR for models up to SMALL_MODEL_PARAMS**: at 5e-4
  the same 96 steps gave 6 of 16 held-out hits and no less forgetting (canary 29/56 against
  30/56 at 1e-3; the base answers 35). Models above that size keep LLaMA-Factory's example
  learning rate (not measured here: no such model on this machine).
- **Replay rows**: the base model's own answers to lf-wrap's general prompts
  (general_prompts_en.json, disjoint from the eval canary), the first sentences of each, mixed
  into the training data so what the model knew is trained back in while the persona is
  learned (bench/recipe_sweep.json's `no-replay` row is the same recipe without them).
- **No gradient checkpointing for models up to SMALL_MODEL_PARAMS**: LLaMA-Factory turns it on
  for every run, which computes each layer's forward again in the backward pass to save
  activation memory; a small model's activations at these batches fit, so the time is saved:
  678 -> 555 s (-18%) for the same 96 steps, the same held-out and canary answers
  (bench/recipe_sweep.json's `no-grad-ckpt` row). The memory check still names the switch
  where a plan does not fit.
- **BATCH rows per optimizer step, in one pass, where the data needs more than MIN_EPOCHS passes**
  (4 x 1 where LLaMA-Factory's examples take 1 x 8; up to about 230 rows, past which 3 passes
  make ~100 steps of 8 anyway and keep them): the same passes with twice the updates. At 8 rows
  per step the recipe met the 12-of-16 held-out target at seed 42 only (14; 11 and 10 at seeds 1
  and 2), one general answer in the persona's words at every seed; at 4 rows, 13, 12 and 12 of 16
  at seeds 42, 1 and 2 and no answer in the persona's words (bench/recipe_sweep.json's batch-4
  rows), for about 10% more time (the same rows in smaller matrix products).
- **Logging follows the run's length**: about LOG_POINTS loss values per run.
"""

from __future__ import annotations

import math
from pathlib import Path

from lf_wrap.project.defaults import Default

SMALL_ROWS = 5000  # up to here the measured small-data recipe applies
SMALL_MODEL_PARAMS = 1_000_000_000
# Replay rows only from a model that knows something: below this size (the tiny demo model has
# 0.46M parameters) a model answers general questions too poorly for its answers to be worth keeping.
REPLAY_MIN_PARAMS = 100_000_000
TARGET_STEPS = 100  # of REFERENCE_BATCH rows each: how many passes over the data (what was measured)
REFERENCE_BATCH = 8
MAX_EPOCHS = 30
MIN_EPOCHS = 3
LOG_POINTS = 30
SMALL_MODEL_LR = 1.0e-3
SMALL_RANK = 16
BATCH = 4
GENERAL_PROMPTS = Path(__file__).resolve().parent / "general_prompts_en.json"
REPLAY_SUFFIX = "_replay"
REPLAY_MAX_NEW_TOKENS = 96
NO_CHECKPOINTING = (
    "each layer's forward computed once, not twice: measured 678 -> 555 s of training on SmolLM2-135M-Instruct, "
    "the same held-out and canary answers (bench/recipe_sweep.json, no-grad-ckpt); `lf-wrap train`'s memory "
    "plan names disable_gradient_checkpointing=false where a plan does not fit"
)
MEASURED = "measured on SmolLM2-135M-Instruct, bench/recipe_sweep.json"


def applies(rows: int) -> bool:
    return rows <= SMALL_ROWS


def epochs_for(rows: int) -> tuple[float, int, int, int]:
    """(num_train_epochs, rows per optimizer step, steps per epoch, steps in all): the passes that
    make about TARGET_STEPS steps of REFERENCE_BATCH rows; where that is more than MIN_EPOCHS (a few
    hundred rows at most, what was measured), each pass in steps of BATCH rows."""
    epochs = min(MAX_EPOCHS, max(MIN_EPOCHS, round(TARGET_STEPS / max(1, math.ceil(rows / REFERENCE_BATCH)))))
    batch = BATCH if epochs > MIN_EPOCHS else REFERENCE_BATCH
    per_epoch = max(1, math.ceil(rows / batch))
    return float(epochs), batch, per_epoch, per_epoch * epochs


def logging_steps(total_steps: int) -> int:
    return max(1, round(total_steps / LOG_POINTS))


def values(rows: int, params: int | None) -> dict[str, Default]:
    """The small-data recipe for `rows` training rows (replay rows included) and a model of `params`."""
    epochs, batch, per_epoch, total = epochs_for(rows)
    small_model = params is not None and params <= SMALL_MODEL_PARAMS
    why_batch = (f"{batch} rows per step: twice LLaMA-Factory's updates for the same rows ({MEASURED}, batch-4)"
                 if batch == BATCH else f"{batch} rows per step, as LLaMA-Factory's 1 x 8")  # fmt: skip
    found = {
        "per_device_train_batch_size": Default(batch, f"lf-wrap small-data recipe: {why_batch}"),
        "gradient_accumulation_steps": Default(1, f"lf-wrap small-data recipe: {batch} x 1 in one pass"),
        "num_train_epochs": Default(epochs, f"lf-wrap small-data recipe: about {TARGET_STEPS} x {REFERENCE_BATCH} "
                                    f"rows seen, in whole passes ({MEASURED}): {rows} rows, {per_epoch} steps of "
                                    f"{batch} per epoch, {total} in all"),
        "logging_steps": Default(logging_steps(total), f"lf-wrap: about {LOG_POINTS} loss values over {total} steps"),
        "lora_rank": Default(SMALL_RANK, f"lf-wrap small-data recipe ({MEASURED})"),
    }  # fmt: skip
    if small_model:
        up_to = f"lf-wrap small-data recipe for models up to {SMALL_MODEL_PARAMS // 10**9}B parameters"
        found["disable_gradient_checkpointing"] = Default(True, f"{up_to}: {NO_CHECKPOINTING}")
        found["learning_rate"] = Default(SMALL_MODEL_LR, f"lf-wrap small-data recipe for models up to "
                                         f"{SMALL_MODEL_PARAMS // 10**9}B parameters ({MEASURED})")  # fmt: skip
    return found
