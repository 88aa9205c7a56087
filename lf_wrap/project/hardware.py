"""What training will run on: CUDA GPUs or the CPU, found without importing torch here.

`nvidia-smi` lists the GPUs (no nvidia-smi on PATH: no GPU, decided at once); where there
are GPUs, the training environment's own Python is asked whether its torch can use them
and whether they support bf16, because that torch, not lf-wrap's, does the training.
`LF_WRAP_FAKE_GPUS` replaces the whole look (for tests, or to plan a GPU run elsewhere):
`none` for no GPU, or nvidia-smi's CSV lines separated by `;`, e.g.
`LF_WRAP_FAKE_GPUS="NVIDIA H100 80GB HBM3, 81559 MiB, 9.0"`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from lf_wrap.project.defaults import Default

FAKE_ENV = "LF_WRAP_FAKE_GPUS"
QUERY = ["--query-gpu=name,memory.total,compute_cap", "--format=csv,noheader"]
TORCH_CHECK = (
    "import json, torch\n"
    "ok = torch.cuda.is_available()\n"
    "print(json.dumps({'cuda': ok, 'bf16': bool(ok and torch.cuda.is_bf16_supported()),"
    " 'torch': torch.__version__}))\n"
)
TIMEOUT_S = 120.0  # importing torch on a busy machine


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_mib: int | None = None
    compute_cap: str | None = None

    @property
    def bf16_capable(self) -> bool:
        """Ampere (compute capability 8.0) and newer, as torch.cuda.is_bf16_supported() decides."""
        try:
            return float(self.compute_cap or 0) >= 8.0
        except ValueError:
            return False

    def describe(self) -> str:
        bits = [
            f"{self.memory_mib} MiB" if self.memory_mib else "",
            f"compute {self.compute_cap}" if self.compute_cap else "",
        ]
        extra = ", ".join(b for b in bits if b)
        return f"{self.name} ({extra})" if extra else self.name


@dataclass(frozen=True)
class Hardware:
    gpus: tuple[Gpu, ...]
    cuda: bool  # the training environment's torch can use the GPUs
    bf16: bool  # ... and they support bf16
    how: str  # how this was found, for messages

    @property
    def use_cpu(self) -> bool:
        return not self.cuda

    @property
    def precision(self) -> str:
        return "bf16" if self.cuda and self.bf16 else "fp16" if self.cuda else "fp32"

    def describe_gpus(self) -> str:
        if not self.gpus:
            return "no CUDA GPU"
        counts = Counter(g.describe() for g in self.gpus)
        return ", ".join(f"{n} x {what}" for what, n in counts.items())

    def summary(self) -> str:
        """The one line `train`, `render train` and `--dry-run` print."""
        where = f"training on GPU with {self.precision}" if self.cuda else "training on CPU"
        return f"hardware: {self.describe_gpus()} ({self.how}): {where}"

    def train_values(self, model_dtype: str | None = None) -> dict[str, Default]:
        """use_cpu, bf16 and fp16 for this machine, each with the reason."""
        if not self.cuda:
            cpu = f"hardware: {self.describe_gpus()} ({self.how})"
            return {
                "bf16": Default(False, f"{cpu}: no mixed precision on CPU"),
                "fp16": Default(False, f"{cpu}: no mixed precision on CPU"),
                "use_cpu": Default(True, cpu),
            }
        gpus = self.describe_gpus()
        if self.bf16:
            bf16 = Default(True, f"hardware: {gpus} supports bf16")
            fp16 = Default(False, "hardware: bf16 is used instead")
        else:
            caveat = (
                f"; the model's weights are {model_dtype}, watch the loss for overflow"
                if model_dtype == "bfloat16"
                else ""
            )
            bf16 = Default(False, f"hardware: {gpus} has no bf16 (compute capability below 8.0)")
            fp16 = Default(True, f"hardware: fp16 instead of bf16{caveat}")
        return {"bf16": bf16, "fp16": fp16, "use_cpu": Default(False, f"hardware: {gpus} ({self.how})")}


def parse_gpus(text: str) -> tuple[Gpu, ...]:
    """nvidia-smi's `name, memory.total, compute_cap` CSV lines (with or without units)."""
    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if not parts or not parts[0]:
            continue
        memory: int | None = None
        if len(parts) > 1:
            digits = parts[1].split()[0] if parts[1].split() else ""
            memory = int(digits) if digits.isdigit() else None
        cap = parts[2] if len(parts) > 2 and parts[2] not in ("", "[N/A]", "N/A") else None
        gpus.append(Gpu(parts[0], memory, cap))
    return tuple(gpus)


