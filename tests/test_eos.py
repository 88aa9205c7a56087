"""EOS agreement after export (lf_wrap/model/eos.py), on hand-made model folders with the real ids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lf_wrap.model.eos import ensure_agreement, inspect
from lf_wrap.steps.export import check_eos
from lf_wrap.util.errors import ExternalError

QWEN = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}
LLAMA = {"<|begin_of_text|>": 128000, "<|end_of_text|>": 128001, "<|eom_id|>": 128008, "<|eot_id|>": 128009}


def folder(
    root: Path,
    tokens: dict[str, int],
    *,
    tokenizer_eos: str,
    config_eos: Any,
    generation_eos: Any = None,
    vocab_size: int = 151936,
) -> Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text(
        json.dumps({"model_type": "x", "vocab_size": vocab_size, "eos_token_id": config_eos})
    )
    if generation_eos is not None:
        (root / "generation_config.json").write_text(json.dumps({"eos_token_id": generation_eos, "do_sample": True}))
    (root / "tokenizer_config.json").write_text(json.dumps({"eos_token": tokenizer_eos}))
    added = [{"id": i, "content": t, "special": True} for t, i in tokens.items()]
    (root / "tokenizer.json").write_text(json.dumps({"added_tokens": added, "model": {"type": "BPE", "vocab": {}}}))
    return root


def test_an_instruct_model_whose_files_agree_is_left_alone(tmp_path):
    # Qwen2.5-Instruct as LLaMA-Factory exports it with template qwen.
    model = folder(tmp_path / "m", QWEN, tokenizer_eos="<|im_end|>", config_eos=151645, generation_eos=[151645, 151643])
    before = {p.name: p.read_bytes() for p in model.iterdir()}
    report = ensure_agreement(model, "qwen")
    assert report.ok and report.repairs == [] and report.stop_id == 151645
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before


def test_a_base_model_that_stops_on_another_token_gets_the_stop_token_added(tmp_path, capsys):
    # Llama-3 *base* trained with template llama3: the export's tokenizer ends answers with <|eot_id|>,
    # but config.json and generation_config.json (copied from the base) only stop on <|end_of_text|>.
    model = folder(tmp_path / "m", LLAMA, tokenizer_eos="<|eot_id|>", config_eos=128001, generation_eos=128001)
    assert not inspect(model, "llama3").ok
    facts = check_eos(model, "llama3")
    assert json.loads((model / "generation_config.json").read_text())["eos_token_id"] == [128001, 128009]
    assert json.loads((model / "generation_config.json").read_text())["do_sample"] is True  # the rest is kept
    assert json.loads((model / "config.json").read_text())["eos_token_id"] == [128001, 128009]
    assert facts["repairs"] == [
        "generation_config.json: eos_token_id 128001 -> [128001, 128009]",
        "config.json: eos_token_id 128001 -> [128001, 128009]",
    ]
    assert "export: repaired generation_config.json" in capsys.readouterr().err
    assert inspect(model, "llama3").ok  # and a second look finds nothing to do


def test_without_generation_config_only_config_json_is_repaired(tmp_path):
    model = folder(tmp_path / "m", QWEN, tokenizer_eos="<|im_end|>", config_eos=151643)
    report = ensure_agreement(model, "qwen")
    assert report.repairs == ["config.json: eos_token_id 151643 -> [151643, 151645]"]
    assert not (model / "generation_config.json").exists()


def test_a_template_without_stop_words_stops_on_the_tokenizers_eos(tmp_path):
    r1 = {"<｜end▁of▁sentence｜>": 151643, "<｜begin▁of▁sentence｜>": 151646}
    model = folder(tmp_path / "m", r1, tokenizer_eos="<｜end▁of▁sentence｜>", config_eos=151643, generation_eos=151643)
    report = ensure_agreement(model, "deepseekr1")
    assert report.ok and report.stop_token == "<｜end▁of▁sentence｜>"


def test_token_id_zero_counts_as_an_eos_id(tmp_path):
    # The tiny look-alikes put special tokens first: R1's EOS is id 0 in config.json.
    model = folder(tmp_path / "m", {"<｜end▁of▁sentence｜>": 0}, tokenizer_eos="<｜end▁of▁sentence｜>", config_eos=0,
                   generation_eos=0, vocab_size=1028)  # fmt: skip
    report = ensure_agreement(model, "deepseekr1")
    assert report.ok and report.config_eos == [0] and report.repairs == []


def test_a_tokenizer_eos_that_is_not_the_templates_stop_word_fails_with_the_fix(tmp_path):
    model = folder(tmp_path / "m", QWEN, tokenizer_eos="<|endoftext|>", config_eos=151645, generation_eos=[151645])
    with pytest.raises(ExternalError) as err:
        ensure_agreement(model, "qwen")
    assert err.value.exit_code == 1
    assert "the answers end with '<|im_end|>' (template 'qwen')" in str(err.value)
    assert f'set "eos_token": "<|im_end|>" in {model / "tokenizer_config.json"}' in err.value.hint
    assert json.loads((model / "generation_config.json").read_text())["eos_token_id"] == [151645]  # untouched


def test_a_stop_word_the_vocabulary_lacks_fails_without_touching_anything(tmp_path):
    model = folder(tmp_path / "m", QWEN, tokenizer_eos="<|im_end|>", config_eos=151645, generation_eos=151645)
    with pytest.raises(ExternalError) as err:
        ensure_agreement(model, "llama3")
    assert "'<|eot_id|>' (template 'llama3'), which is not a token of" in str(err.value)
    assert "template that matches the model" in err.value.hint


def test_a_stop_token_beyond_the_embedding_is_refused(tmp_path):
    model = folder(tmp_path / "m", QWEN, tokenizer_eos="<|im_end|>", config_eos=151645, vocab_size=151645)
    with pytest.raises(ExternalError) as err:
        ensure_agreement(model, "qwen")
    assert "beyond the model's vocab_size 151645" in str(err.value) and "resize_vocab" in err.value.hint
