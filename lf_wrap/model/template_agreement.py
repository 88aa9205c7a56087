"""Will the model answer the way it was trained? The template check's answer, judged.

The template check (engines/inside/llamafactory_probe.py, run in the training environment)
compares what LLaMA-Factory trains on with what the model's chat template serves, for two
two-turn conversations; this module turns its answer into what `lf-wrap template check`,
`train`, `serve --chat-template training` and `export --chat-template training` say and do
(project/chat_template.py runs it for a project).

Verdicts. Harmless: `agree`; `same_stream_different_boundary` (prompt + answer are the same
tokens, only where the prompt stops differs, e.g. DeepSeek-R1's `<think>\\n`);
`differs_answer_end` when the difference comes after the token where generation stops;
`template_refuses` when the model's template raises on one conversation (e.g. gemma-2 and a
system prompt) and the others agree; `no_chat_template` (LLaMA-Factory's export writes one).
Harmful: `differs_prompt` (also the same text cut inside a token, as R1's `<think>\n` is),
`differs_system_prompt`, `differs_earlier_turns`, `differs_answer_end` before the stop
token: the served model would see a prompt it was never trained on — but only for the kinds
of conversation the data trains (a single-turn dataset without system prompts never
teaches earlier turns or a system block; such differences are shown, not counted).
A project with `chat_template: training` serves the template made from LLaMA-Factory's,
which the check verifies instead.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from lf_wrap.engines import schema
from lf_wrap.util.errors import LfWrapError
from lf_wrap.util.files import atomic_write, read_json_object

# LLaMA-Factory data arguments that change what a conversation is trained as.
OPTION_KEYS = ("default_system", "enable_thinking", "mask_history", "preserve_thinking")
JINJA_NAME = "chat_template.training.jinja"
HARMFUL = ("differs_prompt", "differs_system_prompt", "differs_earlier_turns", "differs_answer_end")

MEANING = {
    "agree": "LLaMA-Factory trains on exactly what the model's chat template serves",
    "same_stream_different_boundary": "prompt + answer are the same tokens; only where the prompt stops differs",
    "differs_prompt": "the prompt the model is served differs from the one it is trained on",
    "differs_system_prompt": "the system prompt differs between training and serving",
    "differs_earlier_turns": "earlier turns of a conversation are served differently than they are trained",
    "differs_answer_end": "the end of an answer differs",
    "template_refuses": "the model's chat template refuses a conversation",
    "no_chat_template": "the model has no chat template; LLaMA-Factory's export writes the training template",
}


def known_template(name: str) -> None:
    names = schema.templates()
    if name not in names:
        hint = schema.suggest(name, names)
        raise LfWrapError(
            f"{name!r} is not a LLaMA-Factory chat template" + (f"; {hint}" if hint else ""),
            hint="`lf-wrap render --list-templates` lists them; set `template:` in lf-wrap.yaml or pass --template",
        )


def bad_input(check: dict[str, Any], model_dir: Path) -> None:
    """The probe's answers that are the user's input at fault: one message each, exit 2."""
    status = check.get("status")
    if status == "unknown_template":
        close = check.get("suggestions") or []
        raise LfWrapError(
            f"{check['template']!r} is not a LLaMA-Factory chat template"
            + (f"; did you mean {close[0]!r}?" if close else ""),
            hint="`lf-wrap render --list-templates` lists them",
        )
    if status == "tokenizer_error":
        raise LfWrapError(
            f"{model_dir}: its tokenizer does not load ({check.get('error')})",
            hint="the folder needs tokenizer.json or the tokenizer files of its model; pass the model folder "
            "itself (--model DIR)",
        )
    if status == "template_error":
        raise LfWrapError(
            f"LLaMA-Factory refuses its {check['template']!r} template for {model_dir}"
            + (f" with {check['options']}" if check.get("options") else "")
            + f": {check.get('error')}",
            hint="pick another template (`lf-wrap render --list-templates`) or change those settings",
        )
    counted = [c for c in check.get("conversations", []) if not c.get("informational")]
    if counted and all(c["verdict"] == "template_refuses" for c in counted):
        errors = sorted({c.get("error", "") for c in counted})
        raise LfWrapError(
            f"{model_dir}: the model's chat template raises on every conversation: {'; '.join(errors)}",
            hint="fix the template (chat_template.jinja or tokenizer_config.json's chat_template), or serve with "
            "LLaMA-Factory's: `lf-wrap serve --chat-template training`",
        )


def _quote(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    text = str(value)
    if "\n" in text or "\t" in text:
        return "$'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\t", "\\t") + "'"
    return shlex.quote(text) if text else "''"


def fix_flags(settings: dict[str, Any], template: str) -> str:
    """`--set` flags for a fix's settings (only what differs from the current template)."""
    parts = []
    if settings.get("template") != template:
        parts.append(f"--set template={settings['template']}")
    for key in OPTION_KEYS:
        if key in settings:
            parts.append(f"--set {key}={_quote(settings[key])}")
    return " ".join(parts)


