"""Run inside the *training* environment (it imports llamafactory, torch and transformers, never lf_wrap):

    .venvs/train/bin/python -I -c "$(cat preference_logprobs.py)" < JOB_JSON

The log-probability margin of preference pairs under one or more models, measured on exactly
the tokens DPO trains on: the pairs go through LLaMA-Factory's own data pipeline
(`get_dataset(..., stage="rm")`: its converter, the run's chat template, `cutoff_len`, the
`PairwiseDatasetProcessor`), and each answer's log-probability is the sum over its label
tokens, as LLaMA-Factory's DPO trainer computes it (`get_batch_logps`). Optionally each
model also answers every prompt greedily (the same prompt tokens, stopping at the template's
stop word).

JOB_JSON: {"dataset_dir", "dataset", "template", "cutoff_len", "data_args": {...},
"models": [{"label", "path", "adapters": []}], "max_new_tokens": 64 (0: no answers)}.
Prints one JSON object on its last stdout line:
{"versions": {...}, "pairs": [{"prompt"}], "models": [{"label", "path", "chosen", "rejected", "answers"}]}.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from typing import Any

IGNORE_INDEX = -100


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def encode_pairs(job: dict[str, Any], model_dir: str, output_dir: str) -> tuple[Any, list[dict[str, list[int]]]]:
    """The pairs as LLaMA-Factory's DPO data pipeline encodes them for this model's tokenizer."""
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    args = {
        "model_name_or_path": model_dir,
        "stage": "dpo",
        "do_train": True,
        "finetuning_type": "lora",
        "dataset": job["dataset"],
        "dataset_dir": job["dataset_dir"],
        "template": job["template"],
        "cutoff_len": int(job.get("cutoff_len") or 2048),
        "overwrite_cache": True,
        "preprocessing_num_workers": 1,
        "output_dir": output_dir,
        "report_to": "none",
        "use_cpu": True,
        **job.get("data_args", {}),
    }
    model_args, data_args, training_args, _, _ = get_train_args(args)
    tokenizer_module = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
    module = get_dataset(template, model_args, data_args, training_args, stage="rm", **tokenizer_module)
    rows = [dict(row) for row in module["train_dataset"]]
    return tokenizer_module["tokenizer"], rows


def answer_logp(model: Any, input_ids: list[int], labels: list[int]) -> float:
    """Sum of log p(label token | everything before it) over the answer's tokens (get_batch_logps)."""
    import torch

    ids = torch.tensor([input_ids])
    with torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits.to(torch.float32)
    target = torch.tensor([labels])[:, 1:]
    logps = torch.log_softmax(logits[:, :-1, :], dim=-1)
    mask = target != IGNORE_INDEX
    picked = torch.gather(logps, 2, torch.where(mask, target, 0).unsqueeze(2)).squeeze(2)
    return float((picked * mask).sum())


def greedy(model: Any, tokenizer: Any, prompt_ids: list[int], max_new_tokens: int) -> str:
    import torch

    ids = torch.tensor([prompt_ids])
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        )
    return tokenizer.decode(out[0, len(prompt_ids) :], skip_special_tokens=True).strip()


def main() -> int:
    os.environ.setdefault("DISABLE_VERSION_CHECK", "1")
    job = json.load(sys.stdin)
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    result: dict[str, Any] = {
        "versions": {k: _version(k) for k in ("llamafactory", "transformers", "torch")},
        "pairs": [],
        "models": [],
    }
    max_new = int(job.get("max_new_tokens", 64))
    with tempfile.TemporaryDirectory(prefix="lf-wrap-pref-") as tmp:
        for spec in job["models"]:
            tokenizer, rows = encode_pairs(job, spec["path"], tmp)
            model = AutoModelForCausalLM.from_pretrained(spec["path"], dtype=torch.float32)
            for adapter in spec.get("adapters") or []:  # LoRA adapters, merged in order (as export merges them)
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
            model.eval()
            chosen, rejected, answers = [], [], []
            prompts = []
            for row in rows:
                n_prompt = next(i for i, x in enumerate(row["chosen_labels"]) if x != IGNORE_INDEX)
                prompt_ids = row["chosen_input_ids"][:n_prompt]
                prompts.append(tokenizer.decode(prompt_ids, skip_special_tokens=False))
                chosen.append(answer_logp(model, row["chosen_input_ids"], row["chosen_labels"]))
                rejected.append(answer_logp(model, row["rejected_input_ids"], row["rejected_labels"]))
                if max_new > 0:
                    answers.append(greedy(model, tokenizer, prompt_ids, max_new))
            if not result["pairs"]:
                result["pairs"] = [{"prompt": p} for p in prompts]
            elif len(prompts) != len(result["pairs"]):
                raise SystemExit(f"{spec['path']}: {len(prompts)} pairs encoded, {len(result['pairs'])} for the first")
            entry = {"label": spec["label"], "path": spec["path"], "chosen": chosen, "rejected": rejected}
            if max_new > 0:
                entry["answers"] = answers
            result["models"].append(entry)
            del model
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
