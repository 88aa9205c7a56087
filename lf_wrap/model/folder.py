"""Checks on a model folder: what `train`, `export` and `serve` need to find in it."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from lf_wrap.util.errors import LfWrapError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


def missing_parts(path: Path) -> list[str]:
    missing = []
    if not (path / "config.json").is_file():
        missing.append("config.json")
    if not (any(path.glob("*.safetensors")) or any(path.glob("*.bin")) or any(path.glob("*.gguf"))):
        missing.append("weights (*.safetensors or *.bin)")
    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        missing.append("tokenizer files (tokenizer.json or tokenizer_config.json)")
    return missing


def has_chat_template(path: Path) -> bool:
    if (path / "chat_template.jinja").is_file() or (path / "chat_template.json").is_file():
        return True
    cfg = path / "tokenizer_config.json"
    if cfg.is_file():
        try:
            return bool(json.loads(cfg.read_text(encoding="utf-8")).get("chat_template"))
        except ValueError:
            return False
    return False


def check_model_dir(path: Path, what: str = "model") -> dict[str, Any]:
    """Raise a clear error naming what is missing; return the parsed config.json."""
    if not path.exists():
        raise LfWrapError(
            f"{what} folder {path} does not exist",
            hint="build the demo model with `lf-wrap model tiny models/tiny-qwen2`, "
            "or fetch one with `lf-wrap model pull`",
        )
    if not path.is_dir():
        raise LfWrapError(f"{what} {path} is not a folder", hint="point to the folder that holds config.json")
    missing = missing_parts(path)
    if missing:
        raise LfWrapError(
            f"{what} folder {path} is missing: {', '.join(missing)}",
            hint="point to the folder that holds config.json, the weights and the tokenizer "
            "(for a hub download, the snapshot folder that `lf-wrap model pull` prints)",
        )
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except ValueError as err:
        raise LfWrapError(f"{path / 'config.json'}: not valid JSON ({err})") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise LfWrapError(f"{path / 'config.json'}: has no model_type; is this a transformers model?")
    return config


MAX_HEADER = 100 * 1024 * 1024  # safetensors caps its JSON header at 100 MB


def count_parameters(path: Path) -> int | None:
    """Parameters in a model folder, from its *.safetensors headers (no torch, no weights read).

    Each file starts with an 8-byte little-endian header length and a JSON header that
    gives every tensor's shape. None when there is no readable safetensors file.
    """
    total = 0
    files = sorted(path.glob("*.safetensors"))
    for file in files:
        try:
            with file.open("rb") as f:
                (length,) = struct.unpack("<Q", f.read(8))
                if length > MAX_HEADER:
                    return None
                header = json.loads(f.read(length))
        except (OSError, struct.error, ValueError):
            return None
        if not isinstance(header, dict):
            return None
        for name, info in header.items():
            if name == "__metadata__" or not isinstance(info, dict):
                continue
            count = 1
            for dim in info.get("shape", []):
                count *= int(dim)
            total += count
    return total if files else None


def model_dtype(config: dict[str, Any]) -> str | None:
    """The weights' dtype as config.json records it (`torch_dtype`, or `dtype` in newer files)."""
    value = config.get("torch_dtype") or config.get("dtype")
    return value if isinstance(value, str) else None


def max_positions(config: dict[str, Any]) -> int | None:
    """The longest sequence the model was built for (max_position_embeddings), if recorded."""
    for cfg in (config, config.get("text_config") or {}):
        value = cfg.get("max_position_embeddings") if isinstance(cfg, dict) else None
        if isinstance(value, int) and value > 0:
            return value
    return None


def human_count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)
