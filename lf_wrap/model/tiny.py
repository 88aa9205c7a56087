"""Build the demo's tiny chat models: random weights, a BPE tokenizer trained on the bundled
datasets, and the special tokens, EOS/BOS/pad layout and chat-template behaviour of a real
model family, so the whole pipeline can be tried on CPU against look-alikes of the models
people fine-tune:

    qwen2.5              Qwen/Qwen2.5-0.5B-Instruct        (the default; LLaMA-Factory template `qwen`)
    qwen3                Qwen/Qwen3-0.6B                   (`qwen3` / `qwen3_nothink`)
    deepseek-r1-distill  deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B   (`deepseekr1`)
    llama3               meta-llama/Llama-3.2-1B-Instruct  (`llama3`)

The token *roles* follow each real model's config.json, generation_config.json and
tokenizer_config.json (which token is BOS, EOS, pad, and the EOS list); the ids are small
(special tokens first), since the vocabulary is 1024 tokens, not 150 k. The chat templates
are written here after the real ones and keep what decides a prompt: Qwen2.5's default
system prompt, Qwen3's `<think>` block and `enable_thinking`, R1's `<think>\\n` generation
prompt and dropping of earlier thinking, Llama-3's "Cutting Knowledge Date / Today Date"
system block. Tools are left out. The non-default families also split text like the real
tokenizers (a blank line is one token). `deepseek-r1-distill` keeps the real
tokenizer_config.json's `"tokenizer_class": "LlamaTokenizerFast"`, which transformers 5
misreads: `lf-wrap train` refuses it with the one-line fix (lf_wrap/model/tokenizer.py).

Shapes are chosen from measurements on a 2-core CPU machine: hidden 128 with 2 heads
(head_dim 64: vLLM's CPU attention rejects 16), 2 layers, and embeddings (and an untied
output layer) initialised with std 0.1 (with the usual 0.02 the logits stay too small for
LoRA to fit anything), every other weight with std 0.06 (TinySpec.initializer_range: with
0.02 LoRA's convergence on the demo depended on the seed and the CPU). Same seed, same bytes.
Imports of torch/transformers/tokenizers happen inside `build`, never at CLI start-up.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lf_wrap.util.errors import LfWrapError

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

# After Qwen3's template (Qwen/Qwen3-0.6B tokenizer_config.json), without tools: no default
# system prompt; the assistant turns after the last user message carry their thinking in
# `<think>\n…\n</think>\n\n` (empty when there was none), earlier turns lose it; the
# generation prompt opens the assistant turn, and with enable_thinking=false it also
# closes an empty think block, so the model answers directly.
QWEN3_CHAT_TEMPLATE = r"""
{%- if messages and messages[0]['role'] == 'system' %}
    {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
{%- endif %}
{%- set ns = namespace(last_query_index=messages|length - 1, found=false) %}
{%- for message in messages[::-1] %}
    {%- if not ns.found and message['role'] == 'user' %}
        {%- set ns.found = true %}
        {%- set ns.last_query_index = (messages|length - 1) - loop.index0 %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message['role'] == 'user' or (message['role'] == 'system' and not loop.first) %}
        {{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}
    {%- elif message['role'] == 'assistant' %}
        {%- set content = message['content'] %}
        {%- set reasoning_content = '' %}
        {%- if message['reasoning_content'] is defined and message['reasoning_content'] is not none %}
            {%- set reasoning_content = message['reasoning_content'] %}
        {%- elif '</think>' in content %}
            {%- set reasoning_content = (content.split('</think>')|first).rstrip('\n').split('<think>')|last %}
            {%- set reasoning_content = reasoning_content.lstrip('\n') %}
            {%- set content = (content.split('</think>')|last).lstrip('\n') %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index and (loop.last or reasoning_content) %}
            {{- '<|im_start|>assistant\n<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' }}
            {{- content.lstrip('\n') }}
        {%- else %}
            {{- '<|im_start|>assistant\n' + content }}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %}
""".strip()

# After DeepSeek-R1-Distill-Qwen's template (llama.cpp models/templates/
# deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja), without tools: BOS, the system prompt
# as bare text, `<｜User｜>`/`<｜Assistant｜>` turns ending in the EOS token, thinking
# dropped from earlier answers, and a generation prompt that opens the think block.
R1_CHAT_TEMPLATE = r"""
{%- if not add_generation_prompt is defined %}
    {%- set add_generation_prompt = false %}
{%- endif %}
{%- set ns = namespace(system_prompt='') %}
{%- for message in messages %}
    {%- if message['role'] == 'system' %}
        {%- set ns.system_prompt = message['content'] %}
    {%- endif %}
{%- endfor %}
{{- bos_token }}{{- ns.system_prompt }}
{%- for message in messages %}
    {%- if message['role'] == 'user' %}
        {{- '<｜User｜>' + message['content'] }}
    {%- elif message['role'] == 'assistant' and message['content'] is not none %}
        {%- set content = message['content'] %}
        {%- if '</think>' in content %}
            {%- set content = content.split('</think>')|last %}
        {%- endif %}
        {{- '<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<｜Assistant｜><think>\n' }}
{%- endif %}
""".strip()

# After Llama-3.2-Instruct's template, without tools: BOS, then always a system block with
# "Cutting Knowledge Date: December 2023" and "Today Date: <date_string>" (today's date
# when the renderer offers strftime_now, as transformers and vLLM do; else 26 Jul 2024),
# the system message (trimmed) after it; every turn's content trimmed and ended by <|eot_id|>.
LLAMA3_CHAT_TEMPLATE = r"""
{{- bos_token }}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if messages and messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
""".strip()


# The pre-tokenizer split of the real tokenizer.json files (Qwen2/Qwen2.5/Qwen3 and the R1
# distills; Llama-3 groups digits by three). Unlike GPT-2's, it keeps "\n\n" in one piece, so
# a blank line is one token as in the real models (what decides where "<think>\n" ends).
QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_SPLIT = QWEN_SPLIT.replace(r"|\p{N}|", r"|\p{N}{1,3}|")
BLANK_LINES = "\n\n".join(["x"] * 200)  # so the tokenizer learns "\n\n" as one token, like the real ones


@dataclass(frozen=True)
class Family:
    """A real model family's token layout and chat format, for a tiny look-alike."""

    name: str
    looks_like: str  # the real checkpoint whose files were copied
    model_type: str  # qwen2 | qwen3 | llama
    lf_template: str  # the LLaMA-Factory template that trains this format
    special_tokens: tuple[str, ...]  # special, ids 0..n-1 in this order
    added_tokens: tuple[str, ...]  # added but not special (kept when decoding), ids after the vocabulary
    bos_token: str | None  # tokenizer_config.json
    eos_token: str
    pad_token: str | None
    config_ids: dict[str, str | list[str] | None]  # config.json bos/eos/pad_token_id, by token
    generation: dict[str, Any]  # generation_config.json; *_token_id values given by token
    chat_template: str
    tie_word_embeddings: bool = True
    prepend_bos: bool = False  # the tokenizer adds BOS when asked for special tokens
    extra_text: tuple[str, ...] = ()  # for the tokenizer's training corpus
    rope: dict[str, Any] = field(default_factory=dict)
    split: str | None = None  # the real pre-tokenizer regex; None: GPT-2's (the demo model's, kept byte-identical)
    nfc: bool = False  # NFC normalizer, as Qwen's tokenizer.json has
    tokenizer_config: dict[str, Any] = field(default_factory=dict)  # entries of the real tokenizer_config.json


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            name="qwen2.5",
            looks_like="Qwen/Qwen2.5-0.5B-Instruct",
            model_type="qwen2",
            lf_template="qwen",
            special_tokens=tuple(SPECIAL_TOKENS),
            added_tokens=(),
            bos_token=None,
            eos_token="<|im_end|>",
            pad_token="<|endoftext|>",
            config_ids={"bos_token_id": "<|endoftext|>", "eos_token_id": "<|im_end|>", "pad_token_id": "<|endoftext|>"},
            # The real file also samples (temperature 0.7, top_p 0.8, repetition_penalty 1.05);
            # the demo model has always been greedy.
            generation={
                "bos_token_id": "<|endoftext|>",
                "eos_token_id": ["<|im_end|>", "<|endoftext|>"],
                "pad_token_id": "<|endoftext|>",
                "do_sample": False,
            },
            chat_template=CHAT_TEMPLATE,
            extra_text=(QWEN_DEFAULT_SYSTEM,),
        ),
        Family(
            name="qwen3",
            looks_like="Qwen/Qwen3-0.6B",
            model_type="qwen3",
            lf_template="qwen3",
            special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
            added_tokens=("<tool_call>", "</tool_call>", "<think>", "</think>"),
            bos_token=None,
            eos_token="<|im_end|>",
            pad_token="<|endoftext|>",
            config_ids={"bos_token_id": "<|endoftext|>", "eos_token_id": "<|im_end|>"},
            generation={
                "bos_token_id": "<|endoftext|>",
                "do_sample": True,
                "eos_token_id": ["<|im_end|>", "<|endoftext|>"],
                "pad_token_id": "<|endoftext|>",
                "temperature": 0.6,
                "top_k": 20,
                "top_p": 0.95,
            },
            chat_template=QWEN3_CHAT_TEMPLATE,
            rope={"rope_theta": 1000000.0},
            extra_text=(BLANK_LINES,),
            split=QWEN_SPLIT,
            nfc=True,
        ),
        Family(
            name="deepseek-r1-distill",
            looks_like="deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
            model_type="qwen2",
            lf_template="deepseekr1",
            special_tokens=("<｜end▁of▁sentence｜>", "<｜begin▁of▁sentence｜>"),
            added_tokens=("<｜User｜>", "<｜Assistant｜>", "<think>", "</think>"),
            bos_token="<｜begin▁of▁sentence｜>",
            eos_token="<｜end▁of▁sentence｜>",
            pad_token="<｜end▁of▁sentence｜>",
            # Yes: the real config.json names the EOS token as BOS too; generation_config.json has the real BOS.
            config_ids={"bos_token_id": "<｜end▁of▁sentence｜>", "eos_token_id": "<｜end▁of▁sentence｜>"},
            generation={
                "bos_token_id": "<｜begin▁of▁sentence｜>",
                "do_sample": True,
                "eos_token_id": "<｜end▁of▁sentence｜>",
                "temperature": 0.6,
                "top_p": 0.95,
            },
            chat_template=R1_CHAT_TEMPLATE,
            tie_word_embeddings=False,
            prepend_bos=True,  # tokenizer_config.json: add_bos_token true
            extra_text=(BLANK_LINES,),
            split=QWEN_SPLIT,
            nfc=True,
            # As shipped, and wrong: transformers 5 reads a byte-level tokenizer.json under this class as a
            # SentencePiece one and drops the spaces; `lf-wrap train` refuses it with the fix (tokenizer_check.py).
            tokenizer_config={
                "tokenizer_class": "LlamaTokenizerFast",
                "add_bos_token": True,
                "add_eos_token": False,
                "legacy": True,
            },
        ),
        Family(
            name="llama3",
            looks_like="meta-llama/Llama-3.2-1B-Instruct",
            model_type="llama",
            lf_template="llama3",
            special_tokens=(
                "<|begin_of_text|>",
                "<|end_of_text|>",
                "<|start_header_id|>",
                "<|end_header_id|>",
                "<|eom_id|>",
                "<|eot_id|>",
                "<|python_tag|>",
            ),
            added_tokens=(),
            bos_token="<|begin_of_text|>",
            eos_token="<|eot_id|>",
            pad_token=None,
            config_ids={
                "bos_token_id": "<|begin_of_text|>",
                "eos_token_id": ["<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"],
            },
            generation={
                "bos_token_id": "<|begin_of_text|>",
                "do_sample": True,
                "eos_token_id": ["<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"],
                "temperature": 0.6,
                "top_p": 0.9,
            },
            chat_template=LLAMA3_CHAT_TEMPLATE,
            prepend_bos=True,
            extra_text=("Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n", BLANK_LINES),
            split=LLAMA3_SPLIT,
            rope={
                "rope_theta": 500000.0,
                "rope_type": "llama3",
                "factor": 32.0,
                "high_freq_factor": 4.0,
                "low_freq_factor": 1.0,
                "original_max_position_embeddings": 64,  # real: 8192 of 131072, the same factor 32 here
            },
        ),
    )
}
DEFAULT_FAMILY = "qwen2.5"


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
    # Std of every other weight. With transformers' usual 0.02 the random layers add almost
    # nothing to the residual stream, so LoRA has to build every feature itself: the demo
    # then sat on a loss plateau (~6) for a seed-dependent time and missed its target on
    # some machines and seeds. At 0.06 the random features are usable and every seed of
    # bench/demo_sweep.py converges (loss ~0.15 by epoch 30).
    initializer_range: float = 0.06


