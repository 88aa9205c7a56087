"""`train`'s and `serve`'s memory plans (project/memory.py) from the run's own settings, and the
go/no-go. Training: on GPUs whose memory is known (nvidia-smi, or LF_WRAP_FAKE_GPUS), a plan over a
device's memory is refused before the model loads, with the settings that would make it fit, each
with its new estimate; on CPU the plan is shown, not enforced (the machine's RAM is shared with
everything else running). Serving: the KV cache must hold one sequence of max_model_len, or vLLM
refuses to start after loading the model; lf-wrap says so first, with the --max-model-len that fits."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from lf_wrap.model.folder import count_parameters
from lf_wrap.project.hardware import Hardware
from lf_wrap.project.launch import Launch
from lf_wrap.project.memory import (
    CONTEXT_BYTES,
    DTYPE_BYTES,
    GIB,
    VLLM_UTILIZATION,
    MemoryPlan,
    Shape,
    TrainSetup,
    gib,
    kv_tokens,
    train_plan,
)
from lf_wrap.util.errors import LfWrapError
from lf_wrap.util.files import read_json_object

ZERO_STAGES = {"z0": (0, False), "z2": (2, False), "z3": (3, False), "z3-offload": (3, True)}


def setup_from(values: dict[str, Any], method: str, launch: Launch, hardware: Hardware,
               deepspeed: str | None) -> TrainSetup:  # fmt: skip
    """The run's settings as the estimator needs them (LLaMA-Factory's defaults where unset)."""
    gpu = hardware.cuda and values.get("use_cpu") is not True
    precision = "bf16" if values.get("bf16") else "fp16" if values.get("fp16") else "fp32"
    zero, offload = ZERO_STAGES.get(deepspeed or "", (0, False))
    bit = values.get("quantization_bit")
    return TrainSetup(
        method="qlora" if method == "qlora" or (method == "lora" and bit) else method,
        quantization_bit=int(bit) if bit else None,
        precision=precision if gpu else "fp32",
        pure_bf16=bool(values.get("pure_bf16")),
        lora_rank=int(values.get("lora_rank") or 8),
        batch=int(values.get("per_device_train_batch_size") or 1),
        cutoff=int(values.get("cutoff_len") or 2048),
        checkpointing=not values.get("disable_gradient_checkpointing", False),
        zero=zero,
        offload=offload,
        devices=launch.world_size,
        gpu=gpu,
    )


def plan_for(model_dir: Path, setup: TrainSetup, hardware: Hardware) -> MemoryPlan | None:
    """The plan for `model_dir` (None when its config is not a decoder's lf-wrap can read)."""
    try:
        config = read_json_object(model_dir / "config.json")
        shape = Shape.from_config(config, count_parameters(model_dir))
    except (LfWrapError, KeyError, TypeError, ValueError):
        return None
    plan = train_plan(shape, setup)
    memory = [g.memory_mib for g in hardware.gpus if g.memory_mib]
    if setup.gpu and memory:
        plan.available, plan.device = min(memory) * 1024**2, hardware.gpus[0].name
    return plan


def knobs(model_dir: Path, setup: TrainSetup, hardware: Hardware) -> list[str]:
    """The settings that change the plan most, each with the estimate it gives."""
    tries: list[tuple[str, TrainSetup]] = []
    if setup.method != "qlora":
        tries.append(
            ("--set method=qlora --set quantization_bit=4", replace(setup, method="qlora", quantization_bit=4))
        )
    if setup.method == "full":
        tries.append(("--set method=lora", replace(setup, method="lora")))
    if setup.devices > 1 and setup.zero < 3:
        tries.append(("--deepspeed z3", replace(setup, zero=3)))
    if not setup.offload and setup.devices > 1:
        tries.append(("--deepspeed z3-offload", replace(setup, zero=3, offload=True)))
    if not setup.checkpointing:
        tries.append(("--set disable_gradient_checkpointing=false", replace(setup, checkpointing=True)))
    if setup.cutoff > 512:
        tries.append((f"--set cutoff_len={setup.cutoff // 2}", replace(setup, cutoff=setup.cutoff // 2)))
    if setup.batch > 1:
        half = setup.batch // 2
        tries.append((f"--set per_device_train_batch_size={half} (and gradient_accumulation_steps x2)",
                      replace(setup, batch=half)))  # fmt: skip
    out = []
    for flags, tried in tries:
        plan = plan_for(model_dir, tried, hardware)
        if plan is not None:
            out.append(f"{flags}: {gib(plan.total)}" + (" (fits)" if plan.fits else ""))
    return out


def refuse_if_too_big(plan: MemoryPlan | None, model_dir: Path, setup: TrainSetup, hardware: Hardware) -> None:
    """Exit 2 before the model loads when the plan is over a GPU's memory; the knobs that fit first."""
    if plan is None or plan.fits or plan.available is None:
        return
    options = knobs(model_dir, setup, hardware)
    options.sort(key=lambda line: not line.endswith("(fits)"))
    terms = "\n".join(plan.lines()[1:])
    raise LfWrapError(
        f"the memory plan needs {gib(plan.total)} per device; {plan.device} has {gib(plan.available)}:\n{terms}",
        hint="; ".join(options) if options else "a GPU with more memory, or more GPUs with --deepspeed z3",
    )


def summary(plan: MemoryPlan) -> str:
    """One line for `train`: the total and the biggest terms."""
    top = sorted(plan.terms, key=lambda t: -t.bytes)[:3]
    where = f" of {gib(plan.available)}" if plan.available is not None else ""
    return (f"memory plan: {gib(plan.total)}{where} per device ("
            + ", ".join(f"{t.name} {gib(t.bytes)}" for t in top) + ")")  # fmt: skip


# -- serving (vLLM) ---------------------------------------------------------------------------
def serve_check(model_dir: Path, *, dtype: str, max_model_len: int | None, tp: int, kv_space_gib: float | None,
                gpu_mib: int | None, gpu_name: str = "") -> str | None:  # fmt: skip
    """The line `serve` prints: weights, the KV cache and how many sequences of max_model_len it holds
    (what vLLM's start-up log will say). Raises LfWrapError where vLLM would refuse to start: a KV cache
    that holds less than one sequence of max_model_len, weights over a GPU's memory. None when the
    folder's config is not one lf-wrap can read."""
    try:
        config = read_json_object(model_dir / "config.json")
        shape = Shape.from_config(config, count_parameters(model_dir))
    except (LfWrapError, KeyError, TypeError, ValueError):
        return None
    length = max_model_len or int(config.get("max_position_embeddings") or 2048)
    weights = shape.params * DTYPE_BYTES.get(dtype, 2) / tp
    if kv_space_gib is not None:  # vLLM on CPU: the KV cache is VLLM_CPU_KVCACHE_SPACE GiB
        cache, source = kv_space_gib * GIB, f"VLLM_CPU_KVCACHE_SPACE={kv_space_gib:g}"
    elif gpu_mib:
        cache = VLLM_UTILIZATION * gpu_mib * 1024**2 - weights - CONTEXT_BYTES
        source = f"{VLLM_UTILIZATION:.0%} of {gpu_name} {gib(gpu_mib * 1024**2)}, less weights and runtime"
        if cache <= 0:
            raise LfWrapError(
                f"the model's weights ({gib(weights)} per device in {dtype}) do not fit in {VLLM_UTILIZATION:.0%} of "
                f"{gpu_name} ({gib(gpu_mib * 1024**2)})",
                hint=f"--tensor-parallel-size {tp * 2} (split over {tp * 2} GPUs), or a quantised model",
            )
    else:
        return None
    tokens = kv_tokens(shape, dtype, cache) * tp
    line = (f"memory plan (serving, per device): weights {gib(weights)} ({dtype}), KV cache {gib(cache)} "
            f"({source}) holds {tokens:,} tokens: {tokens / length:.2f} sequences of {length:,} "
            "(max_model_len)")  # fmt: skip
    if tokens < length:
        fits = tokens // 16 * 16
        more = (length * 2 * shape.layers * shape.kv_heads * shape.head_dim * DTYPE_BYTES.get(dtype, 2)) / tp / GIB
        raise LfWrapError(
            f"{line}: less than one sequence, so vLLM would refuse to start",
            hint=f"--max-model-len {fits}" + (f", or VLLM_CPU_KVCACHE_SPACE={more * 1.1:.1f}" if kv_space_gib else
                                               f", or --tensor-parallel-size {tp * 2}"),
        )  # fmt: skip
    return line
