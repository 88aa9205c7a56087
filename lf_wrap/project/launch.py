"""Multi-process and multi-node training through LLaMA-Factory's own launcher.

`llamafactory-cli train` starts `torchrun` itself when FORCE_TORCHRUN=1 (or when it sees
several GPUs), reading NNODES, NODE_RANK, NPROC_PER_NODE, MASTER_ADDR and MASTER_PORT
(src/llamafactory/launcher.py, v0.9.5). lf-wrap sets exactly those and checks the numbers
before launching; `lf-wrap launch-plan` prints the command for every node (steps/launch_plan.py).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lf_wrap.util.errors import LfWrapError
from lf_wrap.util.files import read_json_object
from lf_wrap.util.network import port_free

DEEPSPEED_PRESETS = ("z0", "z2", "z3", "z3-offload")


@dataclass(frozen=True)
class Launch:
    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 29500

    @property
    def distributed(self) -> bool:
        return self.nproc_per_node > 1 or self.nnodes > 1

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes

    def env(self) -> dict[str, str]:
        if not self.distributed:
            return {}
        return {
            "FORCE_TORCHRUN": "1",
            "NNODES": str(self.nnodes),
            "NODE_RANK": str(self.node_rank),
            "NPROC_PER_NODE": str(self.nproc_per_node),
            "MASTER_ADDR": self.master_addr,
            "MASTER_PORT": str(self.master_port),
        }

    def problems(self) -> list[str]:
        out = []
        if self.node_rank >= self.nnodes:
            out.append(f"node_rank {self.node_rank} must be below nnodes {self.nnodes} (ranks count from 0)")
        if self.nnodes > 1 and self.master_addr in ("", "0.0.0.0"):
            out.append("multi-node training needs --master-addr: the address of node 0 that every node can reach")
        if (
            self.distributed
            and self.node_rank == 0
            and is_local(self.master_addr)
            and not port_free(self.master_addr, self.master_port)
        ):
            out.append(
                f"master port {self.master_port} on {self.master_addr} is in use "
                "(another training run?); pick another --master-port"
            )
        return out


def is_local(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1", socket.gethostname())


def global_batch(values: dict[str, Any], launch: Launch) -> int:
    per_device = int(values.get("per_device_train_batch_size", 1))
    accum = int(values.get("gradient_accumulation_steps", 1))
    return per_device * accum * launch.world_size


def deepspeed_config(choice: str) -> Path:
    """The user's own DeepSpeed JSON file, checked (presets are rendered by `train`)."""
    path = Path(choice).expanduser()
    if not path.is_file():
        raise LfWrapError(
            f"--deepspeed {choice}: neither a preset nor a file",
            hint=f"use one of {', '.join(DEEPSPEED_PRESETS)} or the path of a DeepSpeed JSON config",
        )
    read_json_object(path, shape="a DeepSpeed config object", hint="fix the DeepSpeed config")
    return path.resolve()
