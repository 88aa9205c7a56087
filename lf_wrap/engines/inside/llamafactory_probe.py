"""Run inside the *training* environment (it imports llamafactory and transformers, never lf_wrap):

    .venvs/train/bin/python -I -c "$(cat llamafactory_probe.py)" --jobs < JOBS_JSON

Prints one JSON object on its last stdout line: the engine's versions and, per job, the
template check. The check compares, token for token, what LLaMA-Factory's own code trains
on (`Template.encode_multiturn`, two user/assistant turns, with and without a system
prompt, the end of each answer included) with what the model's chat template (what vLLM
and transformers use when serving) renders for the same conversation: the prompt before
each assistant turn (`apply_chat_template(..., add_generation_prompt=True)`) and the full
conversation. When they differ it tries the fixes — other LLaMA-Factory templates,
`default_system`, `mask_history`, serving with a Jinja template made from the training
template — and keeps those that the same comparison proves right.

A job's "options" holds LLaMA-Factory data arguments that change what is trained on:
default_system, enable_thinking, mask_history, preserve_thinking.
A job: {"model_dir", "template", "options": {}, "fixes": true, "chat_template": null, "data": {}}; a
"chat_template" text replaces the model's template on the serving side (to verify one);
"data" ({"with_system": false, "multi_turn": false}) says which kinds of conversation the
dataset trains: a difference only in the others is shown, not counted.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any, ClassVar

U1, A1 = "Who are you?", "I am the Magic Conch."
U2, A2 = "Will it rain tomorrow?", "Maybe someday."
SYSTEM = "You are the Magic Conch."
SENTINEL = "\u2063SYSTEM\u2063"
OPTION_KEYS = ("default_system", "enable_thinking", "mask_history", "preserve_thinking")
HARMFUL = ("differs_prompt", "differs_system_prompt", "differs_earlier_turns", "differs_answer_end")
WINDOW = 48  # characters of context shown on each side of a difference
MAX_CANDIDATES = 8


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _first_diff(a: Sequence[Any], b: Sequence[Any]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class Model:
    """A model folder's tokenizer, chat template and stop tokens, loaded once per process."""

    cache: ClassVar[dict[str, Model]] = {}

    def __init__(self, model_dir: str) -> None:
        from transformers import AutoTokenizer

        self.dir = model_dir
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        if not self.tokenizer.encode(U1, add_special_tokens=False):  # transformers 5 builds an empty one
            raise ValueError("no tokenizer in the folder (tokenizer.json, tokenizer_config.json or vocabulary files)")
        template = getattr(self.tokenizer, "chat_template", None)
        if isinstance(template, dict):
            template = template.get("default") or next(iter(template.values()), None)
        self.chat_template: str | None = template or None
        self.generation_eos: list[int] = []
        path = os.path.join(model_dir, "generation_config.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                eos = json.load(f).get("eos_token_id")
            self.generation_eos = [eos] if isinstance(eos, int) else [i for i in eos or [] if isinstance(i, int)]

    @classmethod
    def load(cls, model_dir: str) -> Model:
        if model_dir not in cls.cache:
            cls.cache[model_dir] = cls(model_dir)
        return cls.cache[model_dir]


class Trained:
    """One LLaMA-Factory template with data arguments applied to a copy of the model's tokenizer.

    Nothing mutates one after it is made, so `get` hands out one per (model, template, options)."""

    made: ClassVar[dict[str, Trained]] = {}

    @classmethod
    def get(cls, model: Model, name: str, options: dict[str, Any]) -> Trained:
        key = json.dumps([model.dir, name, options], sort_keys=True)
        if key not in cls.made:
            cls.made[key] = cls(model, name, options)
        return cls.made[key]

    def __init__(self, model: Model, name: str, options: dict[str, Any]) -> None:
        from llamafactory.data.template import ReasoningTemplate, get_template_and_fix_tokenizer
        from llamafactory.hparams import DataArguments

        self.name, self.options = name, dict(options)
        self.tokenizer = copy.deepcopy(model.tokenizer)
        TEMPLATES[name] = copy.deepcopy(PRISTINE[name])  # LLaMA-Factory mutates its registered templates
        args = DataArguments(template=name, **{k: v for k, v in options.items() if k in OPTION_KEYS})
        self.template = get_template_and_fix_tokenizer(self.tokenizer, args)
        self.reasoning = isinstance(self.template, ReasoningTemplate)
        self.discarding = bool(args.mask_history) and not self.template.preserve_thinking
        # what the exported model will carry: LLaMA-Factory replaces the template in these cases
        self.replaces_template = model.chat_template is None or self.template.replace_jinja_template
        self.stop_ids = {self.tokenizer.eos_token_id, *model.generation_eos} - {None}

    def decode(self, ids: list[int]) -> str:
        text = self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        assert isinstance(text, str)  # one sequence of ids: one string
        return text

    def encode(self, messages: list[dict[str, str]], system: str | None) -> tuple[list[int], list[int], list[int]]:
        """Training ids of a conversation, and where each prompt ends and each answer ends."""
        pairs = self.template.encode_multiturn(
            self.tokenizer, messages, system, None, discarding_history_cot=self.discarding
        )
        ids: list[int] = []
        prompt_ends, answer_ends = [], []
        for prompt, answer in pairs:
            ids += prompt
            prompt_ends.append(len(ids))
            ids += answer
            answer_ends.append(len(ids))
        if self.template.efficient_eos:  # what the supervised processor appends
            ids.append(self.tokenizer.eos_token_id)
            answer_ends[-1] = len(ids)
        return ids, prompt_ends, answer_ends

    def jinja(self) -> str | None:
        """A chat template that renders what this template trains on (LLaMA-Factory's own
        `_get_jinja_template`, plus the empty thought a reasoning template adds)."""
        try:
            text = self.template._get_jinja_template(self.tokenizer)
        except ValueError:
            return None
        if not self.reasoning:
            return text
        t = self.template
        esc = t._jinja_escape
        open_, close = t.thought_words[0].strip(), t.thought_words[1].strip()
        empty = esc(t.add_thought())
        user = "{{ " + t._convert_slots_to_jinja(t.format_user.apply(), self.tokenizer) + " }}"
        branch = "{% elif message['role'] == 'assistant' %}"
        if t.enable_thinking:
            if not self.discarding:
                text = text.replace(
                    branch,
                    branch + f"{{% if '{esc(open_)}' not in content and '{esc(close)}' not in content %}}"
                    f"{{% set content = '{empty}' + content %}}{{% endif %}}",
                )
        else:
            text = text.replace(
                branch,
                branch + f"{{% if '{esc(close)}' in content %}}"
                f"{{% set content = content.split('{esc(close)}')[-1].lstrip('\\n') %}}{{% endif %}}",
            )
            when = "loop.last" if self.discarding else "true"
            text = text.replace(user, user + f"{{% if {when} %}}{{{{ '{empty}' }}}}{{% endif %}}")
        return text


def _render(trained: Trained, template: str, messages: list[dict[str, str]], gen: bool, kwargs: dict[str, Any]) -> str:
    text = trained.tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=False, add_generation_prompt=gen, **kwargs
    )
    assert isinstance(text, str)  # tokenize=False: the rendered text
    return text


