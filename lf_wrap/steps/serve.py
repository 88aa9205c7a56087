"""`lf-wrap serve`: start `vllm serve` on the run's merged model (or any model folder, or
base model + LoRA adapter), or llama.cpp's llama-server on the run's GGUF (`--engine llama.cpp`),
wait until /health answers, and manage it when detached.

The server runs in its own process group; its output goes to runs/<name>/serve.log.  A
detached server is described by runs/<name>/serve.json (pid, process start time, port):
`serve stop` stops exactly that process group, never anything found by name.

With an API key, the key reaches the server in VLLM_API_KEY (never on its command line)
and lf_wrap_auth.ApiKeyMiddleware (engines/inside/vllm_plugin) refuses every request without it
on every route but GET /health; vLLM's own check covers only /v1 and a few prefixes.
llama-server reads its key from LLAMA_API_KEY and guards every route but /health itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lf_wrap.engines.llamacpp import KEY_ENV as LLAMA_KEY_ENV
from lf_wrap.engines.llamacpp import LlamaCpp
from lf_wrap.engines.vllm import AUTH_MIDDLEWARE, KEY_ENV, TCMALLOC_HINT, Vllm, env_args
from lf_wrap.model.folder import check_model_dir
from lf_wrap.model.sampling import sampling_defaults
from lf_wrap.model.template_agreement import PARTS
from lf_wrap.model.thinking import serve_flags
from lf_wrap.project.chat_template import chat_template_file, served_template
from lf_wrap.project.config import Project
from lf_wrap.project.hardware import detect
from lf_wrap.project.runs import RunFolder, now, read_server_record
from lf_wrap.steps.memory_check import serve_check
from lf_wrap.steps.snippets import for_record, for_server
from lf_wrap.util import console
from lf_wrap.util.errors import ExternalError, Interrupted, LfWrapError
from lf_wrap.util.files import atomic_write, read_json_object
from lf_wrap.util.network import free_port, is_public, port_free
from lf_wrap.util.process import run_logged, shell_line, spawn, stop_group, tail

SECRET_FLAGS = ("--api-key",)
SECRET_ENV = (KEY_ENV, LLAMA_KEY_ENV)
ENGINES = ("vllm", "llama.cpp")
ENGINE_NAMES = {"vllm": "vLLM", "llama.cpp": "llama.cpp"}


@dataclass
class ServePlan:
    run: RunFolder
    model: Path
    command: list[str]
    env: dict[str, str]
    env_changes: dict[str, str]
    host: str
    port: int
    served_name: str
    api_key: str | None
    warnings: list[str] = field(default_factory=list)
    engine: str = "vllm"  # or "llama.cpp"

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def log(self) -> Path:
        return self.run.root / "serve.log"

    @property
    def pidfile(self) -> Path:
        return self.run.server_record

    def printable(self) -> str:
        return shell_line(redact(self.command), redact_env(self.env_changes))


def redact(cmd: list[str]) -> list[str]:
    out = list(cmd)
    for i, arg in enumerate(out):
        if arg in SECRET_FLAGS and i + 1 < len(out):
            out[i + 1] = "***"
        for flag in SECRET_FLAGS:
            if arg.startswith(flag + "="):
                out[i] = flag + "=***"
    return out


def redact_env(env: dict[str, str]) -> dict[str, str]:
    return {k: "***" if k in SECRET_ENV else v for k, v in env.items()}


def plan(
    project: Project,
    *,
    model: Path | None,
    adapter: Path | None,
    adapter_name: str | None,
    served_name: str | None,
    tokenizer: Path | None,
    max_model_len: int | None,
    host: str,
    port: int,
    api_key: str | None,
    tensor_parallel_size: int | None,
    dtype: str | None,
    extra: tuple[str, ...],
    pipeline_parallel_size: int | None = None,
    data_parallel_size: int | None = None,
    chat_template: Path | None = None,
) -> ServePlan:
    run = RunFolder(project.run_dir.resolve())
    extra = (*env_args(), *extra)
    if any(a.partition("=")[0].replace("_", "-") in SECRET_FLAGS for a in extra):  # vLLM reads --api_key too
        raise LfWrapError(
            "--vllm-arg=--api-key would put the key on the command line (every user sees it in `ps`) and "
            "leave /invocations, /tokenize, /metrics and more open",
            hint="use `lf-wrap serve --api-key KEY` (or LF_WRAP_API_KEY): every route but /health needs the key",
        )
    # A VLLM_API_KEY the server would inherit counts as the key: then every route needs it, not only /v1.
    api_key = api_key or os.environ.get(KEY_ENV) or None
    from_run = model is None
    if model is None:
        if adapter is not None:
            model = project.path(project.config.model)
        else:
            model = run.merged
            if not model.exists():
                raise LfWrapError(
                    f"{run.merged}: no exported model for run {run.name!r}",
                    hint="run `lf-wrap export` first, or pass a MODEL folder (or --adapter with the base model)",
                )
    config = check_model_dir(model, "model")
    if served_name is None:
        # With an adapter, clients ask for the adapter by the run name; the base gets "-base".
        served_name = f"{run.name}-base" if adapter is not None else run.name
    flags: list[str] = ["--served-model-name", served_name, "--host", host, "--port", str(port)]
    if tokenizer is not None:
        check_model_dir_tokenizer(tokenizer)
        flags += ["--tokenizer", str(tokenizer)]
    limit = config.get("max_position_embeddings")
    if max_model_len is not None:
        if isinstance(limit, int) and max_model_len > limit:
            raise LfWrapError(
                f"--max-model-len {max_model_len} is above the model's limit ({limit}, max_position_embeddings "
                f"in {model / 'config.json'})",
                hint=f"use --max-model-len {limit} or less",
            )
        flags += ["--max-model-len", str(max_model_len)]
    if adapter is not None:
        if not (adapter / "adapter_config.json").exists():
            raise LfWrapError(f"{adapter}: not a LoRA adapter (no adapter_config.json)", hint="pass runs/<name>/output")
        rank = read_json_object(adapter / "adapter_config.json").get("r", 16)
        if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
            raise LfWrapError(f"{adapter / 'adapter_config.json'}: r (the LoRA rank) must be a positive integer")
        name = adapter_name or run.name
        flags += ["--enable-lora", "--lora-modules", f"{name}={adapter.resolve()}", "--max-lora-rank", str(rank)]
    if tensor_parallel_size:
        flags += ["--tensor-parallel-size", str(tensor_parallel_size)]
    if pipeline_parallel_size:
        flags += ["--pipeline-parallel-size", str(pipeline_parallel_size)]
    if data_parallel_size:
        flags += ["--data-parallel-size", str(data_parallel_size)]
    if dtype:
        flags += ["--dtype", dtype]
    if chat_template is not None:  # e.g. the training template (project/chat_template.py)
        if not chat_template.is_file():
            raise LfWrapError(f"--chat-template {chat_template}: no such file", hint="pass `training` or a .jinja file")
        flags += ["--chat-template", str(chat_template.resolve())]
    if api_key:  # the key itself travels in the environment (KEY_ENV), not on the command line
        flags += ["--middleware", AUTH_MIDDLEWARE]
    if from_run:  # the run's own model: serve it the way it was trained to think (lf_wrap/model/thinking.py)
        flags += serve_flags(run.thinking(), extra)
    flags += list(extra)
    engine = Vllm.find(project.config.vllm, project.root)
    if engine.cpu_build and not dtype and not any(a.startswith("--dtype") for a in extra):
        flags += ["--dtype", "float32"]  # CPU kernels: float32 is exact and fast enough for small models
    command = engine.command(str(model.resolve()), flags)
    sizes = parallel_sizes(flags)  # --vllm-arg may set them too
    env, changes = engine.env(
        offline=True, workers=sizes["tp"] * sizes["pp"], data_parallel=sizes["dp"], api_key=api_key
    )
    warnings = []
    memory = memory_line(engine, env, model, config, flags, sizes["tp"])
    if memory:
        warnings.append(memory)
    if is_public(host) and not api_key:
        warnings.append(
            f"warning: serving on {host} without --api-key: anyone who can reach this machine can use the model "
            "(set --api-key or LF_WRAP_API_KEY)"
        )
    if engine.cpu_build and "tcmalloc" not in env.get("LD_PRELOAD", ""):
        warnings.append(f"note: {TCMALLOC_HINT}")
    if not port_free(host, port):
        raise LfWrapError(f"port {port} on {host} is already in use", hint="pick another --port, or stop what uses it")
    return ServePlan(
        run, model.resolve(), command, env, changes, host, port, served_name or run.name, api_key, warnings
    )


def memory_line(
    engine: Vllm, env: dict[str, str], model: Path, config: dict[str, Any], flags: list[str], tp: int
) -> str | None:
    """The serving memory plan (steps/memory_check.py): what the KV cache holds at max_model_len, from
    VLLM_CPU_KVCACHE_SPACE on CPU or the GPU's memory; raises where vLLM would refuse to start."""

    def flag(name: str) -> str | None:
        for i, arg in enumerate(flags):
            if arg == name and i + 1 < len(flags):
                return flags[i + 1]
            if arg.startswith(name + "="):
                return arg.partition("=")[2]
        return None

    dtype = flag("--dtype") or "auto"
    if dtype == "auto":
        dtype = str(config.get("torch_dtype") or config.get("dtype") or "bfloat16")
    length = flag("--max-model-len")
    kv_space = float(env.get("VLLM_CPU_KVCACHE_SPACE", "4")) if engine.cpu_build else None
    gpus = () if engine.cpu_build else detect().gpus
    memory = [g.memory_mib for g in gpus if g.memory_mib]
    return serve_check(model, dtype=dtype, max_model_len=int(length) if length and length.isdigit() else None, tp=tp,
                       kv_space_gib=kv_space, gpu_mib=min(memory) if memory else None,
                       gpu_name=gpus[0].name if gpus else "")  # fmt: skip


