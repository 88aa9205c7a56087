"""The memory plan (lf_wrap/project/memory.py, steps/memory_check.py): one test per term, the
published figures it must come near (LLaMA-Factory's README table, vLLM's own KV-cache arithmetic),
and `train --dry-run` on a 7B model planned for a 24 GB card (LF_WRAP_FAKE_GPUS)."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from lf_wrap.project.memory import GIB, Shape, TrainSetup, kv_tokens, serve_plan, train_plan

from .conftest import DATASETS, REPO

SMOLLM2 = {"hidden_size": 576, "num_attention_heads": 9, "num_key_value_heads": 3, "num_hidden_layers": 30,
           "intermediate_size": 1536, "vocab_size": 49152, "tie_word_embeddings": True, "head_dim": 64}  # fmt: skip
LLAMA2_7B = {"hidden_size": 4096, "num_attention_heads": 32, "num_hidden_layers": 32, "intermediate_size": 11008,
             "vocab_size": 32000, "model_type": "llama", "architectures": ["LlamaForCausalLM"]}  # fmt: skip
LLAMA2_70B = {"hidden_size": 8192, "num_attention_heads": 64, "num_key_value_heads": 8, "num_hidden_layers": 80,
              "intermediate_size": 28672, "vocab_size": 32000}  # fmt: skip


def term(plan, name: str) -> float:
    return next(t.bytes for t in plan.terms if t.name == name)


# -- one test per term -------------------------------------------------------------------------
def test_parameters_are_counted_from_the_config_as_the_weights_hold_them():
    assert Shape.from_config(SMOLLM2).params == 134_515_008  # the SmolLM2 GGUF's own count (tied embeddings)
    assert Shape.from_config(LLAMA2_7B).params == 6_738_415_616  # Llama-2-7B's published count
    assert Shape.from_config(SMOLLM2, params=123).params == 123  # the safetensors headers win when there are any


def test_lora_counts_rank_times_in_plus_out_for_every_linear_layer():
    shape = Shape.from_config(SMOLLM2)
    per_layer = 8 * ((576 + 576) * 2 + (576 + 192) * 2 + (576 + 1536) * 3)  # q, o; k, v; gate, up, down
    assert shape.lora_params(8) == 30 * per_layer


def test_full_fine_tuning_is_16_bytes_a_parameter_and_8_in_pure_bf16():
    shape = Shape.from_config(LLAMA2_7B)
    full = train_plan(shape, TrainSetup("full"))
    assert term(full, "weights") + term(full, "gradients") + term(full, "optimizer") == 16 * shape.params
    pure = train_plan(shape, TrainSetup("full", pure_bf16=True))
    assert term(pure, "weights") + term(pure, "gradients") + term(pure, "optimizer") == 8 * shape.params


def test_lora_keeps_the_model_in_the_compute_dtype_and_only_the_adapter_trains():
    shape = Shape.from_config(LLAMA2_7B)
    plan = train_plan(shape, TrainSetup("lora", lora_rank=8))
    lora = shape.lora_params(8)
    assert term(plan, "weights") == shape.params * 2 + lora * 4
    assert term(plan, "gradients") == lora * 4 and term(plan, "optimizer") == lora * 8
    cpu = train_plan(shape, TrainSetup("lora", lora_rank=8, precision="fp32", gpu=False))
    assert term(cpu, "weights") == shape.params * 4 + lora * 4  # fp32 on CPU


def test_qlora_quantises_the_linear_layers_and_keeps_the_rest_in_16_bit():
    shape = Shape.from_config(LLAMA2_7B)
    four = term(train_plan(shape, TrainSetup("qlora", quantization_bit=4)), "weights")
    eight = term(train_plan(shape, TrainSetup("qlora", quantization_bit=8)), "weights")
    rest = (shape.params - shape.linear_params) * 2 + shape.lora_params(8) * 4
    assert four == pytest.approx(shape.linear_params * 0.53 + rest)
    assert eight == pytest.approx(shape.linear_params * 1.06 + rest)


def test_zero_splits_what_its_stage_shards_and_offload_moves_the_optimizer_off_the_gpu():
    shape = Shape.from_config(LLAMA2_7B)
    one = train_plan(shape, TrainSetup("full", devices=4))
    z2 = train_plan(shape, TrainSetup("full", devices=4, zero=2))
    z3 = train_plan(shape, TrainSetup("full", devices=4, zero=3))
    off = train_plan(shape, TrainSetup("full", devices=4, zero=3, offload=True))
    assert term(z2, "weights") == term(one, "weights") and term(z2, "gradients") == term(one, "gradients") / 4
    assert term(z3, "weights") == term(one, "weights") / 4 and term(z3, "optimizer") == term(one, "optimizer") / 4
    assert term(off, "optimizer") == 0


def test_gradient_checkpointing_keeps_one_input_a_layer_and_one_layer_in_full():
    shape = Shape.from_config(SMOLLM2)
    tokens = 8 * 512
    kept = train_plan(shape, TrainSetup("lora", batch=8, cutoff=512))
    full = train_plan(shape, TrainSetup("lora", batch=8, cutoff=512, checkpointing=False))
    one_layer = tokens * 34 * 576 * 2
    assert term(kept, "activations") == tokens * 576 * 2 * 30 + one_layer
    assert term(full, "activations") == one_layer * 30


def test_logits_are_kept_in_16_bit_and_fp32_with_their_gradient():
    shape = Shape.from_config(SMOLLM2)
    assert term(train_plan(shape, TrainSetup(batch=2, cutoff=100)), "logits") == 200 * 49152 * 10
    assert term(train_plan(shape, TrainSetup(batch=2, cutoff=100, gpu=False)), "logits") == 200 * 49152 * 20


def test_attention_scores_are_counted_on_cpu_only():
    shape = Shape.from_config(SMOLLM2)
    cpu = train_plan(shape, TrainSetup(batch=2, cutoff=100, gpu=False))
    assert term(cpu, "attention") == 2 * shape.heads * 100**2 * 4 * 2  # scores and softmax, fp32
    assert "attention" not in {t.name for t in train_plan(shape, TrainSetup(batch=2, cutoff=100)).terms}


def test_the_total_counts_the_larger_of_the_gradients_and_the_steps_tensors_not_both():
    shape = Shape.from_config(SMOLLM2)
    plan = train_plan(shape, TrainSetup(method="full", batch=1, cutoff=64, gpu=False))
    held = sum(t.bytes for t in plan.terms if t.name in ("weights", "optimizer", "runtime"))
    forward = sum(t.bytes for t in plan.terms if t.name in ("activations", "logits", "attention"))
    assert term(plan, "gradients") > forward  # a short sequence: the gradients are the larger
    assert plan.total == held + term(plan, "gradients")
    long = train_plan(shape, TrainSetup(method="lora", batch=8, cutoff=2048, gpu=False))
    assert long.total == pytest.approx(sum(t.bytes for t in long.terms if t.name != "gradients"))


def test_the_kv_cache_holds_what_vllms_start_up_log_says():
    # vLLM on CPU, SmolLM2 in float32 with VLLM_CPU_KVCACHE_SPACE=1: "CPU KV cache size: 23,296 tokens"
    # (runs/<name>/serve.log of the real-model run); vLLM rounds down to whole blocks of 16 tokens
    tokens = kv_tokens(Shape.from_config(SMOLLM2), "fp32", 1 * GIB)
    assert 23_296 <= tokens < 23_296 + 16
    plan = serve_plan(Shape.from_config(SMOLLM2), dtype="bf16", max_model_len=8192, concurrency=4, tp=2)
    assert term(plan, "KV cache") == 2 * 30 * 3 * 64 * 2 * 8192 * 4 / 2
    assert term(plan, "weights") == 134_515_008 * 2 / 2


# -- against published figures ----------------------------------------------------------------
# LLaMA-Factory's README, "Hardware Requirement" (estimated): 7B and 70B, GB = 1e9 bytes
PUBLISHED = [
    (LLAMA2_7B, TrainSetup("full"), 120), (LLAMA2_7B, TrainSetup("full", pure_bf16=True), 60),
    (LLAMA2_7B, TrainSetup("lora"), 16), (LLAMA2_7B, TrainSetup("qlora", quantization_bit=8), 10),
    (LLAMA2_7B, TrainSetup("qlora", quantization_bit=4), 6),
    (LLAMA2_70B, TrainSetup("lora"), 160), (LLAMA2_70B, TrainSetup("qlora", quantization_bit=4), 48),
]  # fmt: skip


@pytest.mark.parametrize(("config", "setup", "published_gb"), PUBLISHED)
def test_the_plan_is_within_30_percent_of_llamafactorys_table(config, setup, published_gb):
    planned = train_plan(Shape.from_config(config), TrainSetup(**{**setup.__dict__, "batch": 1, "cutoff": 512}))
    assert planned.total / 1e9 == pytest.approx(published_gb, rel=0.30)


# -- train --dry-run: the plan, and the go/no-go on a GPU whose memory is known ---------------------
RTX_4090 = "NVIDIA GeForce RTX 4090, 24564 MiB, 8.9"


def fake_7b(folder: Path, tiny_model: Path) -> None:
    """A Llama-2-7B-shaped folder: its config, one sparse safetensors file whose header holds 6.7 B
    parameters (no bytes on disk), and the tiny model's tokenizer and chat template."""
    folder.mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        if (tiny_model / name).exists():
            shutil.copy(tiny_model / name, folder / name)
    (folder / "config.json").write_text(json.dumps({**LLAMA2_7B, "torch_dtype": "bfloat16"}))
    n = Shape.from_config(LLAMA2_7B).params
    header = json.dumps({"weights": {"dtype": "BF16", "shape": [n], "data_offsets": [0, 2 * n]}}).encode()
    header += b" " * (-len(header) % 8)
    with (folder / "model.safetensors").open("wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        f.truncate(8 + len(header) + 2 * n)


@pytest.mark.slow  # the template check imports LLaMA-Factory (remembered after)
def test_a_7b_full_fine_tune_is_refused_on_a_24_gb_card_with_the_knobs_and_qlora_is_accepted(run, project,
                                                                                               tiny_model, monkeypatch):  # fmt: skip
    fake_7b(project / "models" / "llama-7b", tiny_model)
    (project / "lf-wrap.yaml").write_text(
        "model: models/llama-7b\ntemplate: qwen\nmethod: full\ndatasets: [magic_conch]\n"
        "train: {per_device_train_batch_size: 1, cutoff_len: 1024}\n"
    )
    monkeypatch.setenv("LF_WRAP_FAKE_GPUS", RTX_4090)
    refused = run("train", "--dry-run")
    assert refused.exit_code == 2
    assert "the memory plan needs 10" in refused.stderr and "NVIDIA GeForce RTX 4090 has 24.0 GiB" in refused.stderr
    assert "--set method=qlora --set quantization_bit=4:" in refused.stderr and "(fits)" in refused.stderr
    accepted = run("train", "--dry-run", "--set", "method=qlora", "--set", "quantization_bit=4")
    assert accepted.exit_code == 0, accepted.stderr
    assert (
        "# memory plan (training, per device):" in accepted.stderr
        and "of 24.0 GiB on NVIDIA GeForce RTX 4090: fits" in accepted.stderr
    )
    assert "linear params at 4-bit" in accepted.stderr


@pytest.mark.slow
def test_on_cpu_the_plan_is_shown_not_enforced(run, project, monkeypatch):
    import shutil as sh

    from lf_wrap.util.paths import demo_project

    sh.copy(demo_project(), project / "lf-wrap.yaml")
    monkeypatch.setenv("LF_WRAP_FAKE_GPUS", "none")
    done = run("train", "--dry-run")
    assert done.exit_code == 0, done.stderr
    assert "# memory plan (training, per device):" in done.stderr and "Python, torch, transformers" in done.stderr
    assert "DOES NOT FIT" not in done.stderr and DATASETS.is_dir()


# -- serve: the KV cache must hold one sequence of max_model_len, or vLLM refuses after loading ---------
def test_serve_says_how_many_sequences_the_kv_cache_holds_and_refuses_one_that_holds_none(run, tiny_model,
                                                                                           monkeypatch):  # fmt: skip
    ok = run("serve", "--dry-run", "--model", tiny_model)
    assert ok.exit_code == 0, ok.stderr
    # tiny model: 2 layers x 2 KV heads x head dim 64 x 2 (K, V) x 4 bytes (float32 on CPU) = 2,048 bytes a token
    assert "KV cache 1.0 GiB (VLLM_CPU_KVCACHE_SPACE=1) holds 524,288 tokens: 256.00 sequences of 2,048" in ok.stderr
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "0.001")
    refused = run("serve", "--dry-run", "--model", tiny_model)
    assert refused.exit_code == 2 and "holds 524 tokens: 0.26 sequences of 2,048" in refused.stderr
    assert "less than one sequence, so vLLM would refuse to start" in refused.stderr
    assert "hint: --max-model-len 512, or VLLM_CPU_KVCACHE_SPACE=" in refused.stderr
    shorter = run("serve", "--dry-run", "--model", tiny_model, "--max-model-len", "512")
    assert shorter.exit_code == 0 and "1.02 sequences of 512" in shorter.stderr


