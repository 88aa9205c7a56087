"""Runs INSIDE the training environment (transformers + gguf); imports nothing of lf-wrap.

    python -I gguf_import.py SRC.gguf OUT_DIR [--dtype auto|float32|bfloat16|float16]

Turns a GGUF file into a Hugging Face folder with transformers' own GGUF loader, then puts
back what the loader guesses wrong: the special tokens (bos, eos, pad, unk), the context
length, the chat template and the generation config's stop ids all come from the GGUF
metadata. Writes into OUT_DIR (the caller gives a fresh temporary folder and renames it).

The last line on stdout is one JSON object: the facts on success, or
{"error", "kind", "hint"} with exit status 2 for a file it cannot import.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

FLOAT_TYPES = {"F32", "F16", "BF16", "F64"}


class ImportRefused(Exception):
    def __init__(self, kind: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.hint = hint


def _value(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    if field is None:
        return None
    return field.contents()


def read_metadata(path: Path) -> tuple[Any, dict[str, Any]]:
    from gguf import GGUFReader

    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        raise ImportRefused(
            "not_gguf",
            f"{path} is not a GGUF file (it starts with {magic!r}, a GGUF file with b'GGUF')",
            "pass the .gguf file itself (Ollama keeps them as blobs/sha256-… under ~/.ollama/models)",
        )
    try:
        reader = GGUFReader(path)
    except (ValueError, IndexError, OSError) as err:  # numpy reshape/memmap past the end of the file
        raise ImportRefused(
            "truncated",
            f"{path} is truncated or damaged: its header describes more data than the file holds ({err})",
            "download the file again and compare its sha256 with the source's",
        ) from None
    arch = _value(reader, "general.architecture")
    tokens = _value(reader, "tokenizer.ggml.tokens") or []
    eot = [_value(reader, f"tokenizer.ggml.{name}_token_id") for name in ("eot", "eom")]
    meta: dict[str, Any] = {
        "architecture": arch,
        "name": _value(reader, "general.name"),
        "context_length": _value(reader, f"{arch}.context_length"),
        "tokenizer_model": _value(reader, "tokenizer.ggml.model"),
        "tokenizer_pre": _value(reader, "tokenizer.ggml.pre"),
        "bos_id": _value(reader, "tokenizer.ggml.bos_token_id"),
        "eos_id": _value(reader, "tokenizer.ggml.eos_token_id"),
        "unk_id": _value(reader, "tokenizer.ggml.unknown_token_id"),
        "pad_id": _value(reader, "tokenizer.ggml.padding_token_id"),
        "extra_stop_ids": [int(i) for i in eot if i is not None],
        "add_bos": _value(reader, "tokenizer.ggml.add_bos_token"),
        "chat_template": _value(reader, "tokenizer.chat_template"),
        "vocab_size": len(tokens),
        "tensor_types": sorted({t.tensor_type.name for t in reader.tensors}),
    }
    meta["tokens"] = tokens
    return reader, meta


def check_loadable(meta: dict[str, Any]) -> None:
    from gguf import GGMLQuantizationType
    from gguf.quants import _type_traits  # type: ignore[import-not-found]

    integers = {t.name for t in GGMLQuantizationType if t.name.startswith("I") and t.name[1:].isdigit()}
    readable = {t.name for t in _type_traits} | FLOAT_TYPES | integers
    unknown = [name for name in meta["tensor_types"] if name not in readable]
    if unknown:
        raise ImportRefused(
            "quantisation",
            f"its tensors use quantisation {', '.join(unknown)}, which the gguf package cannot dequantise "
            f"(readable: F32, F16, BF16, Q4_0, Q4_1, Q5_*, Q8_0, Q2_K…Q6_K, IQ*)",
            "convert the original model to a readable type (f16 or q8_0) with llama.cpp, or import the safetensors",
        )
    try:
        from transformers.integrations.ggml import GGUF_CONFIG_MAPPING
    except ImportError:
        return
    arch = meta["architecture"]
    supported = set(GGUF_CONFIG_MAPPING) - {"general", "tokenizer"}
    if arch not in supported and arch.replace("-", "") not in supported:
        raise ImportRefused(
            "architecture",
            f"its architecture {arch!r} is one transformers cannot load from GGUF "
            f"(it can: {', '.join(sorted(supported))})",
            "get the model's safetensors instead (lf-wrap model pull ORG/NAME), or a GGUF of a supported architecture",
        )


def _token(meta: dict[str, Any], key: str) -> str | None:
    index = meta.get(key)
    tokens = meta["tokens"]
    if index is None or not 0 <= int(index) < len(tokens):
        return None
    return str(tokens[int(index)])


def repair_byte_level(tokenizer: Any, meta: dict[str, Any]) -> bool:
    """transformers builds GPT-2-style (byte-level BPE) GGUF tokenizers with byte_fallback and
    a decoder for SentencePiece: ids come out right, decoded text does not ("Ġ" for spaces). Put
    the byte-level decoder back, and keep the change only if ids and text round-trip."""
    if meta["tokenizer_model"] != "gpt2":
        return False
    from tokenizers import Tokenizer

    backend = tokenizer.backend_tokenizer
    data = json.loads(backend.to_str())
    if data.get("decoder", {}).get("type") == "ByteLevel" and not data["model"].get("byte_fallback"):
        return False
    data["model"]["byte_fallback"] = False
    data["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    repaired = Tokenizer.from_str(json.dumps(data))
    sample = "Hello world! Déjà vu: 3.14 ÷ 2 — naïve café, 你好, tabs\tand  two spaces.\nNew line."
    ids = backend.encode(sample, add_special_tokens=False).ids
    if repaired.encode(sample, add_special_tokens=False).ids != ids or repaired.decode(ids) != sample:
        return False
    tokenizer._tokenizer = repaired
    return True


def convert(src: Path, out: Path, dtype_name: str) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    _reader, meta = read_metadata(src)
    check_loadable(meta)
    types = set(meta["tensor_types"])
    if dtype_name == "auto":
        # float weights keep their type; dequantised weights become float32 (bf16 would round them again)
        dtype = torch.float32
        if "F16" in types and types <= {"F16", "F32"}:
            dtype = torch.float16
        elif "BF16" in types and types <= {"BF16", "F32"}:
            dtype = torch.bfloat16
    else:
        dtype = getattr(torch, dtype_name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
        model = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype=dtype)
    except (ValueError, NotImplementedError, KeyError) as err:
        raise ImportRefused(
            "architecture",
            f"transformers cannot load it: {err}",
            "get the model's safetensors instead (lf-wrap model pull ORG/NAME)",
        ) from None
    repaired = repair_byte_level(tokenizer, meta)
    special = {
        "bos_token": _token(meta, "bos_id"),
        "eos_token": _token(meta, "eos_id"),
        "unk_token": _token(meta, "unk_id"),
        "pad_token": _token(meta, "pad_id") or _token(meta, "eos_id"),
    }
    for key, value in special.items():
        if value is not None:
            setattr(tokenizer, key, value)
    if meta["context_length"]:
        tokenizer.model_max_length = int(meta["context_length"])
    if meta["chat_template"]:
        tokenizer.chat_template = meta["chat_template"]
    stop_ids = [int(meta["eos_id"])] if meta["eos_id"] is not None else []
    stop_ids += [i for i in meta["extra_stop_ids"] if i not in stop_ids]
    pad_id = meta["pad_id"] if meta["pad_id"] is not None else meta["eos_id"]
    model.config.bos_token_id = meta["bos_id"]
    model.config.eos_token_id = stop_ids[0] if len(stop_ids) == 1 else stop_ids
    model.config.pad_token_id = pad_id
    if meta["context_length"]:
        model.config.max_position_embeddings = int(meta["context_length"])
    generation = GenerationConfig(bos_token_id=meta["bos_id"], eos_token_id=stop_ids or None, pad_token_id=pad_id)
    model.generation_config = generation
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    if meta["chat_template"] and not (out / "chat_template.jinja").exists():
        (out / "chat_template.jinja").write_text(meta["chat_template"], encoding="utf-8")
    params = sum(p.numel() for p in model.parameters())
    facts = {key: value for key, value in meta.items() if key != "tokens"}
    facts.pop("chat_template", None)
    facts.update(
        {
            "parameters": int(params),
            "dtype": str(dtype).removeprefix("torch."),
            "model_type": model.config.model_type,
            "special_tokens": special,
            "stop_ids": stop_ids,
            "has_chat_template": bool(meta["chat_template"]),
            "byte_level_decoder_repaired": repaired,
        }
    )
    return facts


def main(argv: list[str]) -> int:
    src, out = Path(argv[0]), Path(argv[1])
    dtype = argv[argv.index("--dtype") + 1] if "--dtype" in argv else "auto"
    try:
        facts = convert(src, out, dtype)
    except ImportRefused as err:
        print(json.dumps({"error": str(err), "kind": err.kind, "hint": err.hint}))
        return 2
    print(json.dumps(facts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
