"""Render LLaMA-Factory YAML and dataset_info.json entries from the Jinja templates.

Safety rules (see copier): a `SandboxedEnvironment` with `StrictUndefined`, so a missing
variable is an error and never an empty value; every value goes through a quoting filter
(`yaml` / `json`), so a name containing `:`, `#`, quotes, newlines or `{{ }}` stays one
value; and every rendered file is parsed back and compared with what was meant.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import yaml
from jinja2 import FileSystemLoader, StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from lf_wrap import __version__
from lf_wrap.util.errors import LfWrapError
from lf_wrap.util.paths import templates_dir

YAML_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_YAML_SAFE_CHAR = re.compile(r"[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


# -- quoting ------------------------------------------------------------------------
def _yaml_str(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif _YAML_SAFE_CHAR.match(ch) or ch in "\x85\u2028\u2029":
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def to_yaml(value: Any) -> str:
    """One YAML flow value that parses back to exactly `value` (the `yaml` filter)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        if "e" in text and "." not in text.split("e")[0]:  # YAML 1.1 needs "1.0e-05"
            mantissa, exp = text.split("e")
            text = f"{mantissa}.0e{exp}"
        return text
    if isinstance(value, str):
        return _yaml_str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(to_yaml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_yaml_str(str(k))}: {to_yaml(v)}" for k, v in value.items()) + "}"
    raise LfWrapError(f"cannot write a value of type {type(value).__name__} into YAML: {value!r}")


def to_json(value: Any) -> str:
    """The `json` filter: a JSON value (strings escaped, non-ASCII kept readable)."""
    return json.dumps(value, ensure_ascii=False)


def yaml_key(key: str) -> str:
    if not isinstance(key, str) or not YAML_KEY.match(key):
        raise LfWrapError(f"{key!r} is not a valid config key", hint="keys are letters, digits, '_', '.', '-'")
    return key


# -- environment --------------------------------------------------------------------
@cache
def _env(root: str) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=FileSystemLoader(root),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["yaml"] = to_yaml
    env.filters["json"] = to_json
    env.filters["key"] = yaml_key
    return env


_REQUIRED: Any = object()


@dataclass
class Params:
    """Values handed to a YAML template: `param(name)` writes the value given for `name`.

    Templates carry no values of their own (lf_wrap/project/defaults.py holds the defaults). Values
    that no template line used are rendered by `rest()` at the end, so any LLaMA-Factory
    key can be set from `--set` without a template knowing it. Where `origins` names a
    value's source, it is written beside the value as a YAML comment.
    """

    overrides: dict[str, Any]
    origins: dict[str, str] = field(default_factory=dict)
    used: list[str] = field(default_factory=list)
    rendered: dict[str, Any] = field(default_factory=dict)

    def param(self, name: str, default: Any = _REQUIRED) -> str:
        value = self.overrides.get(name, default)
        if value is _REQUIRED:
            raise LfWrapError(f"the template needs a value for {name!r} and none was given")
        self.used.append(name)
        self.rendered[name] = value
        return self._line(name, value)

    def rest(self) -> str:
        lines = []
        for name, value in self.overrides.items():
            if name in self.used:
                continue
            self.used.append(name)
            self.rendered[name] = value
            lines.append(self._line(name, value))
        return "\n".join(lines)

    def _line(self, name: str, value: Any) -> str:
        line = f"{yaml_key(name)}: {to_yaml(value)}"
        origin = self.origins.get(name)
        return f"{line:<{COMMENT_COLUMN}}  # {comment_text(origin)}" if origin else line


COMMENT_COLUMN = 40
_LINE_BREAKS = re.compile(r"[\r\n\x85\u2028\u2029]")


def comment_text(text: str) -> str:
    """`text` made safe to follow a `#` on one YAML line (no line breaks, printable only)."""
    return _YAML_SAFE_CHAR.sub("?", _LINE_BREAKS.sub(" ", text)).strip()


class _UniqueKeyLoader(yaml.SafeLoader):
    pass


def _no_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise LfWrapError(f"rendered YAML has the key {key!r} twice (line {key_node.start_mark.line + 1})")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def header(template: str, command: str) -> str:
    return f"# Generated by lf-wrap {__version__} from templates/{template}\n# Used by: {command}\n"


@dataclass
class Rendered:
    text: str
    values: dict[str, Any]
    template: str


def render_yaml(
    template: str,
    overrides: dict[str, Any],
    context: dict[str, Any],
    command: str,
    origins: dict[str, str] | None = None,
) -> Rendered:
    """Render a YAML template and prove the result parses to exactly the intended keys.

    `origins` (key -> where the value came from) become YAML comments beside the values.
    """
    params = Params(dict(overrides), dict(origins or {}))
    try:
        tpl = _env(str(templates_dir())).get_template(template)
        body = tpl.render(p=params.param, rest=params.rest, **context)
    except TemplateError as err:
        raise LfWrapError(f"templates/{template}: {err}", hint="a template variable is missing or misspelt") from err
    text = header(template, command) + body
    if not text.endswith("\n"):
        text += "\n"
    try:
        parsed = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        raise LfWrapError(f"templates/{template}: rendered YAML does not parse: {err}") from err
    if parsed != params.rendered:
        extra = set(parsed or {}) ^ set(params.rendered)
        raise LfWrapError(
            f"templates/{template}: rendered YAML does not match the intended values"
            + (f" (keys differ: {sorted(extra)})" if extra else ""),
            hint="this is a bug in lf-wrap or in an edited template",
        )
    return Rendered(text=text, values=parsed, template=template)


def render_json(template: str, context: dict[str, Any]) -> Any:
    """Render a JSON template (dataset_info.json entries) and parse it back."""
    try:
        text = _env(str(templates_dir())).get_template(template).render(**context)
    except TemplateError as err:
        raise LfWrapError(f"templates/{template}: {err}", hint="a template variable is missing or misspelt") from err
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise LfWrapError(f"templates/{template}: rendered JSON does not parse: {err}") from err


def list_templates(subdir: str) -> list[str]:
    root = templates_dir() / subdir
    return sorted(f"{subdir}/{p.name}" for p in root.glob("*.j2"))