# `lf-wrap model tiny --size`: the demo's model, and one big enough for serving benchmarks to
# measure batching rather than per-request overhead (at 0.46 M parameters a one-request
# FastAPI server runs a token as fast as vLLM runs a whole batch step). "bench" has Qwen2's
# proportions scaled to what 2 CPU cores serve at a useful rate: hidden 512, 8 layers, 8 heads
# of 64 with 2 key/value heads (grouped-query attention, as Qwen2.5), MLP 3x hidden; about
# 24 M parameters, the usual 0.02 initialisation (it is served, not trained, in the benchmarks).
SIZES: dict[str, TinySpec] = {
    "demo": TinySpec(),
    "bench": TinySpec(
        hidden_size=512,
        intermediate_size=1536,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=2,
        embedding_std=0.02,
        initializer_range=0.02,
    ),
}


def size(name: str) -> TinySpec:
    if name not in SIZES:
        raise LfWrapError(f"unknown model size {name!r}", hint=f"choose one of: {', '.join(SIZES)}")
    return SIZES[name]


def _corpus_texts(files: list[Path]) -> Iterator[str]:
    for path in files:
        rows: list[Any]
        try:
            raw = path.read_text(encoding="utf-8")
            rows = (
                json.loads(raw)
                if raw.lstrip().startswith("[")
                else [json.loads(x) for x in raw.splitlines() if x.strip()]
            )
        except (OSError, ValueError) as err:  # ValueError: not UTF-8, or not JSON
            raise LfWrapError(
                f"{path}: cannot read it as JSON or JSON Lines to train the tokenizer on ({err})",
                hint="pass --datasets-dir a folder of dataset files (`lf-wrap data validate` checks each)",
            ) from None
        for row in rows if isinstance(rows, list) else [rows]:
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