def _side(label: str, side: dict[str, Any]) -> str:
    before, after = side.get("before", ""), side.get("after", "")
    return f"      {label:<9}" + (f"…{before!r} " if before else "") + "┃" + (f" {after!r}…" if after else " (end)")


def _ids(side: dict[str, Any]) -> str:
    ids, start, at = side.get("ids") or [], side.get("ids_from"), side.get("at")
    if start is None or at is None:
        return " ".join(map(str, ids))
    cut = at - start
    return " ".join([*map(str, ids[:cut]), "┃", *map(str, ids[cut:])])


def conversation_lines(conv: dict[str, Any]) -> list[str]:
    verdict = conv["verdict"]
    tag = " (harmful)" if conv.get("harmful") else ""
    if conv.get("not_counted") and verdict != "agree":
        tag = f" (not counted: {conv['not_counted']})"
    elif conv.get("informational") and verdict != "agree":
        tag = " (only if a client switches thinking; not counted)"
    elif verdict in HARMFUL and not conv.get("harmful"):
        tag = " (not counted for your data)"
    lines = [f"  {conv['title']}: {verdict}{tag}"]
    if verdict == "agree":
        return lines
    if verdict == "template_refuses":
        lines.append(f"      the model's template raises: {conv.get('error')}")
        return lines
    if conv.get("where"):
        lines.append(f"      {conv['where']}")
    training, serving = conv.get("training"), conv.get("serving")
    if training and serving:
        lines.append(_side("training", training))
        lines.append(_side("serving", serving))
        if training.get("ids") is not None:
            lines.append(f"      token ids  training {_ids(training)}")
            lines.append(f"                 serving  {_ids(serving)}")
    if conv.get("note"):
        lines.append(f"      {conv['note']}")
    for note in conv.get("notes", []):
        lines.append(f"      also: {note}")
    return lines


def fix_lines(check: dict[str, Any], limit_other_templates: int = 3) -> list[str]:
    """The verified fixes: settings of the same template first, other templates only when no
    setting of this one works, serving with the training template last."""
    fixes = check.get("fixes") or []
    template = check["template"]
    working = [f for f in fixes if f.get("works") and f["kind"] == "settings"]
    same = [f for f in working if f["settings"].get("template") == template]
    others = [f for f in working if f["settings"].get("template") != template]
    lines = [f"  {fix_flags(f['settings'], template)} -> {f['verdict']}" for f in same]
    shown = [] if same else others[:limit_other_templates]
    lines += [f"  {fix_flags(f['settings'], template)} -> {f['verdict']}" for f in shown]
    if len(others) > len(shown):
        more = len(others) - len(shown)
        lines.append(f"  (with another template: {more} more setting{'s' if more > 1 else ''} that agree, see --json)")
    if not working:
        for fix in [f for f in fixes if not f.get("works")][:2]:
            fixed = ", ".join(fix.get("fixes_conversations", []))
            lines.append(
                f"  partly: {fix_flags(fix['settings'], template)} -> fixes '{fixed}' only, still {fix['verdict']}"
            )
    for fix in fixes:
        if fix["kind"] == "serve_training_template":
            lines.append(
                "  serve with the training template: --set chat_template=training (or `chat_template: training` in "
                f"lf-wrap.yaml: export writes it into the merged model, serve gives it to vLLM) -> {fix['verdict']}"
            )
    if lines:
        lines.insert(0, "fixes (each one checked by running the same comparison again):")
    return lines


