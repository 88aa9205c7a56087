"""How much memory a training run or a server needs per device, before any model loads.

From the model's config.json (and its safetensors headers, for the parameter count) and the
run's settings, term by term, each with its arithmetic:

training (per device)
    weights       full: trainable weights in fp32 (LLaMA-Factory keeps them in fp32 under bf16/fp16
                  mixed precision; `pure_bf16`: 2 bytes); LoRA: the frozen model in the compute dtype
                  (2 bytes, 4 on CPU) + the adapter in fp32; QLoRA: the decoder's linear layers at
                  `quantization_bit` (4-bit NF4 with double quantisation: ~0.53 bytes/param, 8-bit:
                  ~1.06) and the rest (embeddings, norms) in 16-bit. ZeRO-3 splits them over the devices.
    gradients     one per trainable parameter, in the trainable dtype (fp32); ZeRO-2/3 split them.
    optimizer     AdamW: two fp32 moments per trainable parameter (8 bytes); ZeRO-1/2/3 split them,
                  offload moves them to the CPU.
    activations   with gradient checkpointing (LLaMA-Factory's default): each layer's input kept
                  (batch x cutoff x hidden) plus one layer recomputed in full; without it, every layer
                  in full. A layer in full is batch x cutoff x 34 x hidden values (Korthikanti et al.
                  2022, "Reducing Activation Recomputation in Large Transformer Models"; attention
                  scores not materialised, as with SDPA/flash attention), at the compute dtype's size.
    logits        batch x cutoff x vocab: the 16-bit logits, their fp32 copy for the loss and its
                  gradient (10 bytes per value); on CPU, in fp32, 20 bytes (the logits, the loss's
                  log-softmax, their gradients and the logits' gradient: measured, bench/memory_sweep.json).
    attention     CPU only: attention there runs its unfused path, which keeps the scores and the
                  softmax (batch x heads x cutoff^2, fp32) of the layer being computed; on a GPU
                  SDPA/flash attention never materialises them.
    runtime       the framework itself: CUDA context and allocator slack on a GPU (1 GiB), the
                  Python process with torch, transformers and LLaMA-Factory on CPU (1.1 GiB: the
                  peak of the tiny model's runs, where every other term is under 0.05 GiB).

The weights' gradients are not held at the same moment as the activations, logits and attention:
the optimizer drops the gradients before each step's forward pass (`zero_grad(set_to_none=True)`)
and backward frees the loss's tensors as it produces them, so a plan's total counts the larger of
the two, not both.

serving (vLLM, per device at tensor-parallel size TP)
    weights       parameters x dtype bytes / TP
    KV cache      2 (K and V) x layers x KV heads x head dim x dtype bytes per token, x max_model_len x
                  concurrent sequences / TP (vLLM's own arithmetic: its start-up log says how many
                  tokens its cache holds)
    runtime       activations of one step and the CUDA context (vLLM reserves ~10% of the GPU:
                  gpu_memory_utilization 0.9)

No torch import: config.json and the safetensors headers are read as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

GIB = 1024**3
CONTEXT_BYTES = 1 * GIB
CPU_RUNTIME_BYTES = 1.1 * GIB  # measured: bench/memory_sweep.json, the tiny model's runs
CPU_LOGIT_BYTES = 20  # per logit value in fp32 on CPU (bench/memory_sweep.json)
CPU_SCORE_COPIES = 2  # the scores and their softmax, fp32, for the layer being computed
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "float32": 4, "bfloat16": 2, "float16": 2}
QUANT_BYTES = {4: 0.53, 8: 1.06}  # per quantised weight, with bitsandbytes' block constants
ACTIVATION_FACTOR = 34  # values per token per hidden unit of one layer in full (no attention scores)
VLLM_UTILIZATION = 0.9


@dataclass(frozen=True)
class Shape:
    """What memory depends on, from config.json."""

    params: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool

    @classmethod
    def from_config(cls, config: dict[str, Any], params: int | None = None) -> Shape:
        """The shape of a decoder-only model; `params` from the weights' headers, else counted from the config."""
        text = config.get("text_config")
        cfg: dict[str, Any] = text if isinstance(text, dict) else config  # a multimodal model's language part
        hidden = int(cfg["hidden_size"])
        heads = int(cfg["num_attention_heads"])
        shape = cls(
            params=0,
            hidden=hidden,
            layers=int(cfg["num_hidden_layers"]),
            heads=heads,
            kv_heads=int(cfg.get("num_key_value_heads") or heads),
            head_dim=int(cfg.get("head_dim") or hidden // heads),
            intermediate=int(cfg.get("intermediate_size") or 4 * hidden),
            vocab=int(cfg["vocab_size"]),
            tied=bool(cfg.get("tie_word_embeddings", False)),
        )
        return replace(shape, params=params or shape.counted_params())

    @property
    def layer_linear_params(self) -> int:
        """The linear layers of one decoder layer: q, k, v, o and the gated MLP (gate, up, down)."""
        q_o = 2 * self.hidden * self.heads * self.head_dim
        k_v = 2 * self.hidden * self.kv_heads * self.head_dim
        return q_o + k_v + 3 * self.hidden * self.intermediate

    @property
    def linear_params(self) -> int:
        return self.layers * self.layer_linear_params

    def counted_params(self) -> int:
        embeddings = self.vocab * self.hidden * (1 if self.tied else 2)
        norms = (2 * self.layers + 1) * self.hidden
        return embeddings + self.linear_params + norms

    def lora_params(self, rank: int) -> int:
        """LoRA on every linear layer of every decoder layer (LLaMA-Factory's `lora_target: all`)."""
        hd = self.heads * self.head_dim
        kvd = self.kv_heads * self.head_dim
        mlp = self.intermediate
        pairs = [(self.hidden, hd), (self.hidden, kvd), (self.hidden, kvd), (hd, self.hidden),
                 (self.hidden, mlp), (self.hidden, mlp), (mlp, self.hidden)]  # fmt: skip
        return self.layers * sum(rank * (i + o) for i, o in pairs)


@dataclass(frozen=True)
class TrainSetup:
    method: str = "lora"  # full | lora | qlora
    quantization_bit: int | None = None
    precision: str = "bf16"  # bf16 | fp16 | fp32 (CPU)
    pure_bf16: bool = False
    lora_rank: int = 8
    batch: int = 1
    cutoff: int = 2048
    checkpointing: bool = True
    zero: int = 0  # DeepSpeed ZeRO stage
    offload: bool = False
    devices: int = 1
    gpu: bool = True


@dataclass(frozen=True)
class Term:
    name: str
    bytes: float
    why: str
    phase: str = ""  # "forward": the step's tensors; "gradients": the weights' gradients; "": always held


@dataclass
class MemoryPlan:
    what: str  # "training" or "serving"
    terms: list[Term] = field(default_factory=list)
    available: float | None = None  # bytes on the device, when known
    device: str = ""

    @property
    def total(self) -> float:
        """What is always held, plus the larger of the step's tensors and the weights' gradients (never both)."""
        held = sum(t.bytes for t in self.terms if not t.phase)
        forward = sum(t.bytes for t in self.terms if t.phase == "forward")
        gradients = sum(t.bytes for t in self.terms if t.phase == "gradients")
        return held + max(forward, gradients)

    @property
    def fits(self) -> bool:
        return self.available is None or self.total <= self.available

    def lines(self) -> list[str]:
        head = f"memory plan ({self.what}, per device): {gib(self.total)}"
        if self.available is not None:
            head += f" of {gib(self.available)} on {self.device}: " + ("fits" if self.fits else "DOES NOT FIT")
        return [head, *(f"  {t.name:<12} {gib(t.bytes):>10}  {t.why}" for t in self.terms)]


def gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB" if n >= 0.1 * GIB else f"{n / 1024**2:.0f} MiB"


def train_plan(shape: Shape, s: TrainSetup) -> MemoryPlan:
    """Per-device memory of a LLaMA-Factory training run (the module docstring gives each term)."""
    n = max(1, s.devices)
    compute = DTYPE_BYTES[s.precision] if s.gpu else 4
    trainable_bytes = 2 if s.pure_bf16 else 4
    plan = MemoryPlan("training")
    weights: float
    if s.method == "full":
        trainable = shape.params
        weights = shape.params * trainable_bytes
        why = f"{shape.params:,} params x {trainable_bytes} bytes ({'pure bf16' if s.pure_bf16 else 'fp32 master'})"
    else:
        trainable = shape.lora_params(s.lora_rank)
        if s.method == "qlora":
            bits = s.quantization_bit or 4
            frozen = shape.linear_params * QUANT_BYTES[bits] + (shape.params - shape.linear_params) * 2
            why = f"{shape.linear_params:,} linear params at {bits}-bit + the rest in 16-bit"
        else:
            frozen = shape.params * compute
            why = f"{shape.params:,} params x {compute} bytes"
        weights = frozen + trainable * trainable_bytes
        why += f" + LoRA r={s.lora_rank}: {trainable:,} params in fp32"
    zero_note = f", ZeRO-3 over {n}" if s.zero >= 3 and n > 1 else ""
    plan.terms.append(Term("weights", weights / (n if s.zero >= 3 else 1), why + zero_note))
    grads = trainable * trainable_bytes / (n if s.zero >= 2 else 1)
    plan.terms.append(Term("gradients", grads, f"{trainable:,} trainable x {trainable_bytes} bytes"
                           + (f", ZeRO-{s.zero} over {n}" if s.zero >= 2 and n > 1 else "")
                           + " (not held with the step's tensors below: the larger counts)", "gradients"))  # fmt: skip
    moments = 2 * trainable_bytes  # AdamW's two moments, in the trainable dtype
    optimizer = 0.0 if s.offload else trainable * moments / (n if s.zero >= 1 else 1)
    split = f", ZeRO over {n}" if s.zero and n > 1 else ""
    why = "AdamW moments offloaded to the CPU" if s.offload else f"AdamW: {trainable:,} x {moments} bytes{split}"
    plan.terms.append(Term("optimizer", optimizer, why))
    tokens = s.batch * s.cutoff
    layer = tokens * ACTIVATION_FACTOR * shape.hidden * compute
    if s.checkpointing:
        acts = tokens * shape.hidden * compute * shape.layers + layer
        why = f"{s.batch} x {s.cutoff} tokens: each layer's input kept, one layer recomputed (gradient checkpointing)"
    else:
        acts = layer * shape.layers
        why = f"{s.batch} x {s.cutoff} tokens x {shape.layers} layers in full (no gradient checkpointing)"
    plan.terms.append(Term("activations", acts, why, "forward"))
    per_logit = (compute + 4 + 4) if s.gpu else CPU_LOGIT_BYTES
    why = f"{tokens} tokens x {shape.vocab:,} vocab x {per_logit} bytes (logits, fp32 loss, grad)"
    plan.terms.append(Term("logits", tokens * shape.vocab * per_logit, why, "forward"))
    if not s.gpu:
        scores = s.batch * shape.heads * s.cutoff**2 * 4 * CPU_SCORE_COPIES
        why = f"{s.batch} x {shape.heads} heads x {s.cutoff}^2 x 4 bytes x {CPU_SCORE_COPIES} (scores, softmax: CPU)"
        plan.terms.append(Term("attention", scores, why, "forward"))
    runtime = "CUDA context and allocator slack" if s.gpu else "Python, torch, transformers, LLaMA-Factory (measured)"
    plan.terms.append(Term("runtime", CONTEXT_BYTES if s.gpu else CPU_RUNTIME_BYTES, runtime))
    return plan


def serve_plan(shape: Shape, *, dtype: str, max_model_len: int, concurrency: int, tp: int = 1) -> MemoryPlan:
    """Per-device memory of a vLLM server holding `concurrency` sequences of `max_model_len` tokens."""
    size = DTYPE_BYTES[dtype]
    per_token = 2 * shape.layers * shape.kv_heads * shape.head_dim * size
    plan = MemoryPlan("serving")
    plan.terms.append(Term("weights", shape.params * size / tp, f"{shape.params:,} params x {size} bytes / TP {tp}"))
    why = f"{per_token:,} bytes a token x {max_model_len} tokens x {concurrency} sequences / TP {tp}"
    plan.terms.append(Term("KV cache", per_token * max_model_len * concurrency / tp, why))
    plan.terms.append(Term("runtime", CONTEXT_BYTES, "activations of one step, CUDA context"))
    return plan


def kv_tokens(shape: Shape, dtype: str, cache_bytes: float) -> int:
    """How many tokens a KV cache of `cache_bytes` holds (what vLLM's start-up log says)."""
    return int(cache_bytes // (2 * shape.layers * shape.kv_heads * shape.head_dim * DTYPE_BYTES[dtype]))