def plan_for(
    project: Project, *, chat_template: str | None, engine: str = "vllm", gguf: Path | None = None, **options: Any
) -> ServePlan:
    """`lf-wrap serve start`'s plan: the chat template to serve with (--chat-template, else the
    project's `chat_template:`), written where the engine reads it, then `plan` (vLLM) or
    `plan_llamacpp`."""
    choice = served_template(project, chat_template)
    template_file = chat_template_file(project, choice) if choice is not None else None
    if template_file is not None:
        console.note(f"chat template: {template_file}")
    if engine == "llama.cpp":
        keep = ("served_name", "max_model_len", "host", "port", "api_key", "extra")
        served = plan_llamacpp(project, gguf=gguf, chat_template=template_file, **{k: options[k] for k in keep})
    else:
        served = plan(project, chat_template=template_file, **options)
    # the run's own model (merged, or base + adapter) with its own template: the run's check applies
    scoped = served.run.template_scope() if template_file is None and options.get("model") is None else None
    if scoped:  # the model's own template serves some conversations differently than trained: say which
        parts = " or ".join(PARTS[part] for part in scoped["differs_with"] if part in PARTS)
        served.warnings.append(
            f"note: the template check {scoped['line']}: a request with {parts} is served a prompt the model "
            "was not trained on (`lf-wrap chat` says so when one does); `--chat-template training` serves what "
            "training rendered"
        )
    return served


