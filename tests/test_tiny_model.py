"""`lf-wrap model tiny`: real, loadable, deterministic tiny chat models that look like real families."""

from __future__ import annotations

import json
import shutil

import pytest

from lf_wrap.model.tiny import QWEN_DEFAULT_SYSTEM, build

from .conftest import DATASETS


def test_tiny_model_loads_with_transformers_and_generates(tiny_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Who are you?"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 8 or out[0, -1].item() in model.generation_config.eos_token_id
    assert isinstance(tokenizer.decode(out[0]), str)


def test_tiny_model_shape_fits_vllm_cpu_and_lora(tiny_model):
    config = json.loads((tiny_model / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForCausalLM"]
    assert config["hidden_size"] == 128 and config["num_hidden_layers"] == 2
    assert config["hidden_size"] // config["num_attention_heads"] == 64  # vLLM CPU rejects head_dim 16
    assert (tiny_model / "model.safetensors").stat().st_size < 3_000_000


def test_embeddings_are_initialised_wide_enough_for_lora_to_fit(tiny_model):
    from safetensors.numpy import load_file

    weights = load_file(tiny_model / "model.safetensors")
    assert 0.08 < float(weights["model.embed_tokens.weight"].std()) < 0.12


def test_chat_template_renders_exactly_what_llamafactory_qwen_trains_on(tiny_model):
    # LLaMA-Factory 0.9.5 `qwen` template: system slot (default system when none), then
    # user "<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n", assistant "{a}<|im_end|>\n".
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    msgs = [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
    ]
    expected = (
        f"<|im_start|>system\n{QWEN_DEFAULT_SYSTEM}<|im_end|>\n"
        "<|im_start|>user\nq1<|im_end|>\n<|im_start|>assistant\na1<|im_end|>\n"
        "<|im_start|>user\nq2<|im_end|>\n<|im_start|>assistant\n"
    )
    assert tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) == expected
    with_system = [{"role": "system", "content": "S"}, *msgs[:2]]
    assert tok.apply_chat_template(with_system, tokenize=False).startswith(
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user"
    )
    assert tok.eos_token == "<|im_end|>"
    for special in ("<|im_start|>", "<|im_end|>", "<|endoftext|>"):
        assert len(tok.encode(special, add_special_tokens=False)) == 1


def test_same_seed_builds_identical_weights_and_tokenizer(tmp_path, tiny_model):
    again = build(tmp_path / "again", DATASETS, seed=0)
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == (tiny_model / "model.safetensors").read_bytes()
    assert (tmp_path / "again" / "tokenizer.json").read_bytes() == (tiny_model / "tokenizer.json").read_bytes()
    other = build(tmp_path / "other", DATASETS, seed=1)
    assert other["weights_sha256"] != again["weights_sha256"]


def test_cli_builds_once_and_keeps_an_existing_model(run, tmp_path):
    result = run("model", "tiny", "m", "--json")
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout[result.stdout.index("{") :])
    assert facts["built"] is True and facts["vocab_size"] <= 1024
    again = run("model", "tiny", "m")
    assert "a model is already there (pass --force to rebuild)" in again.stdout


# -- look-alikes of other families (--family) ------------------------------------------------
# What the real checkpoints' config.json / generation_config.json / tokenizer_config.json say,
# by token (the tiny ids differ): Qwen/Qwen3-0.6B, deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B,
# meta-llama/Llama-3.2-1B-Instruct, Qwen/Qwen2.5-0.5B-Instruct.
QWEN_TOKENS = {  # Qwen2.5 and Qwen3 lay their tokens out alike
    "config": {"bos_token_id": "<|endoftext|>", "eos_token_id": "<|im_end|>"},
    "generation": {"bos_token_id": "<|endoftext|>", "eos_token_id": ["<|im_end|>", "<|endoftext|>"],
                   "pad_token_id": "<|endoftext|>"},
    "tokenizer": {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
}  # fmt: skip
REAL_LAYOUT = {
    "qwen2.5": {"architecture": "Qwen2ForCausalLM", **QWEN_TOKENS},
    "qwen3": {"architecture": "Qwen3ForCausalLM", **QWEN_TOKENS},
    "deepseek-r1-distill": {
        "architecture": "Qwen2ForCausalLM",
        "config": {"bos_token_id": "<｜end▁of▁sentence｜>", "eos_token_id": "<｜end▁of▁sentence｜>"},
        "generation": {"bos_token_id": "<｜begin▁of▁sentence｜>", "eos_token_id": "<｜end▁of▁sentence｜>"},
        "tokenizer": {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>",
                      "pad_token": "<｜end▁of▁sentence｜>"},
    },
    "llama3": {
        "architecture": "LlamaForCausalLM",
        "config": {"bos_token_id": "<|begin_of_text|>", "eos_token_id": ["<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"]},
        "generation": {"bos_token_id": "<|begin_of_text|>",
                       "eos_token_id": ["<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"]},
        "tokenizer": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "pad_token": None},
    },
}  # fmt: skip
FAMILIES = list(REAL_LAYOUT)
CONVERSATION = [
    {"role": "user", "content": "q1"},
    {"role": "assistant", "content": "<think>\nr1\n</think>\n\na1"},
    {"role": "user", "content": "q2"},
]


def _tokens(tok, value):
    return tok.convert_ids_to_tokens(value) if value is not None else None


@pytest.mark.parametrize("family", FAMILIES)
def test_family_lays_out_bos_eos_pad_like_the_real_config_files(family, tiny_family):
    from transformers import AutoTokenizer

    model = tiny_family(family)
    real = REAL_LAYOUT[family]
    tok = AutoTokenizer.from_pretrained(model)
    config = json.loads((model / "config.json").read_text())
    generation = json.loads((model / "generation_config.json").read_text())
    assert config["architectures"] == [real["architecture"]]
    for key, token in real["config"].items():
        assert _tokens(tok, config[key]) == token, f"config.json {key}"
    for key, token in real["generation"].items():
        assert _tokens(tok, generation[key]) == token, f"generation_config.json {key}"
    for key, token in real["tokenizer"].items():
        assert getattr(tok, key) == token, f"tokenizer {key}"
    # Every special token the template writes is one token, and the eos id is the tokenizer's eos.
    assert tok.convert_tokens_to_ids(tok.eos_token) == tok.eos_token_id


@pytest.mark.parametrize("family", FAMILIES)
def test_family_loads_and_generates_with_transformers_at_vllm_cpu_shapes(family, tiny_family):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = tiny_family(family)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    assert config["hidden_size"] == 128 and config["head_dim"] == 64 and config["num_attention_heads"] == 2
    inputs = tok.apply_chat_template(CONVERSATION, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_qwen3_family_has_qk_norm_and_a_thinking_switch(tiny_family):
    from safetensors.numpy import load_file
    from transformers import AutoTokenizer

    model = tiny_family("qwen3")
    assert "model.layers.0.self_attn.q_norm.weight" in load_file(model / "model.safetensors")
    tok = AutoTokenizer.from_pretrained(model)
    thinking = tok.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)
    assert thinking == (
        "<|im_start|>user\nq1<|im_end|>\n<|im_start|>assistant\na1<|im_end|>\n"  # earlier thinking dropped
        "<|im_start|>user\nq2<|im_end|>\n<|im_start|>assistant\n"
    )
    no_think = tok.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True, enable_thinking=False)
    assert no_think == thinking + "<think>\n\n</think>\n\n"
    last_turn = tok.apply_chat_template(CONVERSATION[:2], tokenize=False)
    assert last_turn.endswith("<|im_start|>assistant\n<think>\nr1\n</think>\n\na1<|im_end|>\n")
    # <think> is one token, and not a special one: it survives skip_special_tokens like in Qwen3
    ids = tok.encode("<think>x</think>", add_special_tokens=False)
    assert tok.decode(ids, skip_special_tokens=True) == "<think>x</think>" and len(ids) == 3


