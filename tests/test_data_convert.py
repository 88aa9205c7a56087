"""`lf-wrap data convert`: between alpaca, sharegpt and OpenAI messages, never over the input."""

from __future__ import annotations

import json

import pytest

from lf_wrap.data.convert import iter_conversations
from lf_wrap.data.validate import validate_file

from .conftest import DATASETS

TARGETS = ["alpaca", "sharegpt", "openai"]


def conversations(path):
    report = validate_file(path)
    return [(c.system, c.turns, c.chosen, c.rejected) for c in iter_conversations(path, report)]


@pytest.mark.parametrize("src", sorted(DATASETS.glob("*.json*")), ids=lambda p: p.name)
@pytest.mark.parametrize("target", TARGETS)
def test_conversion_keeps_what_the_model_is_trained_on(run, tmp_path, src, target):
    out = tmp_path / f"out.{target}.jsonl"
    result = run("data", "convert", src, out, "--to", target)
    assert result.exit_code == 0, result.output
    assert validate_file(out).ok
    assert conversations(out) == conversations(src)


def test_alpaca_instruction_and_input_become_one_user_turn_like_llamafactory(run, write, tmp_path):
    src = write("a.json", [{"instruction": "Translate", "input": "hola", "output": "hello"}])
    run("data", "convert", src, tmp_path / "o.json", "--to", "openai")
    rows = json.loads((tmp_path / "o.json").read_text())
    assert rows == [
        {"messages": [{"role": "user", "content": "Translate\nhola"}, {"role": "assistant", "content": "hello"}]}
    ]


def test_rows_the_target_cannot_hold_are_dropped_and_reported(run, write, tmp_path):
    src = write("t.json", [
        {"conversations": [{"from": "human", "value": "q"}, {"from": "function_call", "value": "{}"},
                           {"from": "observation", "value": "r"}, {"from": "gpt", "value": "a"}]},
        {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
    ])  # fmt: skip
    result = run("data", "convert", src, tmp_path / "o.json", "--to", "alpaca")
    assert result.exit_code == 0
    assert "wrote" in result.stdout and "1 rows, sharegpt -> alpaca" in result.stdout
    assert "dropped 1 rows: tool/function turns have no place in alpaca" in result.stderr


def test_convert_never_writes_over_its_input(run, write):
    src = write("a.json", [{"instruction": "q", "output": "a"}])
    before = src.read_bytes()
    result = run("data", "convert", src, src, "--to", "sharegpt", "--force")
    assert result.exit_code == 2
    assert "is the input file; lf-wrap never writes over its input" in result.stderr
    assert src.read_bytes() == before


def test_existing_output_needs_force(run, write, tmp_path):
    src = write("a.json", [{"instruction": "q", "output": "a"}])
    out = write("o.json", "keep me")
    result = run("data", "convert", src, out, "--to", "sharegpt")
    assert result.exit_code == 2
    assert "exists" in result.stderr and "--force" in result.stderr
    assert out.read_text() == "keep me"
    assert run("data", "convert", src, out, "--to", "sharegpt", "--force").exit_code == 0


def test_invalid_input_is_not_converted(run, write, tmp_path):
    result = run("data", "convert", write("a.json", [{"instruction": "q"}]), tmp_path / "o.json", "--to", "openai")
    assert result.exit_code == 2
    assert "[row 0].output: missing" in result.stderr
    assert not (tmp_path / "o.json").exists()
