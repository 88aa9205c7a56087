"""Thinking models: did training teach the model to think, and how must it be served?

LLaMA-Factory's reasoning templates (`qwen3`, `deepseekr1`, …) train the answer behind a
think block: with `enable_thinking: true` (its default) the model learns to write
`<think>…</think>` (an empty one when the data has no thinking) before the answer; with
`enable_thinking: false` the empty block is part of the prompt and the model answers
directly. The `*_nothink` templates have no think block at all.

Serving has to match: vLLM's `--reasoning-parser` takes the think block out of the answer
(`reasoning_content`), and for a no-think training the chat template must get
`enable_thinking: false` by default (`--default-chat-template-kwargs`), so the served
prompt ends the way the trained one did. `lf-wrap train` records these facts in the run's
manifest (`train.thinking`); `serve` and `check` read them from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# LLaMA-Factory 0.9.5 templates built on ReasoningTemplate (src/llamafactory/data/template.py).
REASONING_TEMPLATES = frozenset(
    {
        "deepseekr1", "hy3", "ernie_vl", "gemma4", "gemma4n", "glm4_moe", "glm4v", "glm4_5v", "glm4_7", "glmz1",
        "gpt_oss", "keye_vl", "kimi_vl", "mimo", "mimo_v2", "mimo_vl", "minimax2", "qwen3", "qwen3_omni",
        "qwen3_vl", "qwen3_5", "qwen3_6", "seed_oss", "youtu", "aeva",
    }
)  # fmt: skip

# The vLLM 0.32 reasoning parser (vllm/reasoning/__init__.py) for the templates whose format it is.
REASONING_PARSERS = {
    **dict.fromkeys(("qwen3", "qwen3_omni", "qwen3_vl", "qwen3_5", "qwen3_6"), "qwen3"),
    "deepseekr1": "deepseek_r1",
    "glm4_moe": "glm45",
    "glm4_7": "glm47",
    **dict.fromkeys(("mimo", "mimo_v2"), "mimo"),
    "seed_oss": "seed_oss",
    "minimax2": "minimax_m2",
    "gpt_oss": "openai_gptoss",
    "gemma4": "gemma4",
}

THINK_TAG = b"<think>"


def data_has_thinking(files: list[Path]) -> bool:
    """Does any dataset file contain a `<think>` tag? (Streamed: no file is read whole.)"""
    for path in files:
        tail = b""
        try:
            with path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    if THINK_TAG in tail + chunk:
                        return True
                    tail = chunk[-len(THINK_TAG) :]
        except OSError:
            continue
    return False


def training_thinking(template: str, train_values: dict[str, Any], data_files: list[Path]) -> dict[str, Any]:
    """What the manifest records: the template, the setting, the data, and what serving needs.

    mode: "thinking" (the model writes a think block, then the answer), "no-think" (it
    answers directly) or None (not a thinking template).
    """
    enable = train_values.get("enable_thinking", True)  # LLaMA-Factory's default
    enable = enable is not False and str(enable).lower() != "false"
    reasoning = template in REASONING_TEMPLATES
    mode: str | None = None
    kwargs: dict[str, Any] = {}
    if reasoning:
        mode = "thinking" if enable else "no-think"
        if not enable:
            kwargs = {"enable_thinking": False}
    elif template.endswith("_nothink"):
        mode = "no-think"
    return {
        "template": template,
        "reasoning_template": reasoning,
        "enable_thinking": enable,
        "think_in_data": data_has_thinking(data_files),
        "mode": mode,
        "reasoning_parser": REASONING_PARSERS.get(template) if reasoning else None,
        "chat_template_kwargs": kwargs,
    }


def serve_flags(thinking: dict[str, Any] | None, extra: tuple[str, ...] | list[str]) -> list[str]:
    """vLLM flags for serving a model trained this way; flags the user passes (--vllm-arg) win."""
    import json

    if not thinking:
        return []
    given = {a.partition("=")[0].replace("_", "-") for a in extra}
    flags: list[str] = []
    if thinking.get("reasoning_parser") and "--reasoning-parser" not in given:
        flags += ["--reasoning-parser", str(thinking["reasoning_parser"])]
    if thinking.get("chat_template_kwargs") and "--default-chat-template-kwargs" not in given:
        flags += ["--default-chat-template-kwargs", json.dumps(thinking["chat_template_kwargs"])]
    return flags


def request_kwargs(trained: dict[str, Any], thinking: bool | None = None) -> dict[str, Any]:
    """The chat_template_kwargs a request sends: those the run was trained with (`train.thinking`'s
    `chat_template_kwargs`), and `enable_thinking` where `thinking` (True or False; None: as
    trained) asks for the other way."""
    kwargs = dict(trained)
    trained_to_think = kwargs.get("enable_thinking", True) is not False
    if thinking is not None and thinking != trained_to_think:
        kwargs["enable_thinking"] = thinking
    return kwargs
