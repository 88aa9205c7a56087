"""`lf-wrap eval` logic and its bad inputs, against the fake OpenAI server (tests/fake_openai.py).

The real thing (one vLLM server with the base model and the trained adapter) is in
tests/test_eval_served.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lf_wrap.steps.evaluate_scores import CharTokenizer, score
from tests.conftest import DATASETS
from tests.fake_openai import FakeOpenAI, serve_fake
from tests.helpers import fake_safetensors, free_port

ROWS = json.loads((DATASETS / "magic_conch.json").read_text(encoding="utf-8"))[:8]


def test_chinese_answers_are_scored_by_character_not_dropped():
    want = "您好，我是蟹堡王的神奇海螺，很高兴为您服务！"
    near = "您好，我是蟹堡王的神奇海螺，很高兴为您xyz"
    assert CharTokenizer().tokenize("我是 Magic Conch!") == ["我", "是", "magic", "conch"]
    s = score(near, want)
    assert s.exact == 0 and 80 < s.rouge_l < 100 and 70 < s.chrf < 100
    assert score(want, want).as_dict() == {"exact": 100.0, "chrf": 100.0, "rouge_l": 100.0}
    assert score("", want).as_dict() == {"exact": 0.0, "chrf": 0.0, "rouge_l": 0.0}
    assert score(" same ", "same").exact == 100.0  # answers are compared stripped


def _alpaca(tmp_path: Path, rows: list[dict[str, str]]) -> Path:
    path = tmp_path / "golden.json"
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return path


def two_fakes(worse_row: int = 3) -> tuple[FakeOpenAI, FakeOpenAI]:
    """A base that knows one answer, a tuned model that knows all but `worse_row` (which the base knew)."""
    base = FakeOpenAI(models=["base"], answers={ROWS[worse_row]["instruction"]: ROWS[worse_row]["output"]},
                      default_answer="I do not know.")  # fmt: skip
    tuned_answers = {r["instruction"]: r["output"] for r in ROWS}
    tuned_answers[ROWS[worse_row]["instruction"]] = "Something else entirely."
    tuned = FakeOpenAI(models=["tuned"], answers=tuned_answers)
    return base, tuned


def test_two_endpoints_regressions_come_first_and_json_has_every_row(run, tmp_path):
    golden = _alpaca(tmp_path, ROWS)
    base, tuned = two_fakes(worse_row=3)
    with serve_fake(base) as b, serve_fake(tuned) as t:
        result = run("eval", "--base-url", b.url, "--tuned-url", t.url, "--dataset", golden, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    summary = out["summary"]
    assert summary["rows"] == 8 and summary["worse"] == 1 and summary["better"] == 7 and summary["same"] == 0
    assert summary["metrics"]["exact"] == {"label": "exact match", "base": 12.5, "tuned": 87.5, "change": 75.0}
    assert summary["metrics"]["chrf"]["tuned"] > summary["metrics"]["chrf"]["base"]
    first = out["rows"][0]
    assert first["verdict"] == "worse" and first["index"] == 3
    assert first["base"]["answer"] == ROWS[3]["output"] and first["tuned"]["answer"] == "Something else entirely."
    assert all(r["tuned"]["latency_s"] >= 0 for r in out["rows"])
    assert out["base"]["model"] == "base" and out["tuned"]["model"] == "tuned"
    # greedy: every request asked for temperature 0
    assert all(r["body"]["temperature"] == 0 for r in b.requests + t.requests if r["method"] == "POST")


def test_text_output_lists_the_regression_before_the_table(run, tmp_path):
    golden = _alpaca(tmp_path, ROWS)
    base, tuned = two_fakes(worse_row=5)
    with serve_fake(base) as b, serve_fake(tuned) as t:
        result = run("eval", "--base-url", b.url, "--tuned-url", t.url, "--dataset", golden, "--rows", "0")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "tuned got worse on 1 rows (worst first):" in text
    assert text.index("row 5:") < text.index("exact match")
    assert "Something else entirely." in text
    assert "tuned better on 7 rows, worse on 1, the same on 0" in text


def test_rows_are_spread_evenly(run, tmp_path):
    golden = _alpaca(tmp_path, ROWS)
    with serve_fake(FakeOpenAI(models=["m"])) as f:
        result = run("eval", "--base-url", f.url, "--tuned-url", f.url, "--dataset", golden, "--rows", "4", "--json")
    assert result.exit_code == 0, result.output
    assert sorted(r["index"] for r in json.loads(result.stdout)["rows"]) == [0, 2, 4, 6]


def test_unreachable_url_is_one_message_exit_1(run, tmp_path):
    golden = _alpaca(tmp_path, ROWS)
    port = free_port()
    with serve_fake(FakeOpenAI(models=["m"])) as f:
        result = run("eval", "--base-url", f.url, "--tuned-url", f"http://127.0.0.1:{port}", "--dataset", golden)
    assert result.exit_code == 1
    assert f"cannot connect to http://127.0.0.1:{port}/v1" in result.stderr


def test_a_model_the_server_does_not_serve_is_bad_input(run, tmp_path):
    golden = _alpaca(tmp_path, ROWS)
    with serve_fake(FakeOpenAI(models=["m"])) as f:
        result = run("eval", "--base-url", f.url, "--tuned-url", f.url, "--tuned-model", "nope", "--dataset", golden)
    assert result.exit_code == 2
    assert "'nope' is not among them" in result.stderr and "--tuned-model" in result.stderr


def test_dataset_without_answers_is_refused(run, tmp_path):
    with serve_fake(FakeOpenAI(models=["m"])) as f:
        result = run("eval", "--base-url", f.url, "--tuned-url", f.url, "--dataset", DATASETS / "conch_preference.json")
    assert result.exit_code == 2
    assert "no rows with an answer to compare" in result.stderr


def test_one_url_without_the_other_is_a_usage_error(run, tmp_path):
    result = run("eval", "--base-url", "http://127.0.0.1:1", "--dataset", _alpaca(tmp_path, ROWS))
    assert result.exit_code == 2
    assert "give both --base-url and --tuned-url" in result.stderr


def test_no_run_says_so_and_how_to_make_one(run, project):
    result = run("eval")
    assert result.exit_code == 2
    assert "runs/magic-conch: no such run" in result.stderr and "lf-wrap train" in result.stderr


def test_an_adapter_for_another_base_model_is_refused_before_serving(run, project):
    output = project / "runs" / "magic-conch" / "output"
    output.mkdir(parents=True)
    (output / "adapter_config.json").write_text(json.dumps({"r": 8, "base_model_name_or_path": "elsewhere"}))
    prefix = "base_model.model.model.layers.0.self_attn.q_proj"
    fake_safetensors(output / "adapter_model.safetensors",
                 {f"{prefix}.lora_A.weight": [8, 64], f"{prefix}.lora_B.weight": [64, 8],
                  "base_model.model.model.layers.9.mlp.up_proj.lora_A.weight": [8, 128]})  # fmt: skip
    result = run("eval")
    assert result.exit_code == 2, result.output
    assert "does not fit the base model" in result.stderr
    assert (
        "model.layers.0.self_attn.q_proj.weight: the adapter expects in_features 64, the base has 128" in result.stderr
    )
    assert "model.layers.9.mlp.up_proj.weight: the base model has no such layer" in result.stderr
    assert not (project / "runs" / "magic-conch" / "serve.log").exists()  # nothing was started


def test_a_run_without_an_adapter_is_refused(run, project):
    (project / "runs" / "magic-conch" / "output").mkdir(parents=True)
    result = run("eval")
    assert result.exit_code == 2
    assert "no LoRA adapter (adapter_config.json) there" in result.stderr


@pytest.mark.slow
def test_held_out_rows_are_the_training_environments_own_split():
    """The same `datasets.train_test_split` call LLaMA-Factory's split_dataset makes, in .venvs/train."""
    from lf_wrap.engines.llamafactory import LlamaFactory
    from lf_wrap.steps.evaluate import held_out_indices

    python = LlamaFactory.find().python
    held = held_out_indices(python, 56, 0.1, 42)
    assert len(held) == 6 and held == sorted(set(held)) and all(0 <= i < 56 for i in held)
    assert held_out_indices(python, 56, 0.1, 42) == held  # deterministic for a seed
    assert held_out_indices(python, 56, 0.1, 7) != held
    assert len(held_out_indices(python, 56, 10, 42)) == 10  # val_size > 1 is a row count


