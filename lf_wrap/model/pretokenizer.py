"""Which of llama.cpp's pre-tokenizers a tokenizer.json's pre-tokenizer rules are.

llama.cpp's converter names a BPE tokenizer's pre-tokenizer (`tokenizer.ggml.pre`) by hashing the
ids it gives a test text: a model with its own retrained vocabulary (lf-wrap's tiny demo models, a
tokenizer extended with new tokens) gets a hash it has never seen and is refused, although it splits
text by rules llama.cpp implements. This module reads the rules themselves and names the llama.cpp
pre-tokenizer whose regex is, character for character, the tokenizer.json's (the regexes below are
the "original regex from tokenizer.json" that llama.cpp's src/llama-vocab.cpp implements for each
name). Anything else is None: then the converter's own refusal stands.
"""

from __future__ import annotations

from typing import Any

QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_REGEX = QWEN2_REGEX.replace(r"|\p{N}|", r"|\p{N}{1,3}|")
SPLIT_REGEXES = {QWEN2_REGEX: "qwen2", LLAMA3_REGEX: "llama-bpe"}


def llamacpp_pre(tokenizer: dict[str, Any]) -> str | None:
    """The llama.cpp pre-tokenizer name for a tokenizer.json (parsed), or None when its rules are
    not exactly one llama.cpp implements."""
    if not isinstance(tokenizer.get("model"), dict) or tokenizer["model"].get("type") != "BPE":
        return None
    pre = tokenizer.get("pre_tokenizer")
    if not isinstance(pre, dict):
        return None
    if _byte_level(pre, use_regex=True):  # ByteLevel's own regex is GPT-2's
        return "gpt-2"
    steps = pre.get("pretokenizers") if pre.get("type") == "Sequence" else None
    if not isinstance(steps, list) or len(steps) != 2 or not _byte_level(steps[1], use_regex=False):
        return None
    split = steps[0]
    if not isinstance(split, dict) or split.get("type") != "Split" or split.get("invert", False):
        return None
    if split.get("behavior") != "Isolated" or not isinstance(split.get("pattern"), dict):
        return None
    return SPLIT_REGEXES.get(split["pattern"].get("Regex", ""))


def _byte_level(step: Any, *, use_regex: bool) -> bool:
    return (
        isinstance(step, dict)
        and step.get("type") == "ByteLevel"
        and not step.get("add_prefix_space", False)
        and bool(step.get("use_regex", True)) is use_regex
    )
