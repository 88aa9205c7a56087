"""Which LLaMA-Factory chat template fits a model folder, from what the folder says.

`detect(model_dir)` reads the model's own chat template (tokenizer_config.json's
`chat_template`, chat_template.jinja or chat_template.json) and config.json's
`model_type`/`architectures`, and returns the LLaMA-Factory template name, the reason, and
the runner-ups.  It only reads files.  A choice is a first guess that `lf-wrap train`
then proves: its template check renders the same conversation with LLaMA-Factory's
template and with the model's own, and refuses to train when they differ.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lf_wrap.engines import schema
from lf_wrap.util.errors import LfWrapError
from lf_wrap.util.files import read_json_object


@dataclass(frozen=True)
class Detection:
    template: str  # a LLaMA-Factory template name
    reason: str  # what in the folder decided it
    candidates: tuple[str, ...] = ()  # runner-ups, best first

    @property
    def runner_up(self) -> str | None:
        return self.candidates[0] if self.candidates else None


def chat_template_text(model_dir: Path) -> str:
    """All chat template text the folder holds (empty if none)."""
    texts: list[str] = []
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file():
        texts.append(jinja.read_text(encoding="utf-8", errors="replace"))
    for name in ("chat_template.json", "tokenizer_config.json"):
        value = _read_json(model_dir / name).get("chat_template")
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, list):  # named templates: [{"name": ..., "template": ...}]
            texts.extend(t["template"] for t in value if isinstance(t, dict) and isinstance(t.get("template"), str))
    return "\n".join(texts)


def _read_json(path: Path) -> dict[str, Any]:
    """What a file of the folder says ({} where it says nothing readable: this only makes a guess)."""
    try:
        return read_json_object(path) if path.is_file() else {}
    except LfWrapError:
        return {}


# One rule per family: (test on chat template text + model_type, template, runner-ups, why).
Rule = tuple[Callable[[str, str], bool], str, tuple[str, ...], str]
RULES: list[Rule] = [
    (lambda t, m: "<｜Assistant｜>" in t and "<think>" in t, "deepseekr1", ("deepseek3",),
     "DeepSeek's <｜Assistant｜> turns with <think> tags"),
    (lambda t, m: "<｜Assistant｜>" in t, "deepseek3", ("deepseekr1",), "DeepSeek's <｜Assistant｜> turns"),
    (lambda t, m: "<|start_header_id|>" in t, "llama3", ("llama4",), "Llama 3's <|start_header_id|> headers"),
    (lambda t, m: "<|im_sep|>" in t, "phi4", ("chatml",), "Phi-4's <|im_start|>…<|im_sep|> turns"),
    (lambda t, m: "<|im_start|>" in t and (m.startswith("qwen3") or "<think>" in t), "qwen3",
     ("qwen3_nothink", "qwen"), "ChatML <|im_start|> turns with <think> tags (Qwen3 style)"),
    (lambda t, m: "<|im_start|>" in t and m.startswith("qwen"), "qwen", ("qwen3", "chatml"),
     "ChatML <|im_start|> turns and a Qwen model_type"),
    (lambda t, m: "<|im_start|>" in t, "chatml", ("qwen",), "ChatML <|im_start|> turns"),
    (lambda t, m: "<start_of_turn>" in t and m.startswith("gemma3"), "gemma3", ("gemma",),
     "Gemma's <start_of_turn> turns and model_type gemma3"),
    (lambda t, m: "<start_of_turn>" in t and m.startswith("gemma2"), "gemma2", ("gemma",),
     "Gemma's <start_of_turn> turns and model_type gemma2"),
    (lambda t, m: "<start_of_turn>" in t, "gemma", ("gemma2", "gemma3"), "Gemma's <start_of_turn> turns"),
    (lambda t, m: "[INST]" in t and "<<SYS>>" in t, "llama2", ("mistral",), "Llama 2's [INST] and <<SYS>> markers"),
    (lambda t, m: "[INST]" in t, "mistral", ("llama2",), "Mistral's [INST] markers"),
    (lambda t, m: "<|assistant|>" in t and "<|end|>" in t, "phi", ("phi_small",),
     "Phi-3's <|assistant|>…<|end|> turns"),
    (lambda t, m: "<|assistant|>" in t, "zephyr", ("phi",), "Zephyr's <|assistant|> turns"),
]  # fmt: skip

# Without a chat template in the folder: the model_type alone (a base model, usually).
BY_MODEL_TYPE: dict[str, tuple[str, tuple[str, ...]]] = {
    "qwen2": ("qwen", ("qwen3",)),
    "qwen2_moe": ("qwen", ("qwen3",)),
    "qwen3": ("qwen3", ("qwen3_nothink", "qwen")),
    "qwen3_moe": ("qwen3", ("qwen3_nothink", "qwen")),
    "gemma": ("gemma", ("gemma2",)),
    "gemma2": ("gemma2", ("gemma",)),
    "gemma3": ("gemma3", ("gemma",)),
    "gemma3_text": ("gemma3", ("gemma",)),
    "mistral": ("mistral", ("llama2",)),
    "phi3": ("phi", ("phi_small",)),
    "deepseek_v3": ("deepseek3", ("deepseekr1",)),
}


def detect(model_dir: Path) -> Detection:
    """The LLaMA-Factory template for the model in `model_dir`; LfWrapError if unknown."""
    config = _read_json(model_dir / "config.json")
    model_type = str(config.get("model_type") or "").lower()
    arch = ", ".join(str(a) for a in config.get("architectures") or [])
    text = chat_template_text(model_dir)
    known = set(schema.templates())
    what = f"model_type {model_type!r}" + (f" ({arch})" if arch else "")
    found: Detection | None = None
    if text:
        for test, template, others, why in RULES:
            if template in known and test(text, model_type):
                found = Detection(template, f"the model's chat template has {why}; {what}", _known(others, known))
                break
    elif model_type in BY_MODEL_TYPE:
        template, others = BY_MODEL_TYPE[model_type]
        found = Detection(template, f"{what} in config.json (the folder has no chat template)", _known(others, known))
    if found is not None:
        return _family_first(found, family_templates(model_dir, config, known))
    seen = "its chat template matches no known family" if text else "it has no chat template"
    raise LfWrapError(
        f"{model_dir}: cannot tell which LLaMA-Factory chat template fits this model ({what}; {seen}).\n"
        f"  LLaMA-Factory's templates: {', '.join(sorted(known))}",
        hint="pass --template NAME (the model card usually names its chat format; "
        "`lf-wrap render --list-templates` lists the names); `lf-wrap train` then checks the choice",
    )


# Template names that describe a format, not a model family: never matched against a model's name.
FORMAT_TEMPLATES = frozenset({"alpaca", "chatml", "default", "empty", "vicuna", "zephyr", "cpm", "ziya", "intern"})


def _names(model_dir: Path, config: dict[str, Any]) -> list[str]:
    """What the model is called: its folder, config.json's _name_or_path, an imported file's name."""
    names = [model_dir.resolve().name, str(config.get("_name_or_path") or "")]
    record = _read_json(model_dir / "lf-wrap-import.json")
    names += [Path(str(record.get("source") or "")).name, str((record.get("facts") or {}).get("name") or "")]
    return [n for n in names if n]


def family_templates(model_dir: Path, config: dict[str, Any], known: set[str]) -> list[str]:
    """LLaMA-Factory templates named for the model's family: a template name that begins one of
    the words of the model's names ("smollm2" in SmolLM2-135M-Instruct); longest first."""
    words = {w for n in _names(model_dir, config) for w in re.split(r"[^a-z0-9]+", n.lower()) if w}
    fits = {t for t in known if len(t) >= 4 and t not in FORMAT_TEMPLATES and any(w.startswith(t) for w in words)}
    return sorted(fits, key=lambda t: (-len(t), t))