def _window(trained: Trained, ids: list[int], at: int) -> dict[str, Any]:
    """Whole tokens around position `at`: about WINDOW characters of text each side, and the ids there."""
    start = at
    while start > 0 and len(trained.decode(ids[start - 1 : at])) <= WINDOW:
        start -= 1
    stop = at
    while stop < len(ids) and len(trained.decode(ids[at : stop + 1])) <= WINDOW:
        stop += 1
    first = max(0, at - 4)
    return {
        "before": trained.decode(ids[start:at]),
        "after": trained.decode(ids[at:stop]),
        "ids": ids[first : at + 6],
        "ids_from": first,
        "at": at,
    }


def _text_window(text: str, at: int) -> dict[str, Any]:
    return {"before": text[max(0, at - WINDOW) : at], "after": text[at : at + WINDOW]}


def _region(at: int, prompt_ends: list[int], answer_ends: list[int]) -> str:
    if at < prompt_ends[0]:
        return "turn 1 prompt"
    if at < answer_ends[0]:
        return "turn 1 answer"
    if at < prompt_ends[1]:
        return "turn 2 prompt"
    return "turn 2 answer"


def serving_kwargs(trained: Trained) -> dict[str, Any]:
    """The chat-template kwargs the run is served with (lf_wrap/model/thinking.py): a reasoning
    template trained with enable_thinking=false is served with thinking off by default."""
    return {"enable_thinking": False} if trained.reasoning and not trained.template.enable_thinking else {}


