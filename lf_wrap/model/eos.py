"""Does a fine-tuned model stop where its training answers stopped?

LLaMA-Factory ends every trained answer with its template's stop word (`qwen`: <|im_end|>,
`llama3`: <|eot_id|>, `deepseekr1`: the tokenizer's EOS) and, for templates that "replace
the EOS", writes that token as the merged tokenizer's EOS. It copies config.json and
generation_config.json from the base model unchanged. vLLM stops on the tokenizer's EOS and
on every id in generation_config.json's `eos_token_id` (it reads that file by default), and
transformers' `generate()` stops only on generation_config.json's list. A base model whose
files name another end token (Qwen2.5 base: <|endoftext|>; Llama-3 base: <|end_of_text|>)
therefore answers on past the end of its answer everywhere that reads those files.

`ensure_agreement` checks the exported folder: the stop token must be one token of the
vocabulary, the tokenizer's EOS, and in the EOS lists of generation_config.json and
config.json. When only those two files disagree the fix is unambiguous (add the stop token's
id to their lists) and lf-wrap makes it, says so and records it; anything else is an error
that says what to change. Only reads JSON: no transformers import.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lf_wrap.util.errors import ExternalError
from lf_wrap.util.files import atomic_write, read_json_object

# The first stop word of LLaMA-Factory 0.9.5 templates (src/llamafactory/data/template.py):
# what a trained answer ends with. Templates without one end answers with the tokenizer's EOS.
# (All of these also `replace_eos`: the merged tokenizer's EOS is this token.)
TEMPLATE_STOP_WORDS: dict[str, str] = {
    **dict.fromkeys(
        ("qwen", "qwen2_vl", "qwen3", "qwen3_nothink", "qwen3_vl", "qwen3_vl_nothink", "qwen3_5", "qwen3_5_nothink",
         "chatml", "phi4", "smollm", "smollm2"),
        "<|im_end|>",
    ),
    **dict.fromkeys(("llama3", "mllama"), "<|eot_id|>"),
    **dict.fromkeys(("gemma", "gemma3"), "<end_of_turn>"),
}  # fmt: skip


@dataclass
class EosReport:
    model_dir: str
    template: str | None
    stop_token: str | None
    stop_id: int | None
    tokenizer_eos: str | None
    tokenizer_eos_id: int | None
    config_eos: list[int]
    generation_eos: list[int] | None  # None: no generation_config.json
    problems: list[str] = field(default_factory=list)  # not repairable
    fixes: list[str] = field(default_factory=list)  # what to do about the problems
    disagreements: list[str] = field(default_factory=list)  # repairable: generation_config/config lists
    repairs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.disagreements

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON file of the exported model: unreadable or of the wrong shape, the export is at fault (exit 1)."""
    return read_json_object(path, error=ExternalError)


def _id_list(value: Any) -> list[int]:
    if isinstance(value, int):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, int)]
    return []


def _token_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def token_ids(model_dir: Path) -> dict[str, int]:
    """Token → id for the added/special tokens and the vocabulary of tokenizer.json."""
    ids: dict[str, int] = {}
    tok_json = model_dir / "tokenizer.json"
    if tok_json.exists():
        data = _read_json(tok_json)
        vocab = (data.get("model") or {}).get("vocab")
        if isinstance(vocab, dict):
            ids.update({k: v for k, v in vocab.items() if isinstance(v, int)})
        for added in data.get("added_tokens") or []:
            if isinstance(added, dict) and isinstance(added.get("id"), int) and isinstance(added.get("content"), str):
                ids[added["content"]] = added["id"]
    tok_cfg = model_dir / "tokenizer_config.json"
    if tok_cfg.exists():
        for key, added in (_read_json(tok_cfg).get("added_tokens_decoder") or {}).items():
            text = _token_text(added)
            if text is not None and str(key).isdigit():
                ids.setdefault(text, int(key))
    return ids


def _vocab_size(config: dict[str, Any]) -> int | None:
    for cfg in (config, config.get("text_config") or {}):
        if isinstance(cfg, dict) and isinstance(cfg.get("vocab_size"), int):
            return cfg["vocab_size"]
    return None