def test_r1_family_opens_the_think_block_in_the_generation_prompt(tiny_family):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_family("deepseek-r1-distill"))
    prompt = tok.apply_chat_template(
        [{"role": "system", "content": "S"}, *CONVERSATION], tokenize=False, add_generation_prompt=True
    )
    assert prompt == (
        "<｜begin▁of▁sentence｜>S<｜User｜>q1<｜Assistant｜>\n\na1<｜end▁of▁sentence｜>"
        "<｜User｜>q2<｜Assistant｜><think>\n"
    )


def test_r1_family_ships_the_real_tokenizer_class_which_train_refuses_with_the_fix(tiny_family, tmp_path):
    from transformers import AutoTokenizer

    from lf_wrap.model.tokenizer import check_tokenizer_class
    from lf_wrap.util.errors import LfWrapError

    model = tmp_path / "r1"
    shutil.copytree(tiny_family("deepseek-r1-distill"), model)
    cfg = json.loads((model / "tokenizer_config.json").read_text())
    assert cfg["tokenizer_class"] == "LlamaTokenizerFast" and cfg["add_bos_token"] is True  # as the real one
    with pytest.raises(LfWrapError) as err:
        check_tokenizer_class(model)
    assert "drops every space" in str(err.value) and err.value.exit_code == 2
    assert f'set "tokenizer_class": "PreTrainedTokenizerFast" in {model / "tokenizer_config.json"}' in err.value.hint
    (model / "tokenizer_config.json").write_text(json.dumps({**cfg, "tokenizer_class": "PreTrainedTokenizerFast"}))
    check_tokenizer_class(model)
    tok = AutoTokenizer.from_pretrained(model)
    assert tok.decode(tok.encode("I am the Magic Conch.")) == "<｜begin▁of▁sentence｜>I am the Magic Conch."


