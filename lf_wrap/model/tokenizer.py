"""A tokenizer that transformers 5 would load wrongly, found before training starts.

DeepSeek's checkpoints (the R1 distills of Qwen and Llama, DeepSeek-V3, deepseek-coder)
ship a byte-level BPE `tokenizer.json` (GPT-2/Qwen style) but name
`"tokenizer_class": "LlamaTokenizerFast"` in tokenizer_config.json. transformers 5.x builds
that class's SentencePiece pipeline (Metaspace) around the vocabulary and drops every space:
"I am the Magic Conch." encodes as "IamtheMagicConch." (huggingface/transformers#45488).
The training environment (LLaMA-Factory 0.9.5, transformers 5.6) is affected for any local
folder; vLLM's newer transformers maps Qwen2 models to their own tokenizer and is not, so
the model would be trained on other token ids than it is served with, and no template
check can see it (both of its sides use the same broken tokenizer). Reads JSON only.
"""

from __future__ import annotations

from pathlib import Path

from lf_wrap.util.errors import LfWrapError
from lf_wrap.util.files import read_json_object

SENTENCEPIECE_CLASSES = ("LlamaTokenizerFast", "LlamaTokenizer", "CodeLlamaTokenizerFast", "CodeLlamaTokenizer")
PORTABLE_CLASS = "PreTrainedTokenizerFast"  # loads tokenizer.json as it is, in transformers 4 and 5


def _pre_tokenizer_types(node: object) -> set[str]:
    if not isinstance(node, dict):
        return set()
    found = {node["type"]} if isinstance(node.get("type"), str) else set()
    for child in node.get("pretokenizers") or []:
        found |= _pre_tokenizer_types(child)
    return found


def check_tokenizer_class(model_dir: Path) -> None:
    """Refuse (exit 2, with the one-line fix) a byte-level tokenizer.json behind a Llama tokenizer class."""
    cfg_path, json_path = model_dir / "tokenizer_config.json", model_dir / "tokenizer.json"
    try:
        cls = read_json_object(cfg_path).get("tokenizer_class")
        pre = read_json_object(json_path).get("pre_tokenizer")
    except LfWrapError:
        return  # missing or odd files are reported by the model checks, not here
    types = _pre_tokenizer_types(pre)
    if cls in SENTENCEPIECE_CLASSES and "ByteLevel" in types and "Metaspace" not in types:
        raise LfWrapError(
            f"{cfg_path} names tokenizer_class {cls!r}, but {json_path.name} is a byte-level BPE tokenizer: "
            "transformers 5 (the training environment's) loads it as a SentencePiece Llama tokenizer that drops "
            "every space, so LLaMA-Factory would train on garbled text (huggingface/transformers#45488; "
            "DeepSeek-R1-Distill, DeepSeek-V3 and deepseek-coder checkpoints ship this way)",
            hint=f'set "tokenizer_class": "{PORTABLE_CLASS}" in {cfg_path} (it then loads {json_path.name} as it '
            "is, in every transformers version); a model in the Hugging Face cache: copy it first with "
            "`lf-wrap model pull ID --local-dir DIR`",
        )
