"""The Ollama Modelfile beside an exported GGUF, with a TEMPLATE that is proven, not guessed.

Ollama does not run a GGUF's Jinja chat template: it needs a Go template (`TEMPLATE`), and
without one it guesses from a list of known templates or sends the text as it is. lf-wrap writes
the Go template from the chat template the GGUF carries (the one the run serves, which the
template check proved renders what LLaMA-Factory trained on):

1. the Jinja template is rendered (as transformers renders it) for a few conversations with
   marker texts, and the text around the markers gives the turn pieces: the text before the
   first user turn with and without a system prompt, before and after each user and assistant
   turn, and the generation prompt. Templates that are not built of such pieces (dates, tools,
   thinking blocks that depend on the turn) give inconsistent pieces: then no TEMPLATE is claimed.
2. The pieces become one Go template over Ollama's data (`.System`, `.Messages` with `.Role` and
   `.Content`: ollama/template/template.go, Execute).
3. Proof: the real Go text/template (engines/inside/ollama_template.go, run with `go run`) renders
   it for the template-check conversations (single turn, a system prompt, several turns, and the
   run's own rows), with Ollama's data, and every text must equal the Jinja template's. A template
   that differs anywhere is not written.

`PARAMETER stop` names every token that ends an answer; the sampling defaults are the model's
generation_config.json (do_sample false: temperature 0), as vLLM applies them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lf_wrap.util.errors import LfWrapError

GO_PROGRAM = Path(__file__).resolve().parents[1] / "engines" / "inside" / "ollama_template.go"
U1, A1, U2, A2, U3, SYS = "\x01U1\x01", "\x01A1\x01", "\x01U2\x01", "\x01A2\x01", "\x01U3\x01", "\x01SYS\x01"
CONVERSATIONS: list[list[dict[str, str]]] = [
    [{"role": "user", "content": "Who are you?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Who are you?"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
     {"role": "user", "content": "What can you do?"}],
    [{"role": "system", "content": "You answer in French."}, {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "Bonjour !"}, {"role": "user", "content": "Who made you?"}],
]  # fmt: skip


@dataclass
class Pieces:
    """A turn-based chat template, piece by piece (text around each turn)."""

    head: str  # before the first user turn, no system prompt (the default system block, if any)
    system_before: str  # before a system prompt's text
    system_after: str  # after it, up to the first user turn
    user_before: str
    user_after: str
    assistant_before: str  # an earlier assistant turn's opening
    assistant_after: str
    generation: str  # the generation prompt (a thinking template's may differ from assistant_before)
    default_system: str | None = None  # head == system_before + this + system_after

    def go_template(self) -> str:
        """The pieces as one Go template over Ollama's data; no trim markers, so every piece is exact."""
        lit = _go_literal
        return (
            "{{ if .System }}" + lit(self.system_before) + "{{ .System }}" + lit(self.system_after)
            + "{{ else }}" + lit(self.head) + "{{ end }}"
            + '{{ range .Messages }}{{ if eq .Role "user" }}' + lit(self.user_before) + "{{ .Content }}"
            + lit(self.user_after) + '{{ else if eq .Role "assistant" }}' + lit(self.assistant_before)
            + "{{ .Content }}" + lit(self.assistant_after) + "{{ end }}{{ end }}" + lit(self.generation)
        )  # fmt: skip


@dataclass
class Modelfile:
    text: str
    template_proven: bool
    why_not: str | None = None  # why no TEMPLATE (then Ollama would guess: the Modelfile says so)
    compared: int = 0
    facts: dict[str, Any] = field(default_factory=dict)


def _go_literal(text: str) -> str:
    """Text for a Go template: as it is, unless it holds an action delimiter (then a quoted string)."""
    if "{{" in text or "}}" in text:
        return "{{ " + json.dumps(text) + " }}"  # a JSON string is a valid Go string literal
    return text