def test_adapter_shapes_are_matched_layer_by_layer(tmp_path, tiny_model):
    """PEFT's layout: lora_A is [rank, in_features], lora_B [out_features, rank]; the base's weight [out, in]."""
    from lf_wrap.steps.evaluate import adapter_misfits

    layer = "base_model.model.model.layers.0.mlp.down_proj"  # hidden 128 <- intermediate 256: not square
    fits, misfit = tmp_path / "fits", tmp_path / "misfit"
    fits.mkdir(), misfit.mkdir()
    fake_safetensors(
        fits / "adapter_model.safetensors", {f"{layer}.lora_A.weight": [8, 256], f"{layer}.lora_B.weight": [128, 8]}
    )
    fake_safetensors(
        misfit / "adapter_model.safetensors", {f"{layer}.lora_A.weight": [8, 128], f"{layer}.lora_B.weight": [256, 8]}
    )
    assert adapter_misfits(fits, tiny_model) == []
    assert adapter_misfits(misfit, tiny_model) == [
        "model.layers.0.mlp.down_proj.weight: the adapter expects in_features 128, the base has 256",
        "model.layers.0.mlp.down_proj.weight: the adapter expects out_features 256, the base has 128",
    ]


def test_a_full_fine_tune_without_its_model_is_refused(run, project):
    (project / "runs" / "magic-conch" / "output").mkdir(parents=True)
    result = run("eval", "--set", "method=full")
    assert result.exit_code == 2, result.output
    assert "no trained model there" in result.stderr
