"""Regenerate `llamafactory_schema.json` from the installed LLaMA-Factory.

Run with the *training* environment's Python (the one that has llamafactory):

    .venvs/train/bin/python lf_wrap/engines/inside/gen_llamafactory_schema.py

It records every argument LLaMA-Factory's train and export parsers accept (name, type,
default, choices) and every chat template name, so lf-wrap can check a config and
suggest the right key in milliseconds, without importing LLaMA-Factory.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
import typing
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "llamafactory_schema.json"  # engines/, where schema.py reads it


def _describe(tp: Any) -> dict[str, Any]:
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    nullable = type(None) in typing.get_args(tp)
    if origin is typing.Literal:
        return {"type": "choice", "choices": list(typing.get_args(tp))}
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and len(args) == 1:
        inner = _describe(args[0])
        inner["nullable"] = True
        return inner
    if tp in (int, float, bool, str):
        return {"type": tp.__name__, "nullable": nullable}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"type": "choice", "choices": [m.value for m in tp]}
    return {"type": "any", "nullable": nullable}


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        try:
            value = f.default_factory()
        except Exception:
            return None
    else:
        return None
    if hasattr(value, "value"):
        value = value.value
    try:
        json.dumps(value)
    except TypeError:
        return repr(value)
    return value


def main() -> None:
    import llamafactory
    from llamafactory.data.template import TEMPLATES
    from llamafactory.hparams import parser as hp

    keys: dict[str, dict[str, Any]] = {}
    for group, classes in (("train", hp._TRAIN_ARGS), ("export", hp._INFER_ARGS)):
        for cls in classes:
            hints = typing.get_type_hints(cls)
            for f in dataclasses.fields(cls):
                if not f.init:
                    continue
                entry = keys.setdefault(
                    f.name, {**_describe(hints.get(f.name, Any)), "default": _default(f), "used_by": []}
                )
                entry["used_by"].append(group)
                entry["used_by"] = sorted(set(entry["used_by"]))
    data = {
        "_generated_by": "lf_wrap/engines/inside/gen_llamafactory_schema.py (do not edit by hand)",
        "llamafactory_version": llamafactory.__version__,
        "templates": sorted(TEMPLATES),
        "keys": dict(sorted(keys.items())),
    }
    OUT.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}: {len(keys)} keys, {len(TEMPLATES)} templates", file=sys.stderr)


if __name__ == "__main__":
    main()
