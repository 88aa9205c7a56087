"""Thinking models: what the train manifest records, and the vLLM flags and check kwargs that follow."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from lf_wrap.engines.vllm import Vllm
from lf_wrap.model.thinking import REASONING_PARSERS, serve_flags, training_thinking
from lf_wrap.steps.check import Checker, reasoning
from tests.helpers import free_port

from .conftest import DATASETS

DEMO = [DATASETS / "magic_conch.json"]


def test_qwen3_trained_with_thinking_is_served_with_the_qwen3_reasoning_parser():
    facts = training_thinking("qwen3", {}, DEMO)
    assert facts == {
        "template": "qwen3",
        "reasoning_template": True,
        "enable_thinking": True,  # LLaMA-Factory's default
        "think_in_data": False,
        "mode": "thinking",
        "reasoning_parser": "qwen3",
        "chat_template_kwargs": {},
    }
    assert serve_flags(facts, ()) == ["--reasoning-parser", "qwen3"]


def test_a_no_think_training_is_served_with_thinking_off_by_default():
    facts = training_thinking("qwen3", {"enable_thinking": False}, DEMO)
    assert facts["mode"] == "no-think" and facts["chat_template_kwargs"] == {"enable_thinking": False}
    assert serve_flags(facts, ()) == [
        "--reasoning-parser", "qwen3", "--default-chat-template-kwargs", '{"enable_thinking": false}',
    ]  # fmt: skip


def test_nothink_templates_and_plain_templates_need_no_parser():
    # qwen3_nothink trains "<|im_start|>assistant\n" + answer, exactly what the default prompt ends with.
    assert serve_flags(training_thinking("qwen3_nothink", {}, DEMO), ()) == []
    plain = training_thinking("llama3", {}, DEMO)
    assert plain["mode"] is None and serve_flags(plain, ()) == []
    assert training_thinking("deepseekr1", {}, DEMO)["reasoning_parser"] == "deepseek_r1"


def test_think_tags_in_the_data_are_recorded(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"instruction": "q", "output": "<think>\nhm\n</think>\n\na"}) + "\n")
    assert training_thinking("qwen3", {}, [data])["think_in_data"] is True


def test_flags_the_user_passes_to_vllm_win():
    facts = training_thinking("qwen3", {"enable_thinking": False}, DEMO)
    assert serve_flags(facts, ("--reasoning-parser=deepseek_r1", "--default_chat_template_kwargs={}")) == []


def test_parser_names_and_the_kwargs_flag_exist_in_the_installed_vllm():
    site = Vllm.find().python.parent.parent.glob("lib/python*/site-packages/vllm")
    vllm_dir = next(iter(site))
    registered = set(re.findall(r'^    "([a-z0-9_]+)": \(', (vllm_dir / "reasoning" / "__init__.py").read_text(), re.M))
    assert set(REASONING_PARSERS.values()) <= registered
    assert "default_chat_template_kwargs" in (vllm_dir / "entrypoints" / "launchers" / "cli_args.py").read_text()


@pytest.mark.parametrize(
    ("thinking", "expected"),
    [
        ({"enable_thinking": False}, "--reasoning-parser qwen3 --default-chat-template-kwargs '{\"enable_thinking\": false}'"),
        ({}, "--reasoning-parser qwen3 "),
    ],
)  # fmt: skip
def test_serve_reads_the_runs_thinking_record(run, tiny_family, tmp_path, thinking, expected):
    from lf_wrap.project.runs import RunFolder

    folder = RunFolder(tmp_path / "runs" / "think")
    shutil.copytree(tiny_family("qwen3"), folder.merged)
    folder.record("train", {"thinking": training_thinking("qwen3", thinking, DEMO)})
    result = run("serve", "--dry-run", "--set", "run_name=think", "--port", str(free_port()))
    assert result.exit_code == 0, result.output
    assert expected in result.stdout
    other = run("serve", "--dry-run", "--model", folder.merged, "--port", str(free_port()))
    assert "--reasoning-parser" not in other.stdout  # another model folder: not this run's training


def test_check_sends_the_runs_kwargs_and_keeps_reasoning_apart():
    checker = Checker("http://127.0.0.1:9", None, "m", 1.0, False, 16, chat_template_kwargs={"enable_thinking": False})
    assert checker.extra_body == {"chat_template_kwargs": {"enable_thinking": False}}
    assert Checker("http://127.0.0.1:9", None, "m", 1.0, False, 16).extra_body is None

    class Message:
        content = "answer"
        reasoning = "\n\n"

    assert reasoning(Message()) == "\n\n" and reasoning(object()) is None