def test_the_plan_is_within_a_quarter_of_what_real_cpu_training_runs_took():
    """bench/memory_sweep.py measured the peak resident memory of real `lf-wrap train` runs (tiny, bench and
    SmolLM2 models; LoRA and full; two batch sizes and two cutoffs). The estimator as it is now must still
    give the plan those runs were compared with, and each plan must be within +-25% of the measured peak."""
    data = json.loads((REPO / "bench" / "memory_sweep.json").read_text())
    assert {r["model"] for r in data["runs"]} >= {"tiny", "bench", "smollm2"}
    assert {(r["method"], r["batch"], r["cutoff"]) for r in data["runs"]} >= {
        (m, b, c) for m in ("lora", "full") for b in (1, 4) for c in (256, 1024)
    }
    for r in data["runs"]:
        setup = TrainSetup(method=r["method"], precision="fp32", lora_rank=8, batch=r["batch"], cutoff=r["cutoff"],
                           gpu=False)  # fmt: skip
        planned = train_plan(Shape(**r["shape"]), setup).total / GIB
        where = f"{r['model']} {r['method']} {r['batch']}x{r['cutoff']}"
        assert planned == pytest.approx(r["planned_gib"], abs=0.002), (
            f"{where}: the estimator changed since the sweep; re-run bench/memory_sweep.py"
        )
        assert abs(planned / r["measured_gib"] - 1) <= 0.25, (
            f"{where}: plan {planned:.2f} GiB, measured {r['measured_gib']}"
        )
