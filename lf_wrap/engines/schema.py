"""LLaMA-Factory's argument names, types and template names, without importing it.

`llamafactory_schema.json` is generated from the installed LLaMA-Factory by
`gen_llamafactory_schema.py`; checking a key against it takes microseconds, while
importing LLaMA-Factory takes seconds.
"""

from __future__ import annotations

import difflib
import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml

SCHEMA_PATH = Path(__file__).with_name("llamafactory_schema.json")


@cache
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def arguments(group: str | None = None) -> dict[str, dict[str, Any]]:
    all_keys: dict[str, dict[str, Any]] = schema()["keys"]
    if group is None:
        return all_keys
    return {k: v for k, v in all_keys.items() if group in v["used_by"]}


def templates() -> list[str]:
    return list(schema()["templates"])


def suggest(word: str, choices: list[str] | set[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


class CoerceError(ValueError):
    pass


def coerce(key: str, value: Any) -> Any:
    """Convert `value` (from YAML or a --set string) to the type LLaMA-Factory expects."""
    info = arguments()[key]
    kind = info["type"]
    if value is None:
        if info.get("nullable") or kind == "any":
            return None
        raise CoerceError(f"must not be null (expected {kind})")
    if kind == "choice":
        choices = info["choices"]
        if value in choices:
            return value
        if isinstance(value, str):
            hint = suggest(value, [str(c) for c in choices])
            raise CoerceError(
                f"must be one of {', '.join(map(str, choices))}, got {value!r}" + (f"; {hint}" if hint else "")
            )
        raise CoerceError(f"must be one of {', '.join(map(str, choices))}, got {value!r}")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise CoerceError(f"must be true or false, got {value!r}")
    if kind == "int":
        if isinstance(value, bool):
            raise CoerceError(f"must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise CoerceError(f"must be an integer, got {value!r}")
    if kind == "float":
        if isinstance(value, bool):
            raise CoerceError(f"must be a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise CoerceError(f"must be a number, got {value!r}")
    if kind == "str":
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise CoerceError(f"must be a string, got {type(value).__name__}")
    return value


def parse_cli_value(key: str, raw: str) -> Any:
    """A --set value: strings stay verbatim for string keys, else read as YAML."""
    info = arguments().get(key)
    if info is not None and info["type"] == "str":
        return raw
    try:
        return yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        return raw
