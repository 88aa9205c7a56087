"""One place for each thing (issue 17, finding 7): the shared run-step bookkeeping, process
groups, percentiles, chat roles, free ports and hub ids, each proved through its one home."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from types import SimpleNamespace

import pytest

from lf_wrap.project.run_step import RunStep
from lf_wrap.project.runs import RunFolder
from lf_wrap.util.errors import ExternalError, Interrupted
from lf_wrap.util.process import Outcome, spawn, stop_group


def test_a_run_step_records_running_then_its_outcome_and_logs_the_command(tmp_path, capsys):
    run = RunFolder(tmp_path / "run")
    cmd = [sys.executable, "-c", "print('hello from the engine')"]
    step = RunStep(run, "eval", cmd, run.root / "eval.log")
    step.start({"config_file": "eval.yaml"})
    assert run.manifest()["eval"]["status"] == "running" and run.manifest()["eval"]["config_file"] == "eval.yaml"
    record = step.finish(step.run(os.environ), {"score": 1.0}, what="eval")
    manifest = run.manifest()["eval"]
    assert manifest["status"] == "succeeded" and manifest["exit_code"] == 0 and manifest["score"] == 1.0
    assert manifest["interrupted_by"] is None and manifest["duration_s"] >= 0 and manifest["ended"]
    assert record["status"] == "succeeded"
    log = (run.root / "eval.log").read_text()
    assert log.startswith(f"# {manifest['started']} $ ") and "hello from the engine" in log
    assert capsys.readouterr().err.startswith("$ ")  # the exact command is printed before it runs


def test_a_failed_step_raises_with_the_logs_last_lines_and_records_failed(tmp_path):
    run = RunFolder(tmp_path / "run")
    cmd = [sys.executable, "-c", "print('the engine says why'); raise SystemExit(3)"]
    step = RunStep(run, "train", cmd, run.train_log)
    step.start({})
    with pytest.raises(ExternalError) as failed:
        step.finish(step.run(os.environ), what="training")
    assert "failed (exit 3)" in failed.value.message and "the engine says why" in failed.value.message
    assert failed.value.hint == f"full log: {run.train_log}"
    assert run.manifest()["train"]["status"] == "failed" and run.manifest()["train"]["exit_code"] == 3


def test_an_interrupted_step_says_how_to_resume_and_exits_like_a_shell(tmp_path):
    run = RunFolder(tmp_path / "run")
    step = RunStep(run, "train", ["llamafactory-cli", "train"], run.train_log)
    step.start({})
    with pytest.raises(Interrupted) as stopped:
        step.finish(Outcome(-15, "SIGTERM", 0.5), what="training", interrupted="; stopped", resume="use --resume")
    assert stopped.value.exit_code == 143 and stopped.value.message == "training interrupted (SIGTERM); stopped"
    assert stopped.value.hint == f"use --resume; log: {run.train_log}"
    assert run.manifest()["train"]["interrupted_by"] == "SIGTERM"


def test_train_and_export_failures_leave_the_same_bookkeeping(tmp_path, monkeypatch):
    """Both steps go through RunStep: the same manifest keys and the same message for a failed engine."""
    from lf_wrap.project import run_step
    from lf_wrap.project.launch import Launch
    from lf_wrap.steps import export, train

    monkeypatch.setattr(run_step, "run_logged", lambda *a, **k: Outcome(2, None, 0.1))
    engine = SimpleNamespace(env=lambda offline: {}, cli="llamafactory-cli")
    rendered = SimpleNamespace(text="stage: sft\n", values={}, template="qwen")
    eplan = export.ExportPlan(SimpleNamespace(), RunFolder(tmp_path / "e"), rendered,  # type: ignore[arg-type]
                              ["/venv/bin/llamafactory-cli", "export", "x.yaml"], engine, overwrite=False, full=False)  # type: ignore[arg-type]  # fmt: skip
    with pytest.raises(ExternalError, match=r"^llamafactory-cli export failed \(exit 2\)"):
        export.execute(eplan)
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    project = SimpleNamespace(launch=Launch(), config=SimpleNamespace(template="qwen"))
    tplan = train.TrainPlan(project, RunFolder(tmp_path / "t"), rendered,  # type: ignore[arg-type]
                            ["/venv/bin/llamafactory-cli", "train", "x.yaml"], [], model, engine)  # type: ignore[arg-type]  # fmt: skip
    with pytest.raises(ExternalError, match=r"^llamafactory-cli train failed \(exit 2\)"):
        train.execute(tplan)
    common = {"status", "started", "ended", "duration_s", "exit_code", "interrupted_by", "command"}
    for folder, section in (("e", "export"), ("t", "train")):
        record = RunFolder(tmp_path / folder).manifest()[section]
        assert common <= set(record) and record["status"] == "failed" and record["exit_code"] == 2


def test_stop_group_ends_a_spawned_engine_and_the_children_it_started(tmp_path):
    log = tmp_path / "engine.log"
    proc = spawn(["sh", "-c", "sleep 60 & echo started; wait"], log, env=os.environ, cwd=tmp_path, header="# hi\n")
    assert os.getpgid(proc.pid) == proc.pid  # its own process group
    deadline = time.monotonic() + 10
    while "started" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log.read_text().startswith("# hi\n")
    stop_group(proc.pid, grace_s=5)
    proc.wait(timeout=5)
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # the background `sleep` is gone too


def test_stop_group_kills_what_ignores_sigterm(tmp_path):
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    )
    log = tmp_path / "stubborn.log"
    proc = spawn([sys.executable, "-c", code], log, env=os.environ, cwd=tmp_path)
    deadline = time.monotonic() + 10
    while "ready" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    stop_group(proc.pid, grace_s=0.5)
    assert proc.wait(timeout=5) == -signal.SIGKILL


def test_one_percentile_for_dataset_lengths_and_latencies():
    from lf_wrap.util.percentiles import percentile

    assert percentile([], 0.5) == 0
    assert percentile([5, 1, 3], 0.5) == 3 and percentile([5, 1, 3], 0.0) == 1 and percentile([5, 1, 3], 1.0) == 5
    assert percentile([0.4, 0.1, 0.2, 0.3], 0.95) == 0.4  # nearest rank: always a measured value
    assert percentile(range(101), 0.99) == 99


def test_data_stats_and_check_speak_the_same_chat_roles():
    from lf_wrap.data.convert import Conversation
    from lf_wrap.data.stats import _messages

    conv = Conversation(
        system="be brief",
        turns=[("user", "q"), ("function", "call()"), ("observation", "42"), ("assistant", "a")],
    )
    expected = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "call()"},
        {"role": "user", "content": "42"},
        {"role": "assistant", "content": "a"},
    ]
    assert conv.chat_messages() == expected == _messages(conv)
    assert conv.chat_messages(conv.turns[:-1]) == expected[:-1]  # check's golden prompt: all but the answer


def test_port_free_for_ipv4_localhost_and_a_port_in_use():
    from lf_wrap.util.network import port_free

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert not port_free("127.0.0.1", port) and not port_free("localhost", port)
    assert port_free("127.0.0.1", port) and port_free("localhost", port)


@pytest.mark.parametrize(
    ("ref", "hub"),
    [
        ("Qwen/Qwen2.5-0.5B-Instruct", True),
        ("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", True),
        ("models/tiny-qwen2", True),  # reads as a hub id; a folder of that name wins where it exists
        ("tiny-qwen2", False),
        ("./models/tiny", False),
        ("../x/y", False),
        ("/abs/model", False),
        ("~/model", False),
        ("a/b/c", False),
        ("org/name\n", False),
        ("org name/x", False),
    ],
)
def test_one_hub_id_rule_for_init_train_render_and_pull(ref, hub):
    from lf_wrap.model.hub import is_hub_id

    assert is_hub_id(ref) is hub


def test_model_pull_refuses_what_the_hub_id_rule_refuses(tmp_path, monkeypatch):
    from lf_wrap.model.hub import pull
    from lf_wrap.util.errors import LfWrapError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(LfWrapError, match="neither a local folder nor a hub id"):
        pull("a/b/c")


def test_row_checker_resolves_every_column_it_reads_from_the_spec():
    from lf_wrap.data.formats import Spec
    from lf_wrap.data.validate import RowChecker

    spec = Spec(formatting="alpaca", ranking=False, columns={"prompt": "q", "response": "a", "kto_tag": "ok"})
    checker = RowChecker(spec)
    assert (checker.col_prompt, checker.col_response, checker.col_kto_tag) == ("q", "a", "ok")
    assert checker.col_query is None and checker.col_messages is None and checker.col_history is None
