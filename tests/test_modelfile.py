"""The Ollama Modelfile's TEMPLATE (lf_wrap/steps/modelfile.py) and the llama.cpp pre-tokenizer a
tokenizer.json's rules name (lf_wrap/model/pretokenizer.py). The proof runs Go's own text/template
(`make setup-go`); the GGUF export, llama.cpp and the real converter are in tests/test_gguf.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lf_wrap.model import tiny
from lf_wrap.model.pretokenizer import LLAMA3_REGEX, QWEN2_REGEX, llamacpp_pre
from lf_wrap.steps import modelfile
from lf_wrap.steps.modelfile import CONVERSATIONS, go_render, pieces, render_jinja

QWEN = tiny.family("qwen2.5").chat_template


def test_the_template_is_proven_by_go_for_every_check_conversation_and_the_rows(tmp_path):
    rows = [[{"role": "user", "content": "请问你是谁"}], [{"role": "user", "content": 'Quote "{{ .System }}" as text'}]]
    written = modelfile.write(tmp_path / "conch.q8_0.gguf", QWEN, stops=["<|im_end|>", "<|im_end|>"],
                              sampling={"temperature": 0.0}, rows=rows)  # fmt: skip
    assert written.template_proven and written.compared == len(CONVERSATIONS) + 2
    text = written.text
    assert "FROM ./conch.q8_0.gguf\n" in text and "ollama create conch -f" in text
    assert 'SYSTEM """You are Qwen, created by Alibaba Cloud. You are a helpful assistant."""' in text
    assert text.count('PARAMETER stop "<|im_end|>"') == 1 and "PARAMETER temperature 0\n" in text
    template = text.split('TEMPLATE """')[1].split('"""')[0]
    # the Modelfile's own TEMPLATE, rendered by Go with Ollama's data, is the Jinja template's text
    assert go_render(template, rows) == [render_jinja(QWEN, r, True) for r in rows]


def test_a_template_that_agrees_with_training_only_for_the_data_says_so_above_it(tmp_path):
    caveat = "The run's template check: the model's chat template agrees for this data (single-turn, no system prompts)"
    written = modelfile.write(tmp_path / "m.gguf", QWEN, stops=[], sampling={}, rows=[], caveat=caveat)
    lines = written.text.splitlines()
    template_at = next(i for i, line in enumerate(lines) if line.startswith('TEMPLATE """'))
    assert lines[template_at - 1] == f"# {caveat}" and written.facts["caveat"] == caveat


@pytest.mark.parametrize("family", ["qwen2.5", "qwen3", "llama3"])
def test_turn_based_templates_of_the_tiny_families_are_proven(tmp_path, family):
    written = modelfile.write(tmp_path / "m.f16.gguf", tiny.family(family).chat_template, stops=[], sampling={},
                              rows=[])  # fmt: skip
    assert written.template_proven, written.why_not


def test_a_no_thinking_run_gets_the_generation_prompt_it_was_trained_with(tmp_path):
    template = tiny.family("qwen3").chat_template
    written = modelfile.write(tmp_path / "m.gguf", template, stops=[], sampling={}, rows=[],
                              kwargs={"enable_thinking": False})  # fmt: skip
    assert written.template_proven
    template = written.text.split('TEMPLATE """')[1].split('"""')[0]
    assert template.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


NUMBERED = (
    "{% for m in messages %}<{{ m['role'] }} {{ loop.index }}>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def test_a_template_that_is_not_turn_by_turn_gets_no_template_and_says_why(tmp_path):
    written = modelfile.write(tmp_path / "m.gguf", NUMBERED, stops=["</s>"], sampling={}, rows=[])
    assert not written.template_proven and 'TEMPLATE """' not in written.text
    assert written.why_not == "later turns are written differently from the first ones (e.g. earlier reasoning dropped)"
    assert f"# No TEMPLATE: {written.why_not}. Ollama will pick one itself" in written.text
    assert 'PARAMETER stop "</s>"' in written.text  # the rest of the Modelfile still stands


def test_a_template_lf_wrap_cannot_render_is_said():
    assert "does not render here" in str(pieces("{{ raise_exception('no system prompts') }}"))
    assert "does not render here" in str(pieces("{{ strftime_now('%d %b %Y') }}{{ messages }}"))


def test_go_reports_a_template_it_cannot_parse():
    from lf_wrap.util.errors import LfWrapError

    with pytest.raises(LfWrapError, match="TEMPLATE does not parse"):
        go_render("{{ if }}", [[{"role": "user", "content": "hi"}]])


# -- the pre-tokenizer llama.cpp should use when its converter does not know the tokenizer's hash ------
def _byte_level(use_regex: bool) -> dict:
    return {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": use_regex}


def _split(regex: str) -> dict:
    return {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False}, _byte_level(False)]}  # fmt: skip


@pytest.mark.parametrize(
    ("pre_tokenizer", "name"),
    [(_byte_level(True), "gpt-2"), (_split(QWEN2_REGEX), "qwen2"), (_split(LLAMA3_REGEX), "llama-bpe"),
     (_split(QWEN2_REGEX + "|x"), None), (_byte_level(False), None),
     ({**_byte_level(True), "add_prefix_space": True}, None)],
)  # fmt: skip
def test_a_tokenizers_rules_name_the_llamacpp_pre_tokenizer_only_when_they_are_exactly_its(pre_tokenizer, name):
    assert llamacpp_pre({"model": {"type": "BPE"}, "pre_tokenizer": pre_tokenizer}) == name
    assert llamacpp_pre({"model": {"type": "Unigram"}, "pre_tokenizer": pre_tokenizer}) is None


def test_the_tiny_families_tokenizers_are_named(tiny_family):
    want = {"qwen2.5": "gpt-2", "qwen3": "qwen2", "llama3": "llama-bpe"}
    for family, name in want.items():
        tokenizer = json.loads((Path(tiny_family(family)) / "tokenizer.json").read_text())
        assert llamacpp_pre(tokenizer) == name, family
