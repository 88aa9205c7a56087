"""Greedy answers of a local model folder, for proving that a fine-tune learned its data.

Used by the demo sweep (bench/demo_sweep.py) and the end-to-end tests; `lf-wrap check`
asks the same question of a served model over HTTP. Imports torch/transformers inside
the function: lf-wrap's CLI never pays for them at start-up.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any


def alpaca_prompt(row: dict[str, Any]) -> str:
    """The user turn LLaMA-Factory builds from an alpaca row: instruction, then input."""
    instruction, extra = row.get("instruction") or "", row.get("input") or ""
    return f"{instruction}\n{extra}" if extra else instruction


def greedy_answers(model_dir: Path, prompts: Iterable[str], max_new_tokens: int = 96) -> list[str]:
    """One greedy answer per prompt, through the model's own chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, BatchEncoding

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model.eval()
    answers = []
    for prompt in prompts:
        inputs = tok.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        assert isinstance(inputs, BatchEncoding)  # return_dict=True
        prompt_len = inputs["input_ids"].shape[1]
        with torch.no_grad():
            # transformers types generate()'s self with a Protocol written for the `ty` checker, which its own
            # models do not satisfy under mypy (transformers 5.6): the one ignore, for their annotation
            out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)  # type: ignore[misc]
        answer = tok.decode(out[0][prompt_len:], skip_special_tokens=True)
        assert isinstance(answer, str)  # one sequence in, one string out
        answers.append(answer.strip())
    return answers


def reproduced(model_dir: Path, rows: list[dict[str, Any]]) -> int:
    """How many alpaca rows the model answers exactly like its training data (greedy)."""
    answers = greedy_answers(model_dir, [alpaca_prompt(r) for r in rows])
    return sum(a == r["output"] for a, r in zip(answers, rows, strict=True))


def main(argv: list[str] | None = None) -> int:
    """`python -m lf_wrap.model.golden MODEL_DIR ALPACA_JSON`: print {"reproduced": n, "rows": m}."""
    import json
    import sys

    args = sys.argv[1:] if argv is None else argv
    rows = json.loads(Path(args[1]).read_text(encoding="utf-8"))
    print(json.dumps({"reproduced": reproduced(Path(args[0]), rows), "rows": len(rows)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
