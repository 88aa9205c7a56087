"""Run inside the *training* environment (it imports llamafactory, never lf_wrap):

    .venvs/train/bin/python llamafactory_probe.py MODEL_DIR TEMPLATE

Prints one JSON object: the engine's versions, and the template agreement check — the
prompt LLaMA-Factory's chat template trains on versus the prompt the model's own chat
template (what vLLM and transformers use at serving time) produces for the same messages.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

SAMPLE = [
    {"role": "user", "content": "Who are you?"},
    {"role": "assistant", "content": "I am the Magic Conch."},
]


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def main() -> int:
    model_dir, template_name = sys.argv[1], sys.argv[2]
    out: dict[str, Any] = {
        "versions": {n: _version(n) for n in ("llamafactory", "torch", "transformers", "peft", "datasets", "trl")},
        "python": sys.version.split()[0],
    }
    import os

    os.environ.setdefault("DISABLE_VERSION_CHECK", "1")
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    serve_template = getattr(tokenizer, "chat_template", None)
    template = get_template_and_fix_tokenizer(tokenizer, DataArguments(template=template_name))
    prompt_ids, answer_ids = template.encode_oneturn(tokenizer, SAMPLE)
    train_prompt = tokenizer.decode(prompt_ids, skip_special_tokens=False)
    train_answer = tokenizer.decode(answer_ids, skip_special_tokens=False)
    check: dict[str, Any] = {
        "template": template_name,
        "train_prompt": train_prompt,
        "train_answer": train_answer,
        "default_system": template.default_system or "",
    }
    if not serve_template:
        check.update(status="no_chat_template", serve_prompt=None)
    else:
        tokenizer.chat_template = serve_template
        serve_prompt = tokenizer.apply_chat_template(SAMPLE[:1], tokenize=False, add_generation_prompt=True)
        serve_ids = tokenizer.apply_chat_template(SAMPLE[:1], tokenize=True, add_generation_prompt=True)
        if hasattr(serve_ids, "keys"):  # BatchEncoding in transformers 5
            serve_ids = serve_ids["input_ids"]
        check.update(
            serve_prompt=serve_prompt,
            status="match" if list(serve_ids) == list(prompt_ids) else "mismatch",
        )
    out["template_check"] = check
    print(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