def render_jinja(
    template: str, messages: list[dict[str, str]], generation_prompt: bool, kwargs: dict[str, Any] | None = None
) -> str:
    """Render a Hugging Face chat template as transformers does (sandboxed, trim/lstrip blocks), with
    the run's chat-template kwargs (e.g. enable_thinking: false)."""
    from jinja2 import TemplateError
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = lambda v, indent=None: json.dumps(v, ensure_ascii=False, indent=indent)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(**{"bos_token": "", "eos_token": "", **(kwargs or {})},
                                            messages=messages, add_generation_prompt=generation_prompt)  # fmt: skip


def pieces(template: str, kwargs: dict[str, Any] | None = None) -> Pieces | str:
    """The turn pieces of `template` (rendered with `kwargs`), or why it is not built of them."""
    from jinja2 import TemplateError

    def render(messages: list[dict[str, str]], gen: bool = False) -> str:
        return render_jinja(template, messages, gen, kwargs)

    def between(text: str, a: str, b: str) -> str:
        return text[text.index(a) + len(a) : text.index(b)]

    u, a, s = "user", "assistant", "system"
    try:
        one = render([{"role": u, "content": U1}])
        one_gen = render([{"role": u, "content": U1}], True)
        three = render([{"role": u, "content": U1}, {"role": a, "content": A1}, {"role": u, "content": U2}])
        five = render([{"role": u, "content": U1}, {"role": a, "content": A1}, {"role": u, "content": U2},
                       {"role": a, "content": A2}, {"role": u, "content": U3}])  # fmt: skip
        system = render([{"role": s, "content": SYS}, {"role": u, "content": U1}])
    except (TemplateError, ValueError, TypeError) as err:
        return f"the chat template does not render here ({type(err).__name__}: {err})"
    if not all(m in three for m in (U1, A1, U2)) or SYS not in system or U1 not in one:
        return "the chat template leaves out part of a conversation"
    user_after = one[one.index(U1) + len(U1) :]
    generation = one_gen[len(one) :] if one_gen.startswith(one) else None
    if generation is None:
        return "the generation prompt is not text added at the end"
    before_assistant = between(three, U1, A1)
    if not before_assistant.startswith(user_after):
        return "an earlier user turn ends differently from the last one"
    assistant_to_user = between(three, A1, U2)
    first = one[: one.index(U1)]
    common = _common_prefix(first[::-1], assistant_to_user[::-1])[::-1]  # the user turn's opening
    if not common:
        return "no text opens every user turn"
    pieces_ = Pieces(
        head=first[: len(first) - len(common)],
        system_before=system[: system.index(SYS)],
        system_after="",
        user_before=common,
        user_after=user_after,
        assistant_before=before_assistant[len(user_after) :],
        assistant_after=assistant_to_user[: len(assistant_to_user) - len(common)],
        generation=generation,
    )
    to_user = system[system.index(SYS) + len(SYS) : system.index(U1)]
    if not to_user.endswith(common):
        return "a system prompt changes how the first user turn opens"
    pieces_.system_after = to_user[: len(to_user) - len(common)]
    # Where a user turn "opens" is a choice (the text before it always ends the same way): the
    # opening that reads like the assistant's (`<|im_start|>`...) keeps the template readable.
    opening = pieces_.assistant_before
    best = max(range(len(common)), key=lambda k: (len(_common_prefix(common[k:], opening)), -k))
    if _common_prefix(common[best:], opening):
        moved = common[:best]
        pieces_.user_before = common[best:]
        pieces_.head += moved
        pieces_.system_after += moved
        pieces_.assistant_after += moved
    if pieces_.head.startswith(pieces_.system_before) and pieces_.head.endswith(pieces_.system_after):
        inner = pieces_.head[len(pieces_.system_before) : len(pieces_.head) - len(pieces_.system_after)]
        pieces_.default_system = inner if pieces_.head and inner else None
    if _expected(pieces_, [{"role": u, "content": U1}, {"role": a, "content": A1}, {"role": u, "content": U2},
                           {"role": a, "content": A2}, {"role": u, "content": U3}]) != five:  # fmt: skip
        return "later turns are written differently from the first ones (e.g. earlier reasoning dropped)"
    return pieces_


def _common_prefix(a: str, b: str) -> str:
    """The longest text both strings start with (character by character)."""
    n = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return a[:n]


