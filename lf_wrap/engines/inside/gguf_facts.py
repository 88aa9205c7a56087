"""Prints what a GGUF file says about itself as one JSON object, read with llama.cpp's own gguf-py
(from the llama.cpp source the converter came from); runs in the training environment (numpy),
never imports lf-wrap.

    python gguf_facts.py LLAMACPP_SRC FILE.gguf
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

KEYS = {
    "architecture": "general.architecture",
    "file_type": "general.file_type",
    "pre": "tokenizer.ggml.pre",
    "model": "tokenizer.ggml.model",
    "bos_id": "tokenizer.ggml.bos_token_id",
    "eos_id": "tokenizer.ggml.eos_token_id",
    "eot_id": "tokenizer.ggml.eot_token_id",
    "eom_id": "tokenizer.ggml.eom_token_id",
    "pad_id": "tokenizer.ggml.padding_token_id",
    "add_bos": "tokenizer.ggml.add_bos_token",
    "add_eos": "tokenizer.ggml.add_eos_token",
    "chat_template": "tokenizer.chat_template",
}


def main(argv: list[str]) -> int:
    src, path = Path(argv[0]), Path(argv[1])
    sys.path[:0] = [str(src / "gguf-py")]
    from gguf import GGUFReader  # llama.cpp's gguf-py, from `src`

    reader = GGUFReader(path)
    facts: dict[str, Any] = {"tensors": len(reader.tensors), "bytes": path.stat().st_size}
    for name, key in KEYS.items():
        field = reader.get_field(key)
        facts[name] = field.contents() if field is not None else None
    tokens = reader.get_field("tokenizer.ggml.tokens")
    facts["vocab_size"] = len(tokens.data) if tokens is not None else None
    for name in ("bos", "eos", "eot", "eom", "pad"):
        token_id = facts[f"{name}_id"]
        facts[f"{name}_token"] = tokens.contents(int(token_id)) if tokens is not None and token_id is not None else None
    print(json.dumps(facts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