# The bundled files the demo tokenizer is trained on. Fixed, so that adding a dataset to
# datasets/ (the preference sets, say) does not change the demo model whose convergence
# bench/demo_sweep.py measured; any other folder given with --datasets-dir is read whole.
DEMO_CORPUS = ("conch_messages.jsonl", "conch_preference.json", "conch_sharegpt.json", "magic_conch.json")


def corpus_files(datasets_dir: Path) -> list[Path]:
    from lf_wrap.util.paths import datasets_dir as bundled

    files = sorted(p for p in datasets_dir.glob("*") if p.suffix in (".json", ".jsonl"))
    if datasets_dir.resolve() == bundled().resolve():
        files = [p for p in files if p.name in DEMO_CORPUS]
    if not files:
        raise LfWrapError(f"{datasets_dir}: no .json/.jsonl files to train the tokenizer on")
    return files


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise LfWrapError(f"unknown model family {name!r}", hint=f"choose one of: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def _ids(value: str | list[str] | None, ids: dict[str, int]) -> int | list[int] | None:
    if value is None:
        return None
    return [ids[t] for t in value] if isinstance(value, list) else ids[value]


def _model_config(fam: Family, spec: TinySpec, vocab_size: int, ids: dict[str, int]) -> Any:
    from transformers import LlamaConfig, Qwen2Config, Qwen3Config

    common: dict[str, Any] = {
        "vocab_size": vocab_size,
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size,
        "num_hidden_layers": spec.num_hidden_layers,
        "num_attention_heads": spec.num_attention_heads,
        "num_key_value_heads": spec.num_key_value_heads,
        "head_dim": spec.hidden_size // spec.num_attention_heads,
        "max_position_embeddings": spec.max_position_embeddings,
        "initializer_range": spec.initializer_range,
        "tie_word_embeddings": fam.tie_word_embeddings,
        **{key: _ids(token, ids) for key, token in fam.config_ids.items()},
        "torch_dtype": "float32",
    }
    if fam.rope:
        common["rope_parameters"] = {"rope_type": "default", **fam.rope}
    if fam.model_type == "qwen2":
        return Qwen2Config(**common, use_sliding_window=False)
    if fam.model_type == "qwen3":
        return Qwen3Config(**common, use_sliding_window=False)  # q/k RMSNorm is part of the architecture
    return LlamaConfig(**common, rms_norm_eps=1e-5)


def build(
    out_dir: Path, datasets_dir: Path, seed: int = 0, spec: TinySpec = TinySpec(), family_name: str = DEFAULT_FAMILY
) -> dict[str, Any]:
    """Write a loadable tiny model of `family_name` to `out_dir`; returns facts for the CLI to print."""
    import torch
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import AutoModelForCausalLM, GenerationConfig, PreTrainedTokenizerFast
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    fam = family(family_name)

    files = corpus_files(datasets_dir)
    texts = list(_corpus_texts(files))
    texts.append(fam.chat_template)  # so the template's own words tokenise compactly
    texts.extend(fam.extra_text)

    tok = Tokenizer(models.BPE())
    if fam.split is None:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(fam.split), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    if fam.nfc:
        tok.normalizer = normalizers.NFC()
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=list(fam.special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    if fam.added_tokens:
        tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in fam.added_tokens])
    ids = {t: tok.token_to_id(t) for t in (*fam.special_tokens, *fam.added_tokens)}
    if fam.prepend_bos and fam.bos_token:
        bos = (fam.bos_token, ids[fam.bos_token])
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos[0]} $A", pair=f"{bos[0]} $A {bos[0]} $B:1", special_tokens=[bos]
        )
    vocab_size = tok.get_vocab_size()

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=fam.bos_token,
        eos_token=fam.eos_token,
        pad_token=fam.pad_token,
        unk_token=None,
        additional_special_tokens=[t for t in fam.special_tokens if t not in (fam.bos_token, fam.pad_token)],
        model_max_length=spec.max_position_embeddings,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = fam.chat_template

    torch.manual_seed(seed)
    config = _model_config(fam, spec, vocab_size, ids)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        model.model.embed_tokens.weight.normal_(0.0, spec.embedding_std)
        if not fam.tie_word_embeddings:
            model.lm_head.weight.normal_(0.0, spec.embedding_std)
    model.generation_config = GenerationConfig(
        **{k: (_ids(v, ids) if k.endswith("_token_id") else v) for k, v in fam.generation.items()}
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    if fam.tokenizer_config:
        tok_cfg = out_dir / "tokenizer_config.json"
        values = {**json.loads(tok_cfg.read_text(encoding="utf-8")), **fam.tokenizer_config}
        tok_cfg.write_text(json.dumps(values, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    params = sum(p.numel() for p in model.parameters())
    weights = out_dir / "model.safetensors"
    return {
        "path": str(out_dir),
        "family": fam.name,
        "looks_like": fam.looks_like,
        "architecture": type(model).__name__,
        "template": fam.lf_template,
        "params": params,
        "vocab_size": vocab_size,
        "weights_bytes": weights.stat().st_size if weights.exists() else None,
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest() if weights.exists() else None,
        "tokenizer_trained_on": [str(f) for f in files],
    }


def build_once(
    out_dir: Path,
    datasets_dir: Path | None,
    *,
    seed: int = 0,
    size_name: str = "demo",
    family_name: str = DEFAULT_FAMILY,
    force: bool = False,
) -> dict[str, Any] | None:
    """`lf-wrap model tiny`: build the model unless `out_dir` already holds one (then None); the
    bundled datasets train its tokenizer unless `datasets_dir` says otherwise."""
    from lf_wrap.util.errors import require
    from lf_wrap.util.paths import datasets_dir as bundled

    if (out_dir / "config.json").exists() and not force:
        return None
    if out_dir.exists() and not out_dir.is_dir():
        raise LfWrapError(f"{out_dir}: exists and is not a directory")
    require(("torch", "transformers", "tokenizers"), "lf-wrap model tiny")
    return build(out_dir, datasets_dir or bundled(), seed=seed, spec=size(size_name), family_name=family_name)


def describe(facts: dict[str, Any]) -> str:
    """The line `lf-wrap model tiny` prints for a model it built."""
    like = f"; {facts['architecture']} like {facts['looks_like']}, train with template: {facts['template']}"
    return (
        f"built {facts['path']}: {facts['params']:,} parameters, vocab {facts['vocab_size']}, "
        f"{facts['weights_bytes'] / 1e6:.1f} MB of weights" + ("" if facts["family"] == DEFAULT_FAMILY else like)
    )
