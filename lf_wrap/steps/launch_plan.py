"""`lf-wrap launch-plan`: the command to run on each node of a multi-node run, and a Slurm line."""

from __future__ import annotations

import shlex
from pathlib import Path

from lf_wrap.project.config import load_project
from lf_wrap.project.launch import Launch


def node_command(args: list[str], launch: Launch, rank: int) -> str:
    """The lf-wrap command to run on node `rank` of a multi-node plan."""
    flags = [
        "--nnodes", str(launch.nnodes), "--node-rank", str(rank), "--nproc-per-node", str(launch.nproc_per_node),
        "--master-addr", launch.master_addr, "--master-port", str(launch.master_port),
    ]  # fmt: skip
    return " ".join(shlex.quote(a) for a in ["lf-wrap", "train", *args, *flags])


def slurm_line(args: list[str], launch: Launch) -> str:
    inner = " ".join(shlex.quote(a) for a in ["lf-wrap", "train", *args])
    return f"srun --nodes={launch.nnodes} --ntasks-per-node=1 bash -c " + shlex.quote(
        f"{inner} --nnodes {launch.nnodes} --node-rank $SLURM_NODEID --nproc-per-node {launch.nproc_per_node} "
        f"--master-addr $(scontrol show hostnames $SLURM_JOB_NODELIST | head -n 1) --master-port {launch.master_port}"
    )


def lines(args: list[str], launch: Launch) -> list[str]:
    """What `lf-wrap launch-plan` prints: a header, one command per node, then the Slurm form."""
    header = (
        f"# {launch.nnodes} nodes x {launch.nproc_per_node} processes = world size {launch.world_size}; "
        "run each line on its node (same code, data and lf-wrap.yaml on every node):"
    )
    nodes = [f"node {rank}: {node_command(args, launch, rank)}" for rank in range(launch.nnodes)]
    return [header, *nodes, "# or, under Slurm (one task per node):", slurm_line(args, launch)]


def plan(config_file: Path | None, sets: tuple[str, ...], deepspeed: str | None, launch: Launch) -> list[str]:
    """`launch-plan`'s lines, once the project with these settings loads: every node runs `train` with the
    same --config/--set/--deepspeed as given here."""
    load_project(config_file, (*sets, *((f"deepspeed={deepspeed}",) if deepspeed else ())))  # validate first
    args = [*(["--config", str(config_file)] if config_file else []), *[x for s in sets for x in ("--set", s)]]
    return lines(args + (["--deepspeed", deepspeed] if deepspeed else []), launch)