def _expected(p: Pieces, messages: list[dict[str, str]], system: str = "") -> str:
    """What the pieces give for `messages` (no generation prompt): the self-check of `pieces`."""
    text = (p.system_before + system + p.system_after) if system else p.head
    for m in messages:
        user = m["role"] == "user"
        text += (p.user_before if user else p.assistant_before) + m["content"]
        text += p.user_after if user else p.assistant_after
    return text


def go_render(go_template: str, conversations: list[list[dict[str, str]]]) -> list[str]:
    """Render `go_template` with Go's text/template and Ollama's data for each conversation
    (engines/inside/ollama_template.go); raises LfWrapError when Go is missing or the template fails."""
    go = shutil.which("go")
    if go is None:
        raise LfWrapError("go not found: the Modelfile's TEMPLATE is proven with Go's own text/template",
                          hint="install Go (apt-get install golang-go)")  # fmt: skip
    payload = json.dumps({"template": go_template, "conversations": conversations})
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GO111MODULE": "off", "GOTOOLCHAIN": "local"}
    env.setdefault("GOCACHE", str(Path.home() / ".cache" / "go-build"))
    done = subprocess.run([go, "run", str(GO_PROGRAM)], input=payload, capture_output=True, text=True, env=env,
                          check=False, timeout=300)  # fmt: skip
    if done.returncode != 0:
        raise LfWrapError(f"Go could not render the Modelfile's TEMPLATE: {done.stderr.strip()[-800:]}")
    rendered: list[str] = json.loads(done.stdout)
    return rendered


def write(
    gguf: Path,
    template: str | None,
    *,
    stops: list[str],
    sampling: dict[str, float],
    rows: list[list[dict[str, str]]],
    kwargs: dict[str, Any] | None = None,
    caveat: str | None = None,
) -> Modelfile:
    """The Modelfile for `gguf` (written beside it): TEMPLATE proven against `template` (the GGUF's
    Jinja chat template) for the check conversations and `rows`, stops, sampling defaults."""
    lines = [
        f"# Ollama Modelfile for {gguf.name}, written by `lf-wrap export --format gguf`.",
        f"#   ollama create {gguf.name.split('.')[0]} -f Modelfile    (in this folder: FROM is relative to it)",
        f"FROM ./{gguf.name}",
    ]
    result = Modelfile("", False)
    found = pieces(template, kwargs) if template is not None else "the model has no chat template"
    if isinstance(found, Pieces):
        go_template = found.go_template()
        conversations = CONVERSATIONS + rows
        want = [render_jinja(template or "", c, True, kwargs) for c in conversations]
        got = go_render(go_template, conversations)
        bad = next((i for i, (w, g) in enumerate(zip(want, got, strict=True)) if w != g), None)
        if bad is None and '"""' not in go_template:
            result.template_proven, result.compared = True, len(conversations)
            lines += [
                f"# TEMPLATE: Go's text/template renders, for {len(conversations)} conversations (one turn, a "
                "system prompt, several turns, the run's rows),",
                "# exactly the text of the chat template the GGUF carries (the one the run was checked with).",
                f'TEMPLATE """{go_template}"""',
            ]
            if caveat:  # the chat template itself agrees with training only for some conversations
                lines.insert(-1, f"# {caveat}")
            if found.default_system:
                lines.append(f'SYSTEM """{found.default_system}"""')
        else:
            result.why_not = (f"Go's rendering differs for {conversations[bad][-1]['content']!r}" if bad is not None
                              else 'the template holds """')  # fmt: skip
    else:
        result.why_not = found
    if not result.template_proven:
        lines += [f"# No TEMPLATE: {result.why_not}. Ollama will pick one itself: check its answers before use."]
    lines += [f'PARAMETER stop "{s}"' for s in dict.fromkeys(stops) if '"' not in s]
    lines += [f"PARAMETER {name} {value:g}" for name, value in sampling.items()]
    result.text = "\n".join(lines) + "\n"
    result.facts = {"template_proven": result.template_proven, "why_not": result.why_not,
                    "conversations_compared": result.compared, "stops": list(dict.fromkeys(stops)),
                    "caveat": caveat}  # fmt: skip
    return result
