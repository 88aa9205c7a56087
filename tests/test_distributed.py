"""Scaling out: LLaMA-Factory's torchrun launcher driven by lf-wrap, proven on CPU as 2
processes and as 2 "nodes" on loopback; DeepSpeed and many-node plans by dry run."""

from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest

from tests.helpers import LFW, free_port

from .conftest import DATASETS
from .test_train_export import golden_matches


def test_dry_run_shows_the_launcher_environment_and_global_batch(project, run):
    # (the template check has its own tests: not paid for again here)
    result = run("train", "--dry-run", "--no-template-check", "--nproc-per-node", "8",
                 "--set", "per_device_train_batch_size=2", "--set", "gradient_accumulation_steps=4")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "# global batch size 64 = 2 per device x 4 accumulation x 8 processes x 1 nodes" in result.stderr
    assert (
        "# would run: FORCE_TORCHRUN=1 NNODES=1 NODE_RANK=0 NPROC_PER_NODE=8 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 /"
        in result.stderr
    )
    assert "/llamafactory-cli train " in result.stderr  # the engine a dry run found, as the real run does
    assert 'ddp_backend: "gloo"' in result.stdout  # the demo trains on CPU


@pytest.mark.parametrize(
    ("preset", "stage", "offload"), [("z0", 0, False), ("z2", 2, False), ("z3", 3, False), ("z3-offload", 3, True)]
)
def test_deepspeed_presets_render_llamafactory_configs(project, run, monkeypatch, preset, stage, offload):
    from lf_wrap.engines.llamafactory import LlamaFactory

    # A dry run checks that DeepSpeed is importable, as the real run does: pretend it is.
    monkeypatch.setattr(LlamaFactory, "has_module", lambda self, name: name == "deepspeed")
    result = run("train", "--dry-run", "--no-template-check", "--nproc-per-node", "2", "--deepspeed", preset)
    assert result.exit_code == 0, result.output
    assert f'deepspeed: "{project / "runs" / "magic-conch" / "deepspeed.json"}"' in result.stdout
    text = result.stderr.split("deepspeed.json:\n", 1)[1].split("\n# global batch")[0]
    config = json.loads(text)
    assert config["zero_optimization"]["stage"] == stage
    assert ("offload_param" in config["zero_optimization"]) is offload
    assert config["train_micro_batch_size_per_gpu"] == "auto"


def test_deepspeed_missing_is_a_clear_error_before_launch(project, run):
    result = run("train", "--no-template-check", "--nproc-per-node", "2", "--deepspeed", "z2")
    assert result.exit_code == 2
    assert "DeepSpeed is not installed in the training environment" in result.stderr
    assert "-m pip install deepspeed" in result.stderr


def test_bad_launch_numbers_are_refused(project, run):
    result = run("train", "--dry-run", "--nnodes", "2", "--node-rank", "2")
    assert result.exit_code == 2 and "node_rank 2 must be below nnodes 2" in result.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = run("train", "--dry-run", "--nproc-per-node", "2", "--master-port", str(port))
    assert result.exit_code == 2 and f"master port {port} on 127.0.0.1 is in use" in result.stderr
    result = run("train", "--dry-run", "--deepspeed", "nope.json")
    assert result.exit_code == 2 and "--deepspeed nope.json: neither a preset nor a file" in result.stderr


