"""Picking the LLaMA-Factory chat template from a model folder's own files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lf_wrap.model.template_choice import detect
from lf_wrap.util.errors import LfWrapError

CHATML = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"


def model(
    tmp_path: Path,
    model_type: str,
    chat_template: str | None,
    where: str = "tokenizer_config.json",
    name: str = "model",  # the folder's name: a name with a family's word in it puts that template first
) -> Path:
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": model_type, "architectures": ["X"]}))
    if chat_template is not None:
        if where == "chat_template.jinja":
            (folder / where).write_text(chat_template)
        else:
            (folder / where).write_text(json.dumps({"chat_template": chat_template}))
    return folder


@pytest.mark.parametrize(
    ("model_type", "chat_template", "template", "runner_up"),
    [
        ("qwen2", CHATML, "qwen", "qwen3"),
        ("qwen3", CHATML + "{% if enable_thinking %}<think>\n\n</think>{% endif %}", "qwen3", "qwen3_nothink"),
        ("llama", "<|start_header_id|>{{ role }}<|end_header_id|>\n\n", "llama3", "llama4"),
        ("qwen2", "{{ bos_token }}<｜User｜>{{ c }}<｜Assistant｜><think>\n", "deepseekr1", "deepseek3"),
        ("deepseek_v3", "<｜User｜>{{ c }}<｜Assistant｜>", "deepseek3", "deepseekr1"),
        ("gemma", "<start_of_turn>user\n{{ c }}<end_of_turn>", "gemma", "gemma2"),
        ("gemma3", "<start_of_turn>user\n{{ c }}<end_of_turn>", "gemma3", "gemma"),
        ("mistral", "{{ bos_token }}[INST] {{ c }} [/INST]", "mistral", "llama2"),
        ("phi3", "<|user|>\n{{ c }}<|end|>\n<|assistant|>\n", "phi", "phi_small"),
        ("olmo", CHATML, "chatml", "qwen"),
    ],
)
def test_the_model_family_decides_the_template(tmp_path, model_type, chat_template, template, runner_up):
    found = detect(model(tmp_path, model_type, chat_template))
    assert (found.template, found.runner_up) == (template, runner_up)
    assert found.reason.startswith("the model's chat template has ")
    assert f"model_type {model_type!r}" in found.reason


def test_the_template_is_read_from_chat_template_jinja_too(tmp_path):
    assert detect(model(tmp_path, "qwen2", CHATML, where="chat_template.jinja")).template == "qwen"


def test_named_chat_templates_are_read(tmp_path):
    folder = model(tmp_path, "qwen2", None)
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"chat_template": [{"name": "default", "template": CHATML}]})
    )
    assert detect(folder).template == "qwen"


def test_a_base_model_without_chat_template_goes_by_model_type(tmp_path):
    found = detect(model(tmp_path, "qwen3", None))
    assert found.template == "qwen3"
    assert "(the folder has no chat template)" in found.reason


def test_the_demo_model_is_qwen(tiny_model):
    found = detect(tiny_model)
    assert found.template == "qwen"


def test_an_unknown_model_lists_the_templates_and_how_to_choose(tmp_path):
    with pytest.raises(LfWrapError) as err:
        detect(model(tmp_path, "mystery", "User: {{ c }}\nBot:"))
    text = str(err.value)
    assert "cannot tell which LLaMA-Factory chat template fits this model (model_type 'mystery'" in text
    assert "its chat template matches no known family" in text
    assert "LLaMA-Factory's templates: " in text and "llama3" in text and "qwen" in text
    assert "pass --template NAME" in text


def test_a_format_only_chat_template_puts_the_familys_own_template_first(tmp_path):
    found = detect(model(tmp_path, "llama", CHATML, name="SmolLM2-135M-Instruct"))
    assert (found.template, found.runner_up) == ("smollm2", "chatml")
    assert found.reason.startswith("its name says family 'smollm2'")


def test_markers_that_name_a_family_win_over_the_words_of_the_folder_name(tmp_path):
    r1 = "{{ bos_token }}<｜User｜>{{ c }}<｜Assistant｜><think>\n"
    found = detect(model(tmp_path, "qwen2", r1, name="DeepSeek-R1-Distill-Qwen-1.5B"))
    assert found.template == "deepseekr1"
    assert found.candidates[0] == "deepseek3"
    assert {"deepseek", "qwen"} <= set(found.candidates[1:])