def run_gguf(run: RunFolder) -> Path:
    """The run's GGUF (`lf-wrap export --format gguf`): the only one, else the q8_0 one."""
    files = sorted((run.root / "gguf").glob("*.gguf"))
    if not files:
        raise LfWrapError(
            f"{run.root / 'gguf'}: no GGUF file for run {run.name!r}",
            hint="write one with `lf-wrap export --format gguf`, or pass --gguf FILE",
        )
    if len(files) == 1:
        return files[0]
    default = run.root / "gguf" / f"{run.name}.q8_0.gguf"
    if default in files:
        return default
    raise LfWrapError(
        f"run {run.name!r} has {len(files)} GGUF files: {', '.join(f.name for f in files)}",
        hint="pick one with --gguf FILE",
    )


LLAMACPP_SAMPLING = {"temperature": "--temp", "top_p": "--top-p", "top_k": "--top-k",
                     "repetition_penalty": "--repeat-penalty"}  # fmt: skip


def sampling_flags(folder: Path | None) -> list[str]:
    """llama-server's sampling defaults from the model's generation_config.json, as vLLM applies that
    file (llama-server's own default is temperature 0.8): do_sample false is greedy (--temp 0)."""
    return [x for key, value in sampling_defaults(folder).items() for x in (LLAMACPP_SAMPLING[key], f"{value:g}")]