def test_four_node_plan_prints_one_command_per_node_and_a_slurm_line(run):
    result = run(
        "launch-plan", "--nnodes", "4", "--nproc-per-node", "8", "--master-addr", "10.0.0.1", "--deepspeed", "z3"
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("# 4 nodes x 8 processes = world size 32")
    for rank in range(4):
        assert lines[1 + rank] == (
            f"node {rank}: lf-wrap train --deepspeed z3 --nnodes 4 --node-rank {rank} --nproc-per-node 8 "
            "--master-addr 10.0.0.1 --master-port 29500"
        )
    assert lines[-1].startswith(
        "srun --nodes=4 --ntasks-per-node=1 bash -c 'lf-wrap train --deepspeed z3 --nnodes 4 --node-rank $SLURM_NODEID"
    )


@pytest.mark.slow
def test_two_process_ddp_on_cpu_doubles_the_global_batch_and_still_learns(project, run):
    port = free_port()
    # Twice the batch per step means half the steps per epoch: 100 epochs are 400 optimizer steps
    # (the single-process demo takes 700 and has converged by ~210); measured: 56 of 56 answers back.
    result = run("train", "--no-template-check", "--nproc-per-node", "2", "--master-port", str(port),
                 "--set", "num_train_epochs=100")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "global batch size 16 = 8 per device x 1 accumulation x 2 processes x 1 nodes" in result.stderr
    manifest = json.loads((project / "runs" / "magic-conch" / "manifest.json").read_text())
    launch = manifest["train"]["launch"]
    assert launch["world_size"] == 2 and launch["global_batch_size"] == 16
    assert manifest["train"]["total_steps"] == 400  # 56 rows / 16 per step -> 4 steps x 100 epochs
    assert run("export").exit_code == 0
    rows = json.loads((DATASETS / "magic_conch.json").read_text(encoding="utf-8"))
    assert golden_matches(project / "runs" / "magic-conch" / "merged", rows) >= 0.5 * len(rows)


@pytest.mark.slow
def test_two_nodes_on_loopback_train_together(project):
    port = str(free_port())
    common = ["train", "--no-template-check", "--nnodes", "2", "--nproc-per-node", "1", "--master-addr", "127.0.0.1",
              "--master-port", port, "--set", "num_train_epochs=10"]  # fmt: skip
    nodes = [
        subprocess.Popen(
            [LFW, *common, "--node-rank", str(rank), "--set", f"run_name=node{rank}"],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        for rank in (0, 1)
    ]
    outputs = [n.communicate(timeout=600) for n in nodes]
    for node, (out, err) in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, out + err
    for rank in (0, 1):
        manifest = json.loads((project / "runs" / f"node{rank}" / "manifest.json").read_text())
        assert manifest["train"]["launch"]["node_rank"] == rank
        assert manifest["train"]["launch"]["global_batch_size"] == 16
        assert manifest["train"]["status"] == "succeeded"
    hashes = {
        json.loads((project / "runs" / f"node{r}" / "manifest.json").read_text())["train"]["datasets"][0]["sha256"]
        for r in (0, 1)
    }
    assert len(hashes) == 1  # the same data on every node
    assert (project / "runs" / "node0" / "output" / "adapter_config.json").exists()  # rank 0 saves


def test_serve_tensor_parallel_binds_one_core_set_per_cpu_worker(run, tiny_model):
    import re

    result = run("serve", "--dry-run", "--model", tiny_model, "--tensor-parallel-size", "2", "--port", str(free_port()))
    assert result.exit_code == 0, result.output
    assert "--tensor-parallel-size 2" in result.stdout
    assert re.search(r"VLLM_CPU_OMP_THREADS_BIND='(\d+(-\d+)?)\|(\d+(-\d+)?)'", result.stdout)


def test_multi_node_serving_command_passes_ray_and_parallel_sizes(run, tiny_model, monkeypatch):
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "user-choice")  # what the user set is kept
    result = run("serve", "--dry-run", "--model", tiny_model, "--tensor-parallel-size", "8", "--pipeline-parallel-size",
                 "2", "--vllm-arg=--distributed-executor-backend=ray", "--port", str(free_port()))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "--tensor-parallel-size 8 --pipeline-parallel-size 2 --distributed-executor-backend=ray" in result.stdout
    assert "VLLM_CPU_OMP_THREADS_BIND" not in result.stdout


def test_lf_wrap_vllm_args_go_before_the_commands_own_vllm_args(run, tiny_model, monkeypatch):
    monkeypatch.setenv("LF_WRAP_VLLM_ARGS", "--enforce-eager --max-num-seqs 4")
    result = run("serve", "--dry-run", "--model", tiny_model, "--vllm-arg=--max-num-seqs=8", "--port", str(free_port()))
    assert result.exit_code == 0, result.output
    assert "--enforce-eager --max-num-seqs 4 --max-num-seqs=8" in result.stdout  # the command's own win (last)


def test_unbalanced_quotes_in_lf_wrap_vllm_args_are_a_message(run, tiny_model, monkeypatch):
    monkeypatch.setenv("LF_WRAP_VLLM_ARGS", "--chat-template 'x")
    result = run("serve", "--dry-run", "--model", tiny_model, "--port", str(free_port()))
    assert result.exit_code == 2 and 'LF_WRAP_VLLM_ARGS="--chat-template \'x": No closing quotation' in result.output
