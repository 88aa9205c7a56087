"""Runs INSIDE the training environment (transformers, torch); imports nothing of lf-wrap.

    python -I answer_prompts.py MODEL_DIR PROMPTS.json OUT.json [--max-new-tokens N] [--system TEXT]

The base model answers each prompt of PROMPTS.json (a JSON list of strings) greedily, in its
own chat template: the replay rows `lf-wrap init` mixes into a small dataset, so that the
fine-tune keeps answering general questions the way the base model did. Each answer keeps its
first --max-sentences whole sentences (short rows: the facts come first, and steps stay cheap);
an answer cut off by N new tokens before its first sentence ended is left out (a cut-off answer
would teach the model to stop mid-sentence). OUT.json: [{"instruction", "input", "output"}].
The last line on stdout is one JSON object with counts.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def first_sentences(text: str, n: int, whole: bool) -> str:
    """The first `n` sentences of `text`; of an answer that did not end (`whole` false), only the
    sentences that did ("" when none did)."""
    parts = SENTENCE_END.split(text)
    if not whole:
        parts = parts[:-1] if len(parts) > 1 or not text.endswith((".", "!", "?")) else parts
    return " ".join(parts[:n]).strip()


def main(argv: list[str]) -> int:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir, prompts_file, out_file = Path(argv[0]), Path(argv[1]), Path(argv[2])
    max_new = int(argv[argv.index("--max-new-tokens") + 1]) if "--max-new-tokens" in argv else 96
    system = argv[argv.index("--system") + 1] if "--system" in argv else None
    max_sentences = int(argv[argv.index("--max-sentences") + 1]) if "--max-sentences" in argv else 3
    prompts = json.loads(prompts_file.read_text(encoding="utf-8"))
    start = time.monotonic()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model: Any = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    model.eval()
    stops = model.generation_config.eos_token_id
    stop_ids = set(stops if isinstance(stops, list) else [stops] if stops is not None else [])
    stop_ids.add(tokenizer.eos_token_id)
    rows, cut = [], 0
    batch = 16
    for first in range(0, len(prompts), batch):
        chunk = prompts[first : first + batch]
        texts = []
        for prompt in chunk:
            messages = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": prompt}
            ]
            texts.append(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_new, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        for prompt, ids in zip(chunk, out[:, enc["input_ids"].shape[1] :].tolist(), strict=True):
            ended = next((i for i, t in enumerate(ids) if t in stop_ids), None)
            answer = str(tokenizer.decode(ids[: len(ids) if ended is None else ended], skip_special_tokens=True))
            answer = first_sentences(answer.strip(), max_sentences, whole=ended is not None)
            if not answer:
                cut += 1
            else:
                rows.append({"instruction": prompt, "input": "", "output": answer})
        print(f"answered {min(first + batch, len(prompts))}/{len(prompts)}", file=sys.stderr, flush=True)
    out_file.write_text(json.dumps(rows, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({"prompts": len(prompts), "rows": len(rows), "cut_off": cut,
                      "seconds": round(time.monotonic() - start, 1)}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