def plan_llamacpp(
    project: Project,
    *,
    gguf: Path | None,
    served_name: str | None,
    max_model_len: int | None,
    host: str,
    port: int,
    api_key: str | None,
    extra: tuple[str, ...],
    chat_template: Path | None = None,
) -> ServePlan:
    """llama.cpp's llama-server on the run's GGUF (or `gguf`): the template embedded in the file
    (`--jinja`), or `chat_template`; the sampling defaults of the merged model's generation_config.json;
    `--threads` from OMP_NUM_THREADS when it is set; the key in LLAMA_API_KEY (every route but /health
    needs it)."""
    run = RunFolder(project.run_dir.resolve())
    if any(a.partition("=")[0] in SECRET_FLAGS for a in extra):
        raise LfWrapError(
            "--llamacpp-arg=--api-key would put the key on the command line (every user sees it in `ps`)",
            hint="use `lf-wrap serve --api-key KEY` (or LF_WRAP_API_KEY): it reaches llama-server in LLAMA_API_KEY",
        )
    api_key = api_key or os.environ.get(LLAMA_KEY_ENV) or None
    model = gguf if gguf is not None else run_gguf(run)
    if not model.is_file():
        raise LfWrapError(f"--gguf {model}: no such file", hint="write one with `lf-wrap export --format gguf`")
    with model.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise LfWrapError(f"{model}: not a GGUF file (it does not start with 'GGUF')", hint="pass a .gguf file")
    served_name = served_name or run.name
    flags = ["--host", host, "--port", str(port), "--alias", served_name, "--jinja"]
    if chat_template is not None:
        flags += ["--chat-template-file", str(chat_template)]
    if max_model_len is not None:
        flags += ["--ctx-size", str(max_model_len)]
    source = run.output if project.config.method == "full" else run.merged
    flags += sampling_flags(source if gguf is None else None)
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and not any(a.split("=")[0] in ("-t", "--threads") for a in extra):
        # the CPU share this process was given: llama-server's own default is every core, and its
        # threads spin while they wait, which starves whatever else runs on a shared machine
        flags += ["--threads", threads]
    flags += list(extra)
    engine = LlamaCpp.find()
    env, changes = engine.env(api_key=api_key)
    warnings = []
    if is_public(host) and not api_key:
        warnings.append(
            f"warning: serving on {host} without --api-key: anyone who can reach this machine can use the model "
            "(set --api-key or LF_WRAP_API_KEY)"
        )
    if not port_free(host, port):
        raise LfWrapError(f"port {port} on {host} is already in use", hint="pick another --port, or stop what uses it")
    command = engine.server_command(model.resolve(), flags)
    return ServePlan(run, model.resolve(), command, env, changes, host, port, served_name, api_key, warnings,
                     engine="llama.cpp")  # fmt: skip


def plan_to_compare(project: Project, model: Path | None, adapter: Path | None, served_name: str | None) -> ServePlan:
    """The server `lf-wrap serve` would start for this model, on a free loopback port, as the
    project serves it (its chat template): what `lf-wrap eval` asks."""
    choice = served_template(project, None)
    return plan(
        project, model=model, adapter=adapter, adapter_name=None, served_name=served_name, tokenizer=None,
        max_model_len=None, host="127.0.0.1", port=free_port(), api_key=None, tensor_parallel_size=None,
        dtype=None, extra=(), chat_template=chat_template_file(project, choice) if choice else None,
    )  # fmt: skip


_SIZE_FLAGS = {
    "--tensor-parallel-size": "tp", "-tp": "tp",
    "--pipeline-parallel-size": "pp", "-pp": "pp",
    "--data-parallel-size": "dp", "-dp": "dp",
}  # fmt: skip


def parallel_sizes(flags: list[str]) -> dict[str, int]:
    """Tensor/pipeline/data parallel sizes as vLLM will read them from `flags` (last one wins)."""
    sizes = {"tp": 1, "pp": 1, "dp": 1}
    for i, flag in enumerate(flags):
        name, eq, value = flag.partition("=")
        if name in _SIZE_FLAGS:
            raw = value if eq else (flags[i + 1] if i + 1 < len(flags) else "")
            with contextlib.suppress(ValueError):
                sizes[_SIZE_FLAGS[name]] = max(1, int(raw))
    return sizes