def conversations(serving: str, kwargs: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The conversations compared, rendered with the kwargs the run is served with; for a
    template that knows `enable_thinking`, the other setting too (informational: a client can
    switch it per request)."""
    kwargs = dict(kwargs or {})
    turns = [
        {"role": "user", "content": U1},
        {"role": "assistant", "content": A1},
        {"role": "user", "content": U2},
        {"role": "assistant", "content": A2},
    ]
    served = ", served with enable_thinking=false" if kwargs.get("enable_thinking") is False else ""
    convs: list[dict[str, Any]] = [
        {"name": "no_system", "title": f"two turns, no system prompt{served}", "system": None, "kwargs": kwargs},
        {"name": "system", "title": f"two turns, system prompt {SYSTEM!r}{served}", "system": SYSTEM,
         "kwargs": kwargs},
    ]  # fmt: skip
    if "enable_thinking" in serving:
        flip = kwargs.get("enable_thinking") is False
        convs.append(
            {
                "name": "thinking_on" if flip else "thinking_off",
                "title": "two turns, no system prompt, served with enable_thinking="
                + ("true (if a client asks for thinking)" if flip else "false"),
                "system": None,
                "kwargs": {**kwargs, "enable_thinking": flip},
                "informational": True,
            }
        )
    for conv in convs:
        conv["turns"] = turns
        conv["single_turn"] = DATA.get("multi_turn") is False
        if conv["name"] == "system" and DATA.get("with_system") is False:
            conv["not_counted"] = "your data has no system prompts"
    return convs


def _prompt_finding(trained: Trained, turn: int, served: list[int], ids: list[int], prompt_ends: list[int],
                    answer_ends: list[int]) -> dict[str, Any] | None:  # fmt: skip
    """The served prompt for `turn` against the training ids of the conversation up to that turn."""
    end, answer_end = prompt_ends[turn], answer_ends[turn]
    if served == ids[:end]:
        return None
    window = {"training": _window(trained, ids, end), "serving": _window(trained, served, end)}
    if served == ids[: len(served)] and end < len(served) <= answer_end:
        return {"verdict": "same_stream_different_boundary", "turn": turn + 1, "cut": (served, end), **window}
    train_text, served_text = trained.decode(ids), trained.decode(served)
    cut, answer_cut = len(trained.decode(ids[:end])), len(trained.decode(ids[:answer_end]))
    if train_text.startswith(served_text) and cut < len(served_text) <= answer_cut:
        # The same text, cut inside a token training wrote as one (DeepSeek-R1's prompt ends with
        # "<think>\n", training wrote "<think>" then "\n\n"): the served model continues from a
        # token sequence it never saw (measured on the look-alike: 39/56 golden answers vs 54/56).
        at = _first_diff(served, ids)
        extra = served_text[cut:]
        return {
            "verdict": "differs_prompt",
            "harmful": True,
            "turn": turn + 1,
            "index": at,
            "region": "turn boundary",
            "where": f"turn {turn + 1}: the model's prompt ends with {extra!r}, text LLaMA-Factory trains as part "
            f"of the answer, but cut inside a token: the same text, different token ids from token {at}",
            "note": "the served model would continue from token ids it never saw in training",
            "training": _window(trained, ids, at),
            "serving": _window(trained, served, at),
        }
    at = _first_diff(served, ids)
    region = _region(at, prompt_ends, answer_ends) if at < len(ids) else "after the conversation"
    if at >= len(served):
        what = f"the model's prompt for turn {turn + 1} stops where LLaMA-Factory's goes on"
    else:
        what = f"prompt for turn {turn + 1}"
    # a difference in an earlier turn (the history) or in turn 2's own prompt, versus the turn's generation prompt
    earlier = turn > 0 and region in ("turn 1 prompt", "turn 1 answer", "turn 2 prompt") and at < len(served)
    return {
        "verdict": "differs_earlier_turns" if earlier else "differs_prompt",
        "harmful": True,
        "turn": turn + 1,
        "index": at,
        "region": region,
        "where": f"{what}, first difference at token {at} ({region})",
        "training": _window(trained, ids, at),
        "serving": _window(trained, served, at),
    }


def _answer_end_finding(trained: Trained, ids: list[int], full_ids: list[int]) -> dict[str, Any] | None:
    """What follows the last answer's text: in training, up to the token that stops generation;
    in the model's template, how it closes an assistant turn."""
    train_text, full_text = trained.decode(ids), trained.decode(full_ids)
    t_at, s_at = train_text.rfind(A2), full_text.rfind(A2)
    if t_at < 0 or s_at < 0:
        return None
    t_tail, s_tail = train_text[t_at + len(A2) :], full_text[s_at + len(A2) :]
    if t_tail == s_tail:
        return None
    stops = sorted({trained.decode([i]) for i in trained.stop_ids} - {""}, key=len, reverse=True)

    def until_stop(tail: str) -> str | None:
        hits = [tail.find(s) + len(s) for s in stops if s in tail]
        return tail[: min(hits)] if hits else None

    t_cut, s_cut = until_stop(t_tail), until_stop(s_tail)
    at = _first_diff(list(t_tail), list(s_tail))
    out = {
        "verdict": "differs_answer_end",
        "turn": 2,
        "region": "answer end",
        "where": f"end of the answer, {at} characters after its text",
        "training": {**_text_window(t_tail, at), "ids": trained.tokenizer.encode(t_tail, add_special_tokens=False)},
        "serving": {**_text_window(s_tail, at), "ids": trained.tokenizer.encode(s_tail, add_special_tokens=False)},
    }
    if t_cut is None:
        out.update(harmful=True, note=(
            f"the trained answer ends with {t_tail!r}: no stop token of the served model ({', '.join(stops)}), so "
            "generation would not stop where training ended the answer"))  # fmt: skip
    elif s_cut is not None and s_cut != t_cut:
        out.update(harmful=True, note=f"the model ends an answer with {s_cut!r}, LLaMA-Factory trains {t_cut!r}")
    elif s_cut is None:
        out["note"] = (
            f"the model's template writes nothing that stops generation after the last answer; LLaMA-Factory "
            f"trains the answer to end with {t_cut!r}, a stop token of the served model"
        )
    else:
        out["note"] = f"they differ only after {t_cut!r}, where generation stops: the answer ends the same"
    return out


def compare(trained: Trained, serving: str, conv: dict[str, Any]) -> dict[str, Any]:
    """One conversation: the verdict, where the first difference is, and both sides there.

    Turn k is compared with what LLaMA-Factory trains for a conversation ending at turn k:
    that is how the model learns to answer at that point, whatever `mask_history` says."""
    turns, system = conv["turns"], conv["system"]
    messages = ([{"role": "system", "content": system}] if system else []) + turns
    offset = 1 if system else 0
    out: dict[str, Any] = {"name": conv["name"], "title": conv["title"], "harmful": False}
    informational = bool(conv.get("informational") or conv.get("not_counted"))
    if informational:
        out["informational"] = True
    if conv.get("not_counted"):
        out["not_counted"] = conv["not_counted"]
    try:
        renders = [_render(trained, serving, messages[: offset + 2 * k + 1], True, conv["kwargs"]) for k in (0, 1)]
        full = _render(trained, serving, messages, False, conv["kwargs"])
    except Exception as err:  # a template that raises is a finding, reported as such
        out.update(verdict="template_refuses", error=f"{type(err).__name__}: {err}")
        return out
    findings = []
    for turn, text in enumerate(renders):
        ids, prompt_ends, answer_ends = trained.encode(turns[: 2 * turn + 2], system)
        served = trained.tokenizer.encode(text, add_special_tokens=False)
        found = _prompt_finding(trained, turn, served, ids, prompt_ends, answer_ends)
        if found and turn > 0 and conv.get("single_turn") and found.get("harmful"):
            # the data never trains a second turn: what the model learned is not at stake here
            found["harmful"] = False
            found["note"] = (found.get("note", "") + "; " if found.get("note") else "") + (
                "not counted: your data is single-turn (it matters once you train multi-turn conversations)"
            )
        if found:
            findings.append(found)
    ids, _, _ = trained.encode(turns, system)
    found = _answer_end_finding(trained, ids, trained.tokenizer.encode(full, add_special_tokens=False))
    if found:
        findings.append(found)
    harmful = [f for f in findings if f.get("harmful")]
    order = ("same_stream_different_boundary", "differs_answer_end", *HARMFUL)
    chosen = harmful[0] if harmful else next((f for v in order for f in findings if f["verdict"] == v), None)
    if chosen is None:
        out["verdict"] = "agree"
        return out
    notes = [f["note"] for f in findings if f.get("note") and f is not chosen]
    if chosen["verdict"] == "same_stream_different_boundary":
        served, end = chosen.pop("cut")
        extra = trained.decode(served[end:])
        chosen["where"] = (
            f"turn {chosen['turn']}: the model's prompt ends with {extra!r}, which LLaMA-Factory trains as the start "
            "of the answer; prompt + answer are the same"
        )
        chosen["region"] = "turn boundary"
    for f in findings:
        f.pop("cut", None)
    out.update({k: v for k, v in chosen.items() if k != "harmful"})
    out["harmful"] = bool(chosen.get("harmful")) and not informational
    others = [f["verdict"] for f in findings if f is not chosen and f["verdict"] != chosen["verdict"]]
    if others:
        out["also"] = sorted(set(others))
    if notes:
        out["notes"] = notes
    return out


def check(trained: Trained, serving: str) -> dict[str, Any]:
    """Every conversation, then one overall verdict."""
    convs = [compare(trained, serving, c) for c in conversations(serving, serving_kwargs(trained))]
    counted = [c for c in convs if not c.get("informational")]
    harmful = [c for c in counted if c["harmful"]]
    if harmful:
        overall = harmful[0]["verdict"]
    elif all(c["verdict"] == "template_refuses" for c in counted):
        overall = "template_refuses"
    else:
        order = ("template_refuses", "same_stream_different_boundary", "differs_answer_end", *HARMFUL)
        found = [v for v in order if any(c["verdict"] == v for c in counted)]
        overall = found[0] if found else "agree"
    refuses_all = all(c["verdict"] == "template_refuses" for c in counted)
    return {
        "verdict": overall,
        "harmful": bool(harmful) or refuses_all,
        "conversations": convs,
    }


def _attribute_system(model: Model, trained: Trained, result: dict[str, Any], serving: str) -> None:
    """A difference that moves or goes away when only the system prompt changes is a system-prompt
    difference; so is one that only the conversation with a system prompt shows."""
    convs = {c["name"]: c for c in result["conversations"]}
    plain, with_system = convs.get("no_system"), convs.get("system")
    if plain and plain["harmful"] and plain.get("region") == "turn 1 prompt":
        spec = next(c for c in conversations(serving, serving_kwargs(trained)) if c["name"] == "no_system")
        for value in _system_candidates(trained, model, serving, include_dated=True):  # to classify, not to offer
            other = Trained.get(model, trained.name, {**trained.options, "default_system": value})
            again = compare(other, serving, spec)
            if not again["harmful"] or again.get("index", -1) > plain["index"]:
                plain["verdict"] = "differs_system_prompt"
                break
    if (
        with_system
        and plain is not None
        and with_system["harmful"]
        and with_system["verdict"] in ("differs_prompt", "differs_earlier_turns")
        and (
            not plain["harmful"]
            or (plain["verdict"] == "differs_system_prompt" and with_system.get("region") == "turn 1 prompt")
        )
    ):
        with_system["verdict"] = "differs_system_prompt"
    harmful = [c for c in result["conversations"] if c["harmful"]]
    if harmful:
        result["verdict"] = harmful[0]["verdict"]


def _slot_text(trained: Trained, slots: list[Any], content: str) -> str:
    tok, parts = trained.tokenizer, []
    for slot in slots:
        if isinstance(slot, str):
            parts.append(slot.replace("{{content}}", content))
        elif isinstance(slot, dict):
            parts.append(str(slot.get("token", "")))
        elif isinstance(slot, set):
            if "bos_token" in slot:
                parts.append(tok.bos_token or "")
            elif "eos_token" in slot:
                parts.append(tok.eos_token or "")
    return "".join(parts)


def _system_candidates(trained: Trained, model: Model, serving: str, include_dated: bool = False) -> list[str]:
    """default_system values worth trying: what, put through LLaMA-Factory's system slot, gives
    the model's own prompt for a conversation without one; the model's own default; none."""
    first = [{"role": "user", "content": U1}]
    out: list[str] = []
    try:
        plain = _render(trained, serving, first, True, serving_kwargs(trained))
        with_sentinel = _render(
            trained, serving, [{"role": "system", "content": SENTINEL}, *first], True, serving_kwargs(trained)
        )
    except Exception:  # the template refuses: only 'no system prompt' is worth trying
        return [""]
    ids = trained.template.encode_multiturn(trained.tokenizer, [*first, {"role": "assistant", "content": A1}], SENTINEL)
    train_frame = trained.decode(ids[0][0])
    for frame in (train_frame, with_sentinel):
        if SENTINEL not in frame:
            continue
        pre, post = frame.split(SENTINEL, 1)
        if plain.startswith(pre) and plain.endswith(post) and len(plain) >= len(pre) + len(post):
            value = plain[len(pre) : len(plain) - len(post)]
            if value not in out:
                out.append(value)
    if "" not in out:
        out.append("")
    current = trained.template.default_system or ""
    dated = [] if include_dated else [v for v in out if _has_today(v)]
    for value in dated:  # the model's template writes the serving day's date (strftime_now): no fixed value fits
        DATED.add(value)
    return [v for v in out if v != current and v not in dated][:3]


def _has_today(text: str) -> bool:
    import datetime

    today = datetime.date.today()
    return any(today.strftime(f) in text for f in ("%d %b %Y", "%Y-%m-%d", "%B %d, %Y", "%d %B %Y"))


def _attempt(model: Model, name: str, options: dict[str, Any], serving_override: str | None = None) -> dict[str, Any]:
    trained = Trained.get(model, name, options)
    serving = serving_override or model.chat_template or trained.jinja() or ""
    result = check(trained, serving)
    if result["harmful"]:
        _attribute_system(model, trained, result, serving)
    return {
        "settings": {"template": name, **options},
        "verdict": result["verdict"],
        "harmful": result["harmful"],
        "conversations": {
            c["name"]: {"verdict": c["verdict"], "harmful": c["harmful"]} for c in result["conversations"]
        },
    }


def find_fixes(model: Model, trained: Trained, result: dict[str, Any], serving: str) -> list[dict[str, Any]]:
    """Settings that make the comparison pass, each proven by running it again."""
    name, options = trained.name, trained.options
    tried: list[dict[str, Any]] = []
    base = {k: v for k, v in options.items() if k != "default_system"}

    def attempt(tname: str, opts: dict[str, Any]) -> dict[str, Any] | None:
        key = json.dumps({"template": tname, **opts}, sort_keys=True)
        if any(json.dumps(t["settings"], sort_keys=True) == key for t in tried):
            return None
        try:
            found = _attempt(model, tname, opts)
        except Exception as err:  # a candidate that cannot even load is no fix
            found = {"settings": {"template": tname, **opts}, "verdict": "error", "harmful": True,
                     "error": f"{type(err).__name__}: {err}", "conversations": {}}  # fmt: skip
        tried.append(found)
        return found

    systems = _system_candidates(trained, model, serving)
    reasoning_fix = trained.reasoning and not options.get("mask_history")
    # (b) the same template, another default system prompt and/or mask_history
    for value in systems:
        attempt(name, {**options, "default_system": value})
    if reasoning_fix:
        attempt(name, {**options, "mask_history": True})
        for value in systems:
            attempt(name, {**options, "default_system": value, "mask_history": True})
    # (a) other templates whose user turn appears in the model's own prompt
    try:
        plain = _render(trained, serving, [{"role": "user", "content": U1}], True, serving_kwargs(trained))
    except Exception:  # the template refuses a plain conversation: nothing to match against
        plain = ""
    import difflib

    from llamafactory.data.template import ReasoningTemplate

    candidates = []
    for other, tpl in PRISTINE.items():
        if other == name or type(tpl.mm_plugin).__name__ != "BasePlugin":  # text models: no multimodal templates
            continue
        user = _slot_text(trained, tpl.format_user.apply(content=U1, idx="0"), U1)
        if not (user and U1 in user and user in plain):
            continue
        # rank by how much of the model's own first prompt the template's would reproduce (cheap: text only)
        system = tpl.format_system.apply(content=tpl.default_system) if tpl.default_system else []
        first = _slot_text(trained, [*tpl.format_prefix.apply(), *system], U1) + user
        shared = _first_diff(list(first), list(plain))
        likeness = difflib.SequenceMatcher(None, name, other).ratio()
        candidates.append((-(first == plain), -shared, -likeness, other))
    ranked = [c[-1] for c in sorted(candidates)]
    for other in ranked[:MAX_CANDIDATES]:
        found = attempt(other, base)
        if found is None or not found["harmful"] or found["verdict"] == "error":
            continue
        if isinstance(PRISTINE[other], ReasoningTemplate):
            found = attempt(other, {**base, "mask_history": True})
        if found is not None and found["harmful"]:
            for value in _system_candidates(Trained.get(model, other, base), model, serving):
                attempt(other, {**base, "default_system": value})
    was = [c["name"] for c in result["conversations"] if c["harmful"]]
    fixes = []
    for t in tried:
        if t["verdict"] == "error":
            continue
        if not t["harmful"]:
            fixes.append({"kind": "settings", **t, "works": True})
            continue
        fixed = [n for n in was if n in t["conversations"] and not t["conversations"][n]["harmful"]]
        if fixed:
            fixes.append({"kind": "settings", **t, "works": False, "fixes_conversations": fixed})
    fixes.sort(key=lambda f: (not f["works"], f["settings"]["template"] != name))  # stable: best candidates first
    return fixes


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    model_dir, name = job["model_dir"], job["template"]
    DATA.clear()
    DATA.update(job.get("data") or {})
    DATED.clear()
    options = {k: v for k, v in (job.get("options") or {}).items() if k in OPTION_KEYS}
    out: dict[str, Any] = {"template": name, "model_dir": model_dir, "options": options}
    if DATA:
        out["data"] = dict(DATA)
    if name not in PRISTINE:
        import difflib

        close = difflib.get_close_matches(name, sorted(PRISTINE), n=3, cutoff=0.5)
        return {**out, "status": "unknown_template", "verdict": "unknown_template", "harmful": True,
                "error": f"{name!r} is not a LLaMA-Factory chat template", "suggestions": close}  # fmt: skip
    try:
        model = Model.load(model_dir)
    except Exception as err:  # reported as bad input, never as a traceback
        return {**out, "status": "tokenizer_error", "verdict": "tokenizer_error", "harmful": True,
                "error": f"{type(err).__name__}: {err}"}  # fmt: skip
    try:
        trained = Trained.get(model, name, options)
    except Exception as err:  # LLaMA-Factory refuses the template with these settings: bad input
        return {**out, "status": "template_error", "verdict": "template_error", "harmful": True,
                "error": f"{type(err).__name__}: {err}"}  # fmt: skip
    if "prompts" in job:  # `lf-wrap check`'s parity: the ids training feeds the model before each answer
        return {**out, "status": "prompts", "prompts": [prompt_ids(trained, conv) for conv in job["prompts"]]}
    jinja = trained.jinja()
    override = job.get("chat_template")
    serving = override or model.chat_template
    out.update(
        default_system=trained.template.default_system or "",
        reasoning_template=trained.reasoning,
        replaces_template_on_export=trained.replaces_template and not override,
        training_jinja=jinja,
        serving_template_source="given" if override else ("model" if model.chat_template else None),
        stop_tokens=sorted(trained.decode([i]) for i in trained.stop_ids),
    )
    if serving is None:
        result = check(trained, jinja) if jinja else {"verdict": "no_chat_template", "harmful": False,
                                                      "conversations": []}  # fmt: skip
        out.update(
            status="no_chat_template",
            verdict="no_chat_template",
            harmful=False,
            conversations=result["conversations"],
            training_jinja_verdict=result["verdict"],
        )
        return out
    result = check(trained, serving)
    if result["harmful"]:
        _attribute_system(model, trained, result, serving)
    out.update(status=result["verdict"], **result)
    if jinja:
        verify = check(Trained.get(model, name, options), jinja)
        out["training_jinja_verdict"] = verify["verdict"]
        out["training_jinja_harmful"] = verify["harmful"]
    if trained.replaces_template and jinja and not override:
        out["note"] = (
            f"LLaMA-Factory's export replaces the model's chat template with the {name!r} template's own "
            f"(which {'agrees' if not out.get('training_jinja_harmful') else 'does not agree either'}); "
            "serving the base model with an adapter uses the model's template checked here"
        )
        if not out.get("training_jinja_harmful"):
            out["harmful"] = False
    if job.get("fixes", True) and (result["harmful"] or result["verdict"] != "agree"):
        fixes = find_fixes(model, trained, result, serving) if result["harmful"] else []
        if jinja and not out.get("training_jinja_harmful"):
            fixes.append({"kind": "serve_training_template", "settings": {"template": name, **options},
                          "verdict": out["training_jinja_verdict"], "harmful": False, "works": True})  # fmt: skip
        out["fixes"] = fixes
        if DATED:
            out["dated_system"] = sorted(DATED)
            out["note"] = (out.get("note", "") + "; " if out.get("note") else "") + (
                f"the model's template writes today's date into the system prompt ({sorted(DATED)[0]!r}): "
                "a default_system with it would be wrong from tomorrow, so serving with the training template "
                "is the fix"
            )
    return out


def prompt_ids(trained: Trained, messages: list[dict[str, str]]) -> dict[str, Any]:
    """What LLaMA-Factory feeds the model before the last answer of a conversation (system, history,
    the last user turn and the generation prompt, as `encode_multiturn` trains it), with each token's text."""
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else None
    turns = [dict(m) for m in messages[1 if system is not None else 0 :]]
    if not turns or turns[-1]["role"] != "assistant":
        turns.append({"role": "assistant", "content": "x"})  # the answer itself is not part of the prompt
    ids, prompt_ends, _ = trained.encode(turns, system)
    ids = ids[: prompt_ends[-1]]
    return {"ids": ids, "pieces": [trained.decode([i]) for i in ids]}


TEMPLATES: dict[str, Any] = {}
PRISTINE: dict[str, Any] = {}
# The job's dataset shape ({"with_system": bool, "multi_turn": bool}; empty: count everything),
# set by run_job for the comparisons of that job and its fixes.
DATA: dict[str, Any] = {}
# default_system values that would be the fix but hold today's date (Llama-3.1's template writes
# "Today Date: <the day it serves>"): reported, never offered, since they are wrong tomorrow.
DATED: set[str] = set()


def main() -> int:
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # LLaMA-Factory logs to stdout; only the answer goes there
    os.environ.setdefault("DISABLE_VERSION_CHECK", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    out: dict[str, Any] = {
        "versions": {n: _version(n) for n in ("llamafactory", "torch", "transformers", "peft", "datasets", "trl")},
        "python": sys.version.split()[0],
    }
    if sys.argv[1:2] != ["--jobs"]:
        print("usage: llamafactory_probe.py --jobs < JOBS_JSON", file=sys.stderr)
        return 2
    jobs = json.load(sys.stdin)
    from llamafactory.data import template as lf_template
    from transformers.utils import logging as hf_logging

    global TEMPLATES
    hf_logging.set_verbosity_error()
    TEMPLATES = lf_template.TEMPLATES
    PRISTINE.update(copy.deepcopy(lf_template.TEMPLATES))
    out["results"] = [run_job(job) for job in jobs]
    print(json.dumps(out, ensure_ascii=False), file=real_stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