def report_lines(check: dict[str, Any], model_dir: Path) -> list[str]:
    """Everything `lf-wrap template check` prints: per conversation, the verdict, the fixes."""
    template, verdict = check["template"], check["verdict"]
    lines = [f"model     {model_dir}", f"template  {template!r} (LLaMA-Factory)"]
    if check.get("options"):
        lines.append("options   " + ", ".join(f"{k}={v!r}" for k, v in check["options"].items()))
    if check.get("data"):
        data = check["data"]
        kinds = [
            "with system prompts" if data.get("with_system") else "no system prompts",
            "multi-turn" if data.get("multi_turn") else "single-turn",
        ]
        lines.append(f"data      {', '.join(kinds)} (a difference only elsewhere is shown, not counted)")
    if verdict == "no_chat_template":
        lines.append(f"verdict   no_chat_template: {MEANING['no_chat_template']}")
        jinja = check.get("training_jinja")
        if jinja:
            lines.append(f"  it writes (checked: {check.get('training_jinja_verdict')}):")
            lines.extend(f"    {line}" for line in jinja.splitlines() or [jinja])
        return lines
    for conv in check.get("conversations", []):
        lines.extend(conversation_lines(conv))
    harm = "harmful" if check.get("harmful") else "harmless" if verdict != "agree" else ""
    lines.append(f"verdict   {verdict}" + (f" ({harm})" if harm else "") + f": {MEANING.get(verdict, verdict)}")
    if check.get("note"):
        lines.append(f"note      {check['note']}")
    scoped = scope(check)
    if scoped:
        lines.append(f"scope     {scoped['line']}")
    if verdict == "agree":
        lines.append("          (turn by turn: each prompt, each answer's end, with and without a system prompt)")
    lines.extend(fix_lines(check))
    if check.get("serve_with") == "training":
        verdict = check.get("training_jinja_verdict") or "cannot be made"
        lines.append(f"this project serves with the training template (chat_template: training): {verdict}")
    return lines


# What a request must hold to meet a difference the data did not train (the kind of conversation).
PARTS = {
    "system_prompt": "a system prompt",
    "multi_turn": "a second turn (earlier turns in the prompt)",
    "thinking": "thinking switched per request (enable_thinking)",
}


def scope(check: dict[str, Any]) -> dict[str, Any] | None:
    """Where an agreement holds only for this data: the harmful differences the check found in
    kinds of conversation the project's data never trains (and so did not count). None when there
    are none, or when the verdict is harmful anyway (then train refuses and says so).

    {"agrees_for": "single-turn, no system prompts", "differs_with": ["system_prompt", ...],
     "line": "agrees for this data (...); differs with a system prompt (differs_system_prompt)"}"""
    if check.get("harmful") or check.get("serve_with") == "training":
        return None
    found: dict[str, str] = {}
    for conv in check.get("conversations", []):
        verdict = conv.get("verdict")
        # a prompt that differs (an answer's end that differs is harmless after the stop token, and is not here)
        if verdict not in ("differs_prompt", "differs_system_prompt", "differs_earlier_turns") or conv.get("harmful"):
            continue
        notes = " ".join([conv.get("note") or "", *conv.get("notes", [])])
        if conv.get("not_counted"):
            found.setdefault("system_prompt", verdict)
        elif conv.get("informational"):
            found.setdefault("thinking", verdict)
        elif "single-turn" in notes:  # counted, harmless only because the data never trains a second turn
            found.setdefault("multi_turn", verdict)
    if not found:
        return None
    data = check.get("data") or {}
    kinds = ["with system prompts" if data.get("with_system") else "no system prompts",
             "multi-turn" if data.get("multi_turn") else "single-turn"]  # fmt: skip
    agrees_for = ", ".join(reversed(kinds))
    differs = "; ".join(f"{PARTS[part]} ({verdict})" for part, verdict in found.items())
    return {"agrees_for": agrees_for, "differs_with": list(found),
            "line": f"agrees for this data ({agrees_for}); differs with {differs}"}  # fmt: skip