def check_model_dir_tokenizer(path: Path) -> None:
    if not path.is_dir() or not any((path / f).exists() for f in ("tokenizer.json", "tokenizer_config.json")):
        raise LfWrapError(f"--tokenizer {path}: no tokenizer files there", hint="pass a folder with tokenizer.json")


# -- waiting for the server -----------------------------------------------------------------
def wait_healthy(p: ServePlan, proc_alive: Callable[[], bool], timeout_s: float) -> float:
    """Poll /health until it answers 200; fail early if the process died. Returns seconds."""
    import httpx

    start = time.monotonic()
    url = f"{p.base_url}/health"
    # One client for the whole wait: httpx.get() builds a new client (and TLS context) per call,
    # ~20 ms of CPU (measured; 0.1 ms with one client) that a 2-core machine starting vLLM cannot spare.
    with httpx.Client(timeout=2.0) as client:
        while True:
            if not proc_alive():
                raise ExternalError(
                    f"the {ENGINE_NAMES[p.engine]} server exited while starting. Last lines of {p.log}:\n"
                    f"{tail(p.log, 25)}",
                    hint=f"full log: {p.log}",
                )
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url).status_code == 200:
                    return time.monotonic() - start
            if time.monotonic() - start > timeout_s:
                raise ExternalError(
                    f"the {ENGINE_NAMES[p.engine]} server did not become healthy within {timeout_s:.0f} s "
                    f"(log: {p.log})",
                    hint="raise --timeout for big models; last log lines:\n" + tail(p.log, 10),
                )
            time.sleep(0.1)  # polling every 0.5 s added 0.25 s to the average start