def _family_first(found: Detection, family: list[str]) -> Detection:
    """Where the chat template shows only a format (ChatML, say), the family's own template goes
    first (the template check's ties keep this order) and the format next. Where its markers name
    a family (DeepSeek-R1's <think> turns in DeepSeek-R1-Distill-Qwen), they win over the name's
    words and the name's templates only join the runner-ups."""
    if not family or family[0] == found.template:
        return found
    if found.template not in FORMAT_TEMPLATES:
        rest = tuple(dict.fromkeys(t for t in (*found.candidates, *family) if t != found.template))
        return Detection(found.template, found.reason, rest)
    rest = tuple(dict.fromkeys(t for t in (found.template, *found.candidates, *family[1:]) if t != family[0]))
    reason = (
        f"its name says family {family[0]!r} (LLaMA-Factory's template of that name, checked first); {found.reason}"
    )
    return Detection(family[0], reason, rest)


def _known(names: tuple[str, ...], known: set[str]) -> tuple[str, ...]:
    return tuple(n for n in names if n in known)


# -- proving the guess: the template check on each candidate ---------------------------------
@dataclass(frozen=True)
class Candidate:
    template: str
    verdict: str
    harmful: bool
    settings: dict[str, Any]  # train settings that make it agree (e.g. default_system), proven
    serve_training: bool  # the only working fix: serve with the training template
    agree_tokens: int = 0  # harmful: how many tokens agree before the first counted difference

    @property
    def rank(self) -> int:
        """0 agrees as is, 1 harmless difference, 2 agrees with settings, 3 only served with the training template,
        4 nothing works."""
        if not self.harmful:
            return 0 if self.verdict in ("agree", "no_chat_template") else 1
        if self.settings:
            return 2
        return 3 if self.serve_training else 4

    def describe(self) -> str:
        if not self.harmful:
            return self.verdict
        if self.settings:
            extra = ", ".join(f"{k}={v!r}" for k, v in self.settings.items())
            return f"{self.verdict}, agrees with {extra}"
        return f"{self.verdict}, agrees only served with the training template" if self.serve_training else self.verdict


