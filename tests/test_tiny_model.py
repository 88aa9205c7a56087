"""`lf-wrap model tiny`: a real, loadable, deterministic Qwen2-style chat model."""

from __future__ import annotations

import json

from lf_wrap.tiny_model import QWEN_DEFAULT_SYSTEM, build

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