def _start_time(pid: int) -> float | None:
    """When the process started (seconds since the epoch), from psutil: Linux, macOS and BSD alike,
    so a recycled pid is told apart from the server lf-wrap started everywhere, not only where /proc is."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None


def serve_foreground(p: ServePlan) -> None:
    """Run until the server exits (0) or is stopped: Ctrl-C / SIGTERM raise Interrupted (exit 130 / 143).
    Prints the log as it grows."""
    p.run.root.mkdir(parents=True, exist_ok=True)
    console.note(f"$ {p.printable()}")
    stop_follow = threading.Event()
    state: dict[str, Any] = {"offset": p.log.stat().st_size if p.log.exists() else 0, "ready": False}
    started = time.monotonic()

    def follow() -> None:
        import httpx

        client = httpx.Client(timeout=1.0)  # one client: httpx.get() costs ~20 ms of CPU a call
        while not stop_follow.is_set():
            if p.log.exists():
                with p.log.open("rb") as f:
                    f.seek(state["offset"])
                    data = f.read()
                    state["offset"] += len(data)
                if data:
                    console.note(data.decode("utf-8", "replace"), end="")
            if not state["ready"]:
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{p.base_url}/health").status_code == 200:
                        state["ready"] = True
                        console.note(
                            f"ready in {time.monotonic() - started:.0f} s: {p.base_url}/v1 serves {p.served_name!r} "
                            "(Ctrl-C stops it)"
                        )
                        console.note(for_server(p.base_url, p.served_name, api_key_required=bool(p.api_key),
                                                model_dir=p.model, run_root=p.run.root))  # fmt: skip
            stop_follow.wait(0.1 if not state["ready"] else 0.5)
        client.close()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        outcome = run_logged(
            p.command, p.log, env=p.env, cwd=p.run.root, header=f"# {now()} $ {p.printable()}\n", poll_s=0.5
        )
    finally:
        stop_follow.set()
        thread.join(timeout=2)
    if outcome.interrupted:  # exit 130 (Ctrl-C) or 143 (SIGTERM), as a shell reports a stopped process
        raise Interrupted(f"server stopped ({outcome.interrupted})", outcome.interrupted)
    if outcome.returncode != 0:
        raise ExternalError(
            f"the {ENGINE_NAMES[p.engine]} server exited with code {outcome.returncode}", hint=f"log: {p.log}"
        )


def _start(p: ServePlan, by: str = "") -> subprocess.Popen[bytes]:
    """Start the server in its own process group, its output appended to the run's serve.log
    (under a `# when [by] $ command` line): the one way lf-wrap starts vLLM in the background."""
    p.run.root.mkdir(parents=True, exist_ok=True)
    console.note(f"$ {p.printable()}")
    return spawn(p.command, p.log, env=p.env, cwd=p.run.root, header=f"# {now()} {by}$ {p.printable()}\n")


@contextlib.contextmanager
def running(p: ServePlan, timeout_s: float, by: str) -> Iterator[float]:
    """A server for the length of the block (yields the seconds it took to answer /health): the
    whole process group is stopped when the block ends, also on Ctrl-C or an error."""
    proc = _start(p, by)
    try:
        yield wait_healthy(p, lambda: proc.poll() is None, timeout_s)
    finally:
        stop_group(proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def serve_detached(p: ServePlan, timeout_s: float) -> dict[str, Any]:
    existing = read_server_record(p.pidfile)
    if existing and process_matches(existing):
        raise LfWrapError(
            f"a server for run {p.run.name!r} is already running (pid {existing['pid']}, {existing['base_url']})",
            hint="stop it with `lf-wrap serve stop`",
        )
    proc = _start(p)
    info = {
        "pid": proc.pid,
        "pgid": proc.pid,
        "start_time": _start_time(proc.pid),
        "base_url": p.base_url,
        "host": p.host,
        "port": p.port,
        "served_model_name": p.served_name,
        "engine": p.engine,
        "model": str(p.model),
        "command": redact(p.command),
        "log": str(p.log),
        "started": now(),
        "api_key_required": bool(p.api_key),
    }
    atomic_write(p.pidfile, json.dumps(info, indent=2) + "\n")
    try:
        seconds = wait_healthy(p, lambda: proc.poll() is None, timeout_s)
    except BaseException:
        stop_group(proc.pid)
        proc.wait()
        p.pidfile.unlink(missing_ok=True)
        raise
    info["ready_after_s"] = round(seconds, 1)
    atomic_write(p.pidfile, json.dumps(info, indent=2) + "\n")
    p.run.record("serve", {k: v for k, v in info.items() if k not in ("pid", "pgid", "start_time")})
    return info


# -- status / stop --------------------------------------------------------------------------
def process_matches(info: dict[str, Any]) -> bool:
    """Is the pid still the very process lf-wrap started (not a recycled pid)?"""
    pid, recorded = info.get("pid"), info.get("start_time")
    if not isinstance(pid, int) or isinstance(recorded, bool):
        return False
    started = _start_time(pid)
    return isinstance(recorded, int | float) and started is not None and abs(started - recorded) < 0.05


def status(pidfile: Path) -> dict[str, Any]:
    info = read_server_record(pidfile)
    if info is None:
        return {"running": False, "reason": f"no server recorded in {pidfile}"}
    if not process_matches(info):
        return {"running": False, "stale": True, "reason": f"pid {info.get('pid')} is gone (stale {pidfile})", **info}
    import httpx

    try:
        healthy = httpx.get(f"{info['base_url']}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        healthy = False
    return {"running": True, "healthy": healthy, **info}


def ready_lines(info: dict[str, Any], run_root: Path, config_file: Path | None) -> list[str]:
    """What `serve --detach` says once the server is up, and how to call it."""
    served = f"{info['base_url']}/v1 serves {info['served_model_name']!r} (pid {info['pid']}, log {info['log']})"
    return [f"ready in {info['ready_after_s']:.0f} s: {served}; stop with `lf-wrap serve stop`", "",
            for_record(info, run_root, config_file)]  # fmt: skip


def status_lines(info: dict[str, Any], run_root: Path, config_file: Path | None) -> list[str]:
    """What `serve status` says: running (and how to call it), or why not."""
    if not info["running"]:
        return [f"not running: {info['reason']}"]
    health = "healthy" if info["healthy"] else "not healthy yet"
    served = f"{info['base_url']}/v1 serves {info.get('served_model_name')!r}"
    return [f"running: pid {info['pid']}, {served}, {health}", "", for_record(info, run_root, config_file)]


def stop(pidfile: Path) -> str:
    info = read_server_record(pidfile)
    if info is None:
        raise LfWrapError(f"no detached server recorded in {pidfile}", hint="start one with `lf-wrap serve --detach`")
    if not process_matches(info):
        pidfile.unlink(missing_ok=True)
        return f"server pid {info.get('pid')} was not running; removed the stale {pidfile.name}"
    stop_group(int(info["pgid"]))
    pidfile.unlink(missing_ok=True)
    return f"stopped the server (pid {info['pid']}, {info['base_url']})"