def test_llama3_family_writes_the_cutting_knowledge_system_block(tiny_family):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_family("llama3"))
    prompt = tok.apply_chat_template(
        [{"role": "system", "content": " S "}, *CONVERSATION[:1]],
        tokenize=False,
        add_generation_prompt=True,
        date_string="26 Jul 2024",
    )
    assert prompt == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nS<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nq1<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    today = tok.apply_chat_template(CONVERSATION[:1], tokenize=False, add_generation_prompt=True)
    assert "Cutting Knowledge Date: December 2023\nToday Date: " in today  # today's date, as in Llama-3.2


def test_cli_family_choices_are_the_built_families():
    from lf_wrap.cli.model import model_tiny
    from lf_wrap.model.tiny import FAMILIES as BUILT

    choice = next(p for p in model_tiny.params if p.name == "family")
    assert list(choice.type.choices) == list(BUILT) == FAMILIES


# -- sizes (--size) -----------------------------------------------------------------------------
def test_cli_size_choices_are_the_built_sizes():
    from lf_wrap.cli.model import model_tiny
    from lf_wrap.model.tiny import SIZES

    choice = next(p for p in model_tiny.params if p.name == "size_name")
    assert list(choice.type.choices) == list(SIZES) == ["demo", "bench"]


def test_bench_size_is_a_qwen2_shape_big_enough_for_batching_to_matter(run, tmp_path):
    """bench/bench_serving.py serves it: >= 20 M parameters, grouped-query attention, head_dim 64."""
    result = run("model", "tiny", "b", "--size", "bench", "--json")
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout[result.stdout.index("{") :])
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert facts["params"] >= 20_000_000 and facts["architecture"] == "Qwen2ForCausalLM"
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_key_value_heads"]) == (512, 8, 2)
    assert config["hidden_size"] // config["num_attention_heads"] == 64


def test_unknown_size_is_refused_with_the_choices():
    from lf_wrap.model.tiny import size
    from lf_wrap.util.errors import LfWrapError

    with pytest.raises(LfWrapError, match="unknown model size 'huge'") as err:
        size("huge")
    assert err.value.hint == "choose one of: demo, bench"