@dataclass(frozen=True)
class Driver:
    """The NVIDIA driver: its version, and the newest CUDA it runs (nvidia-smi's header)."""

    version: str | None
    cuda: str | None

    def runs(self, cuda_build: str) -> bool | None:
        """Can this driver run a torch built for `cuda_build` (e.g. "13.0")? None when unknown.

        A driver runs its own CUDA and older; within a major version newer minors run too
        (CUDA's minor-version compatibility), so only the major version is compared."""
        if self.cuda is None:
            return None
        try:
            return int(cuda_build.split(".")[0]) <= int(self.cuda.split(".")[0])
        except ValueError:
            return None


_HEADER = re.compile(r"Driver Version:\s*(?P<driver>[\d.]+).*?CUDA Version:\s*(?P<cuda>[\d.]+)", re.S)


def parse_driver(text: str) -> Driver | None:
    """The driver and CUDA versions from `nvidia-smi`'s header table."""
    found = _HEADER.search(text)
    return Driver(found["driver"], found["cuda"]) if found else None


def driver() -> tuple[Driver | None, str]:
    """The NVIDIA driver on this machine, and how that was found (or why it was not)."""
    if os.environ.get(FAKE_ENV) is not None:
        return None, f"not asked: GPUs from {FAKE_ENV}"
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None, "nvidia-smi not found"
    try:
        done = subprocess.run([smi], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return None, f"nvidia-smi failed: {err}"
    if done.returncode != 0:
        return None, f"nvidia-smi failed: {_last_line(done.stderr or done.stdout)}"
    found = parse_driver(done.stdout)
    return found, "nvidia-smi" if found else "nvidia-smi printed no driver version"


def _last_line(text: str) -> str:
    lines = [x for x in text.strip().splitlines() if x.strip()]
    return lines[-1].strip() if lines else "no output"


def list_gpus() -> tuple[tuple[Gpu, ...], str]:
    """The GPUs nvidia-smi lists (or LF_WRAP_FAKE_GPUS), and how that was found or why there are none."""
    fake = os.environ.get(FAKE_ENV)
    if fake is not None:
        if fake.strip().lower() in ("", "0", "none"):
            return (), f"{FAKE_ENV}={fake.strip() or 'none'}"
        return parse_gpus(fake.replace(";", "\n")), FAKE_ENV
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return (), "nvidia-smi not found"
    try:
        done = subprocess.run([smi, *QUERY], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return (), f"nvidia-smi failed: {err}"
    if done.returncode != 0:
        return (), f"nvidia-smi failed: {_last_line(done.stderr or done.stdout)}"
    gpus = parse_gpus(done.stdout)
    return gpus, "nvidia-smi" if gpus else "nvidia-smi lists no GPU"


def detect(python: Path | None = None) -> Hardware:
    """Look at this machine. `python` is the training environment's interpreter."""
    gpus, how = list_gpus()
    if how.startswith(FAKE_ENV):
        return Hardware(gpus, bool(gpus), bool(gpus) and all(g.bf16_capable for g in gpus), how)
    if not gpus:
        return Hardware((), False, False, how)
    capable = all(g.bf16_capable for g in gpus)
    if python is None or not python.exists():
        return Hardware(gpus, True, capable, "nvidia-smi; no training environment to ask, bf16 from compute capability")
    try:
        asked = subprocess.run(
            [str(python), "-I", "-c", TORCH_CHECK], capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
        answer = json.loads(_last_line(asked.stdout)) if asked.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError) as err:
        return Hardware(gpus, False, False, f"the training environment's torch could not be asked: {err}")
    if not isinstance(answer, dict):
        why = _last_line(asked.stderr)
        return Hardware(gpus, False, False, f"the training environment's torch failed: {why}")
    version = answer.get("torch", "?")
    if not answer.get("cuda"):
        why = f"torch {version} in the training environment cannot use them (`lf-wrap doctor` says why)"
        return Hardware(gpus, False, False, why)
    return Hardware(gpus, True, bool(answer.get("bf16")), f"nvidia-smi, torch {version} in the training environment")