def inspect(model_dir: Path, template: str | None) -> EosReport:
    """Read the folder and say what agrees; writes nothing."""
    config = _read_json(model_dir / "config.json")
    gen_path = model_dir / "generation_config.json"
    generation = _read_json(gen_path) if gen_path.exists() else None
    tok_cfg_path = model_dir / "tokenizer_config.json"
    tok_cfg = _read_json(tok_cfg_path) if tok_cfg_path.exists() else {}
    ids = token_ids(model_dir)
    tokenizer_eos = _token_text(tok_cfg.get("eos_token"))
    special_map = model_dir / "special_tokens_map.json"
    if tokenizer_eos is None and special_map.exists():  # older tokenizers keep it there
        tokenizer_eos = _token_text(_read_json(special_map).get("eos_token"))
    stop = TEMPLATE_STOP_WORDS.get(template or "") or tokenizer_eos
    nested = config.get("text_config")
    text_config = nested if isinstance(nested, dict) else {}
    config_eos = _id_list(config["eos_token_id"] if "eos_token_id" in config else text_config.get("eos_token_id"))
    report = EosReport(
        model_dir=str(model_dir),
        template=template,
        stop_token=stop,
        stop_id=ids.get(stop) if stop else None,
        tokenizer_eos=tokenizer_eos,
        tokenizer_eos_id=ids.get(tokenizer_eos) if tokenizer_eos else None,
        config_eos=config_eos,
        generation_eos=_id_list(generation.get("eos_token_id")) if generation is not None else None,
    )
    where = f"template {template!r}" if template in TEMPLATE_STOP_WORDS else "the tokenizer's EOS"
    if stop is None:
        report.problems.append(f"no stop token: {tok_cfg_path} names no eos_token and {where} has no stop word")
        report.fixes.append(f"set eos_token in {tok_cfg_path} to the token the model's answers end with")
        return report
    if report.stop_id is None:
        report.problems.append(f"the answers end with {stop!r} ({where}), which is not a token of {model_dir}")
        report.fixes.append("train with the template that matches the model (`template:` in lf-wrap.yaml)")
        return report
    vocab_size = _vocab_size(config)
    if vocab_size is not None and report.stop_id >= vocab_size:
        report.problems.append(
            f"the stop token {stop!r} has id {report.stop_id}, beyond the model's vocab_size {vocab_size}: "
            "the model can never produce it"
        )
        report.fixes.append(
            "train with the template that matches the model, or with --set resize_vocab=true so the new token "
            "gets an embedding"
        )
    if tokenizer_eos != stop:
        report.problems.append(
            f"the answers end with {stop!r} ({where}) but {tok_cfg_path} names {tokenizer_eos!r} as eos_token"
        )
        report.fixes.append(f'set "eos_token": {json.dumps(stop, ensure_ascii=False)} in {tok_cfg_path}')
    if generation is not None and report.stop_id not in (report.generation_eos or []):
        report.disagreements.append(
            f"generation_config.json: eos_token_id {generation.get('eos_token_id')!r} lacks {report.stop_id} "
            f"({stop!r}, what the answers end with)"
        )
    if report.stop_id not in config_eos:
        report.disagreements.append(
            f"config.json: eos_token_id {config.get('eos_token_id')!r} lacks {report.stop_id} ({stop!r})"
        )
    return report


def _with(value: Any, token_id: int) -> list[int]:
    return [*_id_list(value), token_id]


def repair(report: EosReport) -> list[str]:
    """Add the stop token's id to generation_config.json's and config.json's EOS lists."""
    assert report.stop_id is not None and not report.problems
    model_dir = Path(report.model_dir)
    done: list[str] = []
    gen_path = model_dir / "generation_config.json"
    if report.generation_eos is not None and report.stop_id not in report.generation_eos:
        gen = _read_json(gen_path)
        before = gen.get("eos_token_id")
        gen["eos_token_id"] = _with(before, report.stop_id)
        atomic_write(gen_path, json.dumps(gen, indent=2, ensure_ascii=False) + "\n")
        done.append(f"generation_config.json: eos_token_id {before!r} -> {gen['eos_token_id']!r}")
    if report.stop_id not in report.config_eos:
        cfg_path = model_dir / "config.json"
        cfg = _read_json(cfg_path)
        holder = cfg if "eos_token_id" in cfg or "text_config" not in cfg else cfg["text_config"]
        before = holder.get("eos_token_id")
        holder["eos_token_id"] = _with(before, report.stop_id)
        atomic_write(cfg_path, json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")
        done.append(f"config.json: eos_token_id {before!r} -> {holder['eos_token_id']!r}")
    report.repairs = done
    return done


def ensure_agreement(model_dir: Path, template: str | None) -> EosReport:
    """Check; repair the EOS lists when that is the only problem; raise ExternalError otherwise."""
    report = inspect(model_dir, template)
    if report.problems:
        raise ExternalError(
            f"the exported model in {model_dir} would not stop where its training answers stop:\n"
            + "\n".join(f"  - {p}" for p in report.problems),
            hint="; ".join(report.fixes),
        )
    if report.disagreements:
        repair(report)
    return report