def scope_warning(scope_: dict[str, Any] | None, messages: list[dict[str, str]]) -> str | None:
    """What to say when a request uses a part of the conversation the agreement does not cover
    (None: it does not, or there is no such part)."""
    if not scope_:
        return None
    parts = set(scope_.get("differs_with") or [])
    used = []
    if "system_prompt" in parts and any(m.get("role") == "system" for m in messages):
        used.append("a system prompt")
    if "multi_turn" in parts and sum(m.get("role") == "user" for m in messages) > 1:
        used.append("earlier turns")
    if not used:
        return None
    return (
        f"note: this request has {' and '.join(used)}, which the model's chat template serves differently than "
        f"LLaMA-Factory trained (the template check: {scope_['line']}); the answer may be off. Serve what training "
        "rendered: `lf-wrap serve --chat-template training`, or train on data that has them"
    )


def serve_training_agrees(check: dict[str, Any]) -> bool:
    """Does the Jinja template made from the training template render what LLaMA-Factory trains on?"""
    return bool(check.get("training_jinja")) and not check.get("training_jinja_harmful")


def refusal(check: dict[str, Any], model_dir: Path) -> LfWrapError:
    """`train` refuses a harmful difference: the verdict, the first difference, the fixes."""
    body = "\n".join(report_lines(check, model_dir))
    return LfWrapError(
        "the chat template LLaMA-Factory trains with and the model's own chat template (what vLLM serves) "
        f"give different prompts for the same conversation:\n{body}\n"
        "A model served this way answers from a prompt it never saw in training.",
        hint="apply one of the fixes above (`template:` and the `train:` settings in lf-wrap.yaml take the same "
        "values; `chat_template: training` serves what LLaMA-Factory trained on)",
    )


def progress_line(check: dict[str, Any]) -> str:
    """One line for `train`: what was checked and what it found."""
    template, verdict = check["template"], check["verdict"]
    how = ", remembered from an earlier identical check" if check.get("cached") else ""
    if check.get("serve_with") == "training" and verdict != "agree":
        return (
            f"template check: served with the training template (chat_template: training), which renders what "
            f"{template!r} trains on ({check.get('training_jinja_verdict')}); the model's own template: {verdict}{how}"
        )
    scoped = scope(check)
    if scoped:
        return f"template check: {template!r} and the model's chat template: {scoped['line']}{how}"
    if verdict == "agree":
        return f"template check: {template!r} and the model's chat template agree (token for token{how})"
    if verdict == "no_chat_template":
        return f"template check: the model has no chat template; LLaMA-Factory's export writes {template!r}'s{how}"
    first: dict[str, Any] = next((c for c in check.get("conversations", []) if c["verdict"] == verdict), {})
    detail = first.get("where") or first.get("error") or MEANING.get(verdict, "")
    return f"template check: {template!r}: {verdict} (harmless{how}) - {detail}"


def raise_if_harmful(check: dict[str, Any], model_dir: Path, chat_template: str = "model") -> None:
    """Refuse a harmful difference, unless the project serves with the training template
    (`chat_template: training`) and that template is proven to render what is trained on."""
    bad_input(check, model_dir)
    if chat_template == "training":
        training_jinja(check, model_dir)  # refuses a template that cannot be made or does not agree
        return
    if check.get("harmful"):
        raise refusal(check, model_dir)


def training_jinja(check: dict[str, Any], model_dir: Path) -> str:
    """The verified Jinja chat template that renders what LLaMA-Factory trains on."""
    bad_input(check, model_dir)
    jinja = check.get("training_jinja")
    if not jinja:
        raise LfWrapError(
            f"LLaMA-Factory cannot write its {check['template']!r} template as a Jinja chat template "
            "(its turns are built from token ids)",
            hint="serve with the model's own chat template, or choose a template that agrees "
            "(`lf-wrap template check` lists them)",
        )
    if check.get("training_jinja_harmful"):
        raise LfWrapError(
            f"the Jinja template made from {check['template']!r} does not render what LLaMA-Factory trains on "
            f"({check.get('training_jinja_verdict')})",
            hint="serve with the model's own chat template, or choose another template",
        )
    return jinja


def install_chat_template(model_dir: Path, jinja: str) -> list[Path]:
    """Make `jinja` the chat template of a model folder (chat_template.jinja wins over
    tokenizer_config.json's `chat_template` in transformers; both are set when both exist)."""
    written = [model_dir / "chat_template.jinja"]
    atomic_write(written[0], jinja)
    config = model_dir / "tokenizer_config.json"
    if config.is_file():
        data = read_json_object(config, hint="re-export the model")
        if "chat_template" in data:
            data["chat_template"] = jinja
            atomic_write(config, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
            written.append(config)
    return written
