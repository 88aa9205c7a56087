"""Every way a command can fail ends in one message and exit 1 or 2 (never a traceback), under
--json in one JSON object; exit codes are documented; interrupts exit 130/143."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

from lf_wrap.cli import main
from tests.conftest import DATASETS
from tests.helpers import fake_model, free_port, leaves

ROWS = [{"instruction": "q", "output": "a"}]
BAD = '[{"instruction": "q", "output": "a"},\n {"instruction": "q2"}]\n'  # row 1 (line 2) has no answer
MISSING = "/nonexistent/lf-wrap-test/bin/tool"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """The current folder: a fake model, a valid and an invalid dataset, the demo's dataset registered, an adapter."""
    fake_model(tmp_path / "m")
    (tmp_path / "d.json").write_text(json.dumps(ROWS))
    (tmp_path / "bad.json").write_text(BAD)
    reg = CliRunner().invoke(main, ["data", "register", str(DATASETS / "magic_conch.json"), "--name", "magic_conch"])
    assert reg.exit_code == 0, reg.output
    (tmp_path / "runs" / "magic-conch" / "output").mkdir(parents=True)
    (tmp_path / "runs" / "magic-conch" / "output" / "adapter_config.json").write_text('{"r": 8}')
    return tmp_path


def test_every_command_fails_with_a_message_and_exit_1_or_2_never_a_traceback(workspace, monkeypatch):
    dead = f"http://127.0.0.1:{free_port()}"
    new_run = ["--set", "run_name=new"]  # runs/magic-conch holds an adapter (for export)
    no_engine = {"LF_WRAP_LLAMAFACTORY_CLI": MISSING, "LF_WRAP_VLLM": MISSING, "LF_WRAP_FAKE_GPUS": "none"}
    # (command, args after it, environment, modules made unimportable, exit code, text the message must hold)
    cases: list[tuple[tuple[str, ...], list[str], dict[str, str], tuple[str, ...], int, str]] = [
        (("init",), ["--model", "nope", "--dataset", "d.json"], {}, (), 2, "nope"),
        (("init",), ["--model", "m"], {}, (), 2, "--model and --dataset go together"),
        (("data", "validate"), ["bad.json"], {}, (), 2, "bad.json:2: [row 1].output: missing"),
        (("data", "stats"), ["bad.json"], {}, (), 2, "no statistics computed"),
        (("data", "stats"), ["d.json", "--tokenizer", "m"], {}, ("transformers",), 2, "'transformers'"),
        (("data", "convert"), ["bad.json", "out.jsonl", "--to", "openai"], {}, (), 2, "nothing written to out.jsonl"),
        (("data", "register"), ["bad.json", "--name", "b"], {}, (), 2, "not registered"),
        (("model", "pull"), ["org/name"], {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": dead}, (), 1, f"cannot reach {dead}"),
        (("model", "import"), ["nope.gguf", "out"], {}, (), 2, "nope.gguf does not exist"),
        (("model", "tiny"), ["tiny-out"], {}, ("torch",), 2, "lf-wrap model tiny needs the Python package 'torch'"),
        (("render",), ["train", "--set", "node_rank=3"], {}, (), 2, "--set node_rank: node_rank 3 must be below"),
        (("template", "check"), ["--model", "m", "--template", "qwen"], no_engine, (), 2, f"not found at {MISSING}"),
        (
            ("train",),
            ["--dry-run", "--no-template-check", "--set", "model=m", *new_run],
            no_engine,
            (),
            2,
            "llamafactory-cli",
        ),
        (("export",), ["--dry-run", "--set", "model=m"], no_engine, (), 2, f"llamafactory-cli not found at {MISSING}"),
        (("launch-plan",), ["--nnodes", "2"], {}, (), 2, "Missing option '--master-addr'"),
        (("serve", "start"), ["--model", "m", "--dry-run"], no_engine, (), 2, f"vllm not found at {MISSING}"),
        (("serve", "status"), ["--config", "missing.yaml"], {}, (), 2, "missing.yaml: no such file"),
        (("serve", "stop"), ["--run", "no-such-run"], {}, (), 2, "no detached server recorded in"),
        (("check",), ["--base-url", dead, "--no-golden"], {}, (), 1, f"cannot connect to {dead}/v1"),
        (("check",), ["--golden", "x", "--golden-file", "d.json"], {}, (), 2, "not both"),
        (("chat",), ["--base-url", dead], {}, (), 1, f"cannot connect to {dead}/v1"),
        (("eval",), ["--base-url", dead, "--tuned-url", dead, "--dataset", "d.json"], {}, (), 1, "cannot connect to"),
        (("report",), ["--run", "no-such-run"], {}, (), 2, "no-such-run: no such run folder"),
        (("doctor",), ["--config", "missing.yaml"], {}, (), 2, "missing.yaml: no such file"),
    ]
    cases += [(path, ["--no-such-flag"], {}, (), 2, "No such option") for path in leaves(main)]
    assert {c[0] for c in cases if c[1] != ["--no-such-flag"]} == set(leaves(main)), "a command without a case"
    failures = []
    for path, args, env, blocked, code, text in cases:
        with monkeypatch.context() as mp:
            for module in blocked:
                mp.setitem(sys.modules, module, None)  # `import torch` raises ImportError, as if not installed
            result = CliRunner().invoke(main, [*path, *args], env=env)
        said = f"{' '.join((*path, *args))}: exit {result.exit_code}\n{result.output}"
        if not isinstance(result.exception, SystemExit):  # an exception escaped: a traceback for the user
            failures.append(f"{said}\nraised {result.exception!r}")
        elif result.exit_code != code or text not in result.output:
            failures.append(f"{said}\nexpected exit {code} and {text!r}")
    assert not failures, "\n\n".join(failures)


def test_json_failures_print_one_object_with_error_hint_location_and_exit_code(workspace):
    runner = CliRunner()
    stats = runner.invoke(main, ["data", "stats", "bad.json", "--json"])
    payload = json.loads(stats.stdout)
    assert stats.exit_code == 2
    assert payload["error"].startswith(
        "bad.json: 1 error(s); no statistics computed (first: bad.json:2: [row 1].output"
    )
    assert payload["location"] == "bad.json:2: [row 1].output"
    assert payload["exit_code"] == 2 and "lf-wrap data validate bad.json" in payload["hint"]
    assert payload["report"]["issues"][0]["field"] == "output"
    assert "listed above" not in stats.output  # nothing was listed above under --json

    unknown = runner.invoke(main, ["data", "stats", "--json", "x.csv"])
    assert json.loads(unknown.stdout)["error"].startswith("x.csv: ")

    usage = runner.invoke(main, ["data", "validate", "--json"])
    assert json.loads(usage.stdout) == {
        "error": "give a FILE to check (or --dataset-dir DIR --name NAME)",
        "hint": "see --help",
        "location": None,
        "exit_code": 2,
    }
    bad_value = runner.invoke(main, ["data", "stats", "d.json", "--json", "--cutoff-len", "0"])
    assert json.loads(bad_value.stdout)["location"] == "--cutoff-len" and bad_value.exit_code == 2

    settings = runner.invoke(main, ["render", "train", "--set", "lora_rnak=8", "--json"])
    assert settings.exit_code == 2  # render has no --json: a usage error, as JSON since it was asked for
    assert json.loads(settings.stdout) == {
        "error": "No such option '--json'.",
        "hint": "see --help",
        "location": "--json",
        "exit_code": 2,
    }

    project = runner.invoke(main, ["train", "--dry-run", "--json", "--set", "lora_rnak=8"])
    payload = json.loads(project.stdout)
    assert payload["location"] == "--set lora_rnak" and "unknown key" in payload["error"]

    validate = runner.invoke(main, ["data", "validate", "bad.json", "--json"])
    payload = json.loads(validate.stdout)
    assert payload["exit_code"] == 2 and payload["location"] == "bad.json:2: [row 1].output"
    assert payload["errors"] == 1 and payload["error"].startswith("bad.json: 1 error")


def test_plain_dataset_errors_list_the_rows_then_say_so(workspace):
    result = CliRunner().invoke(main, ["data", "register", "bad.json", "--name", "b"])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith("bad.json:2: [row 1].output: missing")
    assert "Error: bad.json: 1 error(s); not registered (first: bad.json:2: [row 1].output: missing" in result.stderr
    assert "hint: fix the rows listed above" in result.stderr


def test_set_problems_in_launch_settings_blame_set_not_the_file(workspace):
    (workspace / "p.yaml").write_text("model: m\ntemplate: qwen\ndatasets: [magic_conch]\nnnodes: 2\n")
    result = CliRunner().invoke(main, ["render", "train", "--config", "p.yaml", "--set", "node_rank=5"])
    assert result.exit_code == 2
    assert "--set node_rank: node_rank 5 must be below nnodes 2" in result.stderr
    zero = CliRunner().invoke(main, ["render", "train", "--set", "nproc_per_node=0"])
    assert "--set nproc_per_node: Input should be greater than or equal to 1" in zero.stderr
    assert "defaults" not in zero.stderr
    from_file = CliRunner().invoke(main, ["render", "train", "--config", "p.yaml", "--set", "master_addr=0.0.0.0"])
    assert "--set master_addr: multi-node training needs --master-addr" in from_file.stderr


def test_every_command_documents_its_exit_status(run):
    for path in leaves(main):
        text = run(*path, "--help").stdout
        assert "Exit status:" in text, f"lf-wrap {' '.join(path)} --help says nothing about its exit status"
    assert "3 not running" in run("serve", "status", "--help").stdout
    assert "130/143" in run("train", "--help").stdout and "130/143" in run("--help").stdout


# -- serve: real subcommands, a default, and status/stop that need only the run folder -------------------
def _pidfile(root: Path, run: str, pid: int) -> Path:
    path = root / run / "serve.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "pgid": pid, "start_time": 1.0, "base_url": "http://127.0.0.1:1"}))
    return path


def test_serve_status_and_stop_act_on_the_run_named_by_config_run_or_runs_dir(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    # A project file with a typo under train: status/stop read only run_name and runs_dir from it.
    (tmp_path / "x.yaml").write_text("run_name: xrun\nruns_dir: elsewhere\ntrain:\n  lerning_rate: 1\n")
    x = _pidfile(tmp_path / "elsewhere", "xrun", dead.pid)
    default = _pidfile(tmp_path / "runs", "magic-conch", dead.pid)
    runner = CliRunner()

    status = runner.invoke(main, ["serve", "--config", "x.yaml", "status"])  # options before the subcommand
    assert status.exit_code == 3 and f"stale {x}" in status.stdout
    stop = runner.invoke(main, ["serve", "--config", "x.yaml", "stop"])
    assert stop.exit_code == 0 and "removed the stale serve.json" in stop.stdout
    assert not x.exists() and default.exists()  # X's run, not the default run

    other = _pidfile(tmp_path / "runs2", "r2", dead.pid)
    stop = runner.invoke(main, ["serve", "stop", "--run", "r2", "--runs-dir", "runs2"])
    assert stop.exit_code == 0 and not other.exists()
    stop = runner.invoke(main, ["serve", "stop", "--set", "run_name=magic-conch", "--set", "lora_rank=big"])
    assert stop.exit_code == 0 and not default.exists()  # other --set keys do not matter here

    nothing = runner.invoke(main, ["serve", "stop", "--config", "x.yaml"])
    assert nothing.exit_code == 2 and f"no detached server recorded in {tmp_path / 'elsewhere' / 'xrun'}" in (
        nothing.stderr
    )
    assert runner.invoke(main, ["serve", "status", "--run", "a/b"]).exit_code == 2  # not a path
    as_json = runner.invoke(main, ["serve", "status", "--json", "--config", "x.yaml"])
    assert as_json.exit_code == 3 and json.loads(as_json.stdout)["exit_code"] == 3


def test_serve_without_a_subcommand_is_serve_start(tmp_path):
    fake_model(tmp_path / "m")
    runner = CliRunner()
    implicit = runner.invoke(main, ["serve", "--model", "m", "--dry-run", "--port", str(free_port())],
                             env={"LF_WRAP_VLLM": MISSING})  # fmt: skip
    explicit = runner.invoke(main, ["serve", "start", "--model", "m", "--dry-run"], env={"LF_WRAP_VLLM": MISSING})
    assert implicit.exit_code == explicit.exit_code == 2
    assert f"vllm not found at {MISSING}" in implicit.stderr and f"vllm not found at {MISSING}" in explicit.stderr
    # An option's value that happens to be a subcommand's name stays a value.
    named = runner.invoke(main, ["serve", "--served-model-name", "stop", "--model", "m", "--dry-run"],
                          env={"LF_WRAP_VLLM": MISSING})  # fmt: skip
    assert f"vllm not found at {MISSING}" in named.stderr
    assert "Commands:" in runner.invoke(main, ["serve", "--help"]).stdout
    run_dir = runner.invoke(main, ["serve", "start", "--run", "a/b", "--model", "m", "--dry-run"])
    assert run_dir.exit_code == 2 and "invalid run name 'a/b'" in run_dir.stderr


# -- interrupts: 130 for Ctrl-C, 143 for SIGTERM -------------------------------------------------------
def _wait_for(path: Path, text: str, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not (path.exists() and text in path.read_text()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, f"{text!r} never appeared in {path}"
        time.sleep(0.1)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stopped_foreground_server_exits_128_plus_the_signal(tmp_path, sig, code):
    fake_model(tmp_path / "m")
    engine = tmp_path / "vllm"
    marker = f"59.{os.getpid()}{sig.value}"  # a sleep nobody else runs
    engine.write_text(f"#!/bin/sh\necho engine started\nexec sleep {marker}\n")
    engine.chmod(0o755)
    env = {**os.environ, "LF_WRAP_VLLM": str(engine)}
    lfw = Path(sys.executable).parent / "lf-wrap"
    proc = subprocess.Popen([str(lfw), "serve", "--model", "m", "--port", str(free_port())], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        _wait_for(tmp_path / "runs" / "magic-conch" / "serve.log", "engine started", proc)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert f"server stopped ({sig.name})" in err and "Traceback" not in err
    left = [p for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [])[-1:] == [marker]]
    assert left == [], "the engine was left running"


def test_interrupted_train_and_export_raise_interrupted_with_the_signals_exit_code(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from lf_wrap.project import run_step
    from lf_wrap.project.launch import Launch
    from lf_wrap.project.runs import RunFolder
    from lf_wrap.steps import export, train
    from lf_wrap.util.errors import ExternalError, Interrupted
    from lf_wrap.util.process import Outcome

    engine = SimpleNamespace(env=lambda offline: {}, cli="llamafactory-cli")
    rendered = SimpleNamespace(text="stage: sft\n", values={}, template="qwen")
    monkeypatch.setattr(run_step, "run_logged", lambda *a, **k: Outcome(-15, "SIGTERM", 0.1))
    plan = export.ExportPlan(SimpleNamespace(), RunFolder(tmp_path / "export-run"), rendered,  # type: ignore[arg-type]
                             ["llamafactory-cli", "export"], engine, overwrite=False, full=False)  # type: ignore[arg-type]  # fmt: skip
    with pytest.raises(Interrupted) as stopped:
        export.execute(plan)
    assert stopped.value.exit_code == 143 and isinstance(stopped.value, ExternalError)
    assert RunFolder(tmp_path / "export-run").manifest()["export"]["status"] == "interrupted"

    monkeypatch.setattr(run_step, "run_logged", lambda *a, **k: Outcome(-2, "SIGINT", 0.1))
    project = SimpleNamespace(launch=Launch(), config=SimpleNamespace(template="qwen"))
    tplan = train.TrainPlan(project, RunFolder(tmp_path / "train-run"), rendered,  # type: ignore[arg-type]
                            ["llamafactory-cli", "train"], [], fake_model(tmp_path / "m"), engine)  # type: ignore[arg-type]  # fmt: skip
    with pytest.raises(Interrupted) as stopped:
        train.execute(tplan)
    assert stopped.value.exit_code == 130 and "training interrupted (SIGINT)" in stopped.value.message
    assert RunFolder(tmp_path / "train-run").manifest()["train"]["status"] == "interrupted"


def test_a_ctrl_c_while_the_engine_starts_stops_the_engine_too(tmp_path, monkeypatch):
    from lf_wrap.util import process

    real_popen = subprocess.Popen

    def ctrl_c_then_popen(*args, **kwargs):  # the signal lands while the child is being started
        os.kill(os.getpid(), signal.SIGINT)
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(process.subprocess, "Popen", ctrl_c_then_popen)
    started = time.monotonic()
    outcome = process.run_logged(["sleep", "30"], tmp_path / "log", env=os.environ, cwd=tmp_path, poll_s=0.1)
    assert outcome.interrupted == "SIGINT" and time.monotonic() - started < 10