@dataclass(frozen=True)
class Proven:
    """The best-agreeing candidate and the runner-up, as the template check found them."""

    best: Candidate
    runner_up: Candidate | None
    guess: Detection

    @property
    def close_call(self) -> bool:
        return (
            self.runner_up is not None
            and self.runner_up.rank == self.best.rank
            and self.runner_up.agree_tokens == self.best.agree_tokens
        )

    def reason(self) -> str:
        why = f"template check: {self.best.describe()}"
        if self.best.template != self.guess.template:
            why += f" (the folder suggested {self.guess.template!r})"
        if self.runner_up is not None:
            close = "close call; " if self.close_call else ""
            why += f"; {close}runner-up {self.runner_up.template!r}: {self.runner_up.describe()}"
        return why


def _candidate(check: dict[str, Any]) -> Candidate:
    fixes = check.get("fixes") or []
    name = check["template"]
    same = [f for f in fixes if f.get("works") and f["kind"] == "settings" and f["settings"]["template"] == name]
    settings = {k: v for k, v in same[0]["settings"].items() if k != "template"} if same else {}
    serve_training = any(f["kind"] == "serve_training_template" and f.get("works") for f in fixes)
    # judged against the model's own template, even where LLaMA-Factory's export would replace it
    harmful = [c for c in check.get("conversations", []) if c.get("harmful")]
    agree = min((int(c.get("index") or 0) for c in harmful), default=0)
    refused = bool(check.get("harmful")) and check.get("verdict") == "template_refuses"
    return Candidate(name, check.get("verdict", "?"), bool(harmful) or refused, settings, serve_training, agree)


def prove(model_dir: Path, guess: Detection, engine: Any, data: dict[str, Any] | None = None) -> Proven:
    """Run the template check on the guess and its runner-ups (one LLaMA-Factory import) and
    keep the one that agrees best; ties keep the folder's order."""
    names = [guess.template, *guess.candidates]
    jobs = [{"model_dir": str(model_dir), "template": n, "fixes": True, "data": data or {}} for n in names]
    results = engine.probe_jobs(jobs, cache=True)["results"]
    candidates = [_candidate(r) for r in results if r.get("status") not in ("unknown_template", "template_error")]
    if not candidates:
        raise LfWrapError(
            f"{model_dir}: LLaMA-Factory cannot load any of the templates {names} for this model",
            hint="pass --template NAME (`lf-wrap render --list-templates` lists them)",
        )
    ranked = sorted(candidates, key=lambda c: (c.rank, -c.agree_tokens, names.index(c.template)))
    return Proven(ranked[0], ranked[1] if len(ranked) > 1 else None, guess)
