"""Build the demo's tiny Qwen2-style model: random weights, a BPE tokenizer trained on the
bundled datasets, and a chat template that renders exactly what LLaMA-Factory's `qwen`
template trains on (including the default system prompt it injects).

Shapes are chosen from measurements on a 2-core CPU machine: hidden 128 with 2 heads
(head_dim 64: vLLM's CPU attention rejects 16), 2 layers, and embeddings initialised with
std 0.1 (with the usual 0.02 the logits stay too small for LoRA to fit anything).
Imports of torch/transformers/tokenizers happen inside `build`, never at CLI start-up.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lf_wrap.errors import LfWrapError

QWEN_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# Same output as LLaMA-Factory's `qwen` template (src/llamafactory/data/template.py, v0.9.5):
# a system turn always, the default system prompt when the conversation has none.
CHAT_TEMPLATE = (
    "{%- if messages and messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- set loop_messages = messages[1:] %}"
    "{%- else %}"
    "{{- '<|im_start|>system\\n" + QWEN_DEFAULT_SYSTEM + "<|im_end|>\\n' }}"
    "{%- set loop_messages = messages %}"
    "{%- endif %}"
    "{%- for message in loop_messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


@dataclass(frozen=True)
class TinySpec:
    vocab_size: int = 1024
    hidden_size: int = 128
    intermediate_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    num_key_value_heads: int = 2
    max_position_embeddings: int = 2048
    embedding_std: float = 0.1


def _corpus_texts(files: list[Path]) -> Iterator[str]:
    for path in files:
        raw = path.read_text(encoding="utf-8")
        rows: list[Any]
        if raw.lstrip().startswith("["):
            rows = json.loads(raw)
        else:
            rows = [json.loads(line) for line in raw.splitlines() if line.strip()]
        for row in rows:
            yield from _strings(row)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def corpus_files(datasets_dir: Path) -> list[Path]:
    files = sorted(p for p in datasets_dir.glob("*") if p.suffix in (".json", ".jsonl"))
    if not files:
        raise LfWrapError(f"{datasets_dir}: no .json/.jsonl files to train the tokenizer on")
    return files


def build(out_dir: Path, datasets_dir: Path, seed: int = 0, spec: TinySpec = TinySpec()) -> dict[str, Any]:
    """Write a loadable tiny model to `out_dir`; returns facts for the CLI to print."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    files = corpus_files(datasets_dir)
    texts = list(_corpus_texts(files))
    texts.append(CHAT_TEMPLATE)  # so the template's own words tokenise compactly
    texts.append(QWEN_DEFAULT_SYSTEM)

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    vocab_size = tok.get_vocab_size()

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        model_max_length=spec.max_position_embeddings,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        head_dim=spec.hidden_size // spec.num_attention_heads,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        torch_dtype="float32",
        use_sliding_window=False,
    )
    model = Qwen2ForCausalLM(config)
    with torch.no_grad():
        model.model.embed_tokens.weight.normal_(0.0, spec.embedding_std)
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
        do_sample=False,
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    params = sum(p.numel() for p in model.parameters())
    weights = out_dir / "model.safetensors"
    return {
        "path": str(out_dir),
        "params": params,
        "vocab_size": vocab_size,
        "weights_bytes": weights.stat().st_size if weights.exists() else None,
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest() if weights.exists() else None,
        "tokenizer_trained_on": [str(f) for f in files],
    }
