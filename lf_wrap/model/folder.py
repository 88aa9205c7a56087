"""A model folder: what `train`, `export` and `serve` need to find in it, and what its
config.json and safetensors headers say (parameters, tensor shapes, dtype, length limit)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lf_wrap.util.errors import LfWrapError
from lf_wrap.util.files import read_json_object

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
            return bool(read_json_object(cfg).get("chat_template"))
        except LfWrapError:
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
    config = read_json_object(path / "config.json", hint="point to a transformers model folder")
    if "model_type" not in config:
        raise LfWrapError(f"{path / 'config.json'}: has no model_type; is this a transformers model?")
    return config


def tensor_shapes(folder: Path) -> dict[str, list[int]]:
    """Every tensor's shape in the folder's *.safetensors files ({} without one), read from their
    headers by the safetensors library (`safe_open`: the header only; no weights, no torch).
    A file that is not a readable safetensors file is one message naming it."""
    from safetensors import SafetensorError, safe_open

    shapes: dict[str, list[int]] = {}
    for file in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(file), framework="numpy") as f:
                for name in f.keys():  # noqa: SIM118 (a safe_open handle is not a mapping)
                    shapes[name] = list(f.get_slice(name).get_shape())
        except (OSError, SafetensorError) as err:
            raise LfWrapError(f"{file}: not a readable safetensors file ({err})") from None
    return shapes


def count_parameters(path: Path) -> int | None:
    """Parameters in a model folder, from its safetensors headers; None when it has no readable one."""
    try:
        shapes = tensor_shapes(path)
    except LfWrapError:
        return None
    if not shapes:
        return None
    total = 0
    for shape in shapes.values():
        count = 1
        for dim in shape:
            count *= int(dim)
        total += count
    return total


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
