"""`lf-wrap serve`: start a server (the default subcommand), and the status and stop of a detached
one, which need only the run folder (lf_wrap/steps/serve.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from lf_wrap.cli.groups import DefaultGroup
from lf_wrap.cli.options import config_options, json_option, lenient_options, page, run_options, run_sets
from lf_wrap.cli.output import echo_lines, emit

# fmt: off
PATH = click.Path(path_type=Path)
SIZE = click.IntRange(1)
VLLM_ONLY = ("model", "adapter", "adapter_name", "tokenizer", "tensor_parallel_size", "pipeline_parallel_size",
             "data_parallel_size", "dtype", "extra")


@click.group(cls=DefaultGroup, default_command="start", help=page("serve"))
def serve() -> None: ...


@serve.command("start", help=page("serve-start"),
               short_help="Serve with vLLM or llama.cpp (the default: `serve ARGS` is `serve start ARGS`).")
@config_options
@click.option("--engine", type=click.Choice(["vllm", "llama.cpp"]), default="vllm", show_default=True,
              help="vllm: the merged model (safetensors); llama.cpp: the run's GGUF (`lf-wrap export --format gguf`) "
              "with llama-server (`make setup-llamacpp`).")
@click.option("--gguf", type=PATH, help="--engine llama.cpp: this GGUF file (default: the run's).")
@click.option("--model", type=PATH, help="Model folder to serve (default: the run's merged model, "
              "runs/<run_name>/merged).")
@click.option("--adapter", type=PATH, help="Serve the base model + this LoRA adapter.")
@click.option("--adapter-name", help="Model name for the adapter (default: the run name).")
@click.option("--served-model-name", "served_name", help="Name clients ask for (default: the run name).")
@click.option("--tokenizer", type=PATH, help="Tokenizer folder, if not the model's.")
@click.option("--chat-template", metavar="training|FILE", help="`training`: serve with a Jinja template that renders "
              "exactly what LLaMA-Factory trained on (checked, written to the run folder); or a .jinja file.")
@click.option("--max-model-len", type=click.IntRange(16), help="Longest prompt + answer, in tokens.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; 0.0.0.0 exposes it.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--api-key", envvar="LF_WRAP_API_KEY", help="Require this key (or set LF_WRAP_API_KEY).")
@click.option("--tensor-parallel-size", type=SIZE, help="Split each layer over N devices.")
@click.option("--pipeline-parallel-size", type=SIZE, help="Split the layers over N devices (or nodes).")
@click.option("--data-parallel-size", type=SIZE, help="N replicas of the model.")
@click.option("--dtype", help="auto, float16, bfloat16 or float32 (CPU default: float32).")
@click.option("--detach", is_flag=True, help="Run in the background (pidfile + log in the run folder).")
@click.option("--timeout", "timeout_s", type=float, default=600.0, show_default=True,
              help="Seconds to wait for /health when detached.")
@click.option("--dry-run", is_flag=True, help="Print the command, start nothing.")
@click.option("--vllm-arg", "extra", multiple=True, metavar="ARG",
              help="Passed to vllm serve untouched (repeatable), after the flags in LF_WRAP_VLLM_ARGS.")
@click.option("--llamacpp-arg", "llamacpp_extra", multiple=True, metavar="ARG",
              help="Passed to llama-server untouched (repeatable), e.g. --llamacpp-arg=--parallel=8.")
@run_options
@json_option
def serve_start(config_file: Path | None, sets: tuple[str, ...], run_name: str | None, runs_dir: Path | None,
                detach: bool, timeout_s: float, dry_run: bool, as_json: bool, **options: Any) -> None:
    from lf_wrap.project.config import load_project
    from lf_wrap.steps import serve as step

    project = load_project(config_file, run_sets(sets, run_name, runs_dir))
    p = step.plan_for(project, **engine_options(options))
    echo_lines(p.warnings, err=True)
    if dry_run:
        click.echo(p.printable())
    elif not detach:
        step.serve_foreground(p)
    else:
        info = step.serve_detached(p, timeout_s)
        emit(as_json, info, [] if as_json else step.ready_lines(info, p.run.root, config_file))


def engine_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options the chosen engine takes (a usage error for another engine's), named as plan_for names them."""
    if options["engine"] == "llama.cpp":
        if given := [f"--{k.replace('_', '-')}" for k in VLLM_ONLY if options[k]]:
            raise click.UsageError(f"{', '.join(given).replace('--extra', '--vllm-arg')}: vLLM only, not --engine "
                                   "llama.cpp")
        keep = {k: v for k, v in options.items() if k not in (*VLLM_ONLY, "llamacpp_extra")}
        return keep | {"extra": options["llamacpp_extra"]}
    if options["gguf"] or options["llamacpp_extra"]:
        raise click.UsageError("--gguf and --llamacpp-arg are for --engine llama.cpp")
    return {k: v for k, v in options.items() if k not in ("llamacpp_extra", "gguf", "engine")}


@serve.command("status", help=page("serve-status"))
@lenient_options
@json_option
def serve_status(config_file: Path | None, sets: tuple[str, ...], run_name: str | None, runs_dir: Path | None,
                 as_json: bool) -> None:
    from lf_wrap.project.runs import RunFolder, locate_run_dir
    from lf_wrap.steps.serve import status, status_lines

    run = RunFolder(locate_run_dir(config_file, sets, run_name, runs_dir))
    info = status(run.server_record)
    emit(as_json, {**info, "exit_code": 0 if info["running"] else 3}, status_lines(info, run.root, config_file))
    sys.exit(0 if info["running"] else 3)


@serve.command("stop", help=page("serve-stop"))
@lenient_options
def serve_stop(config_file: Path | None, sets: tuple[str, ...], run_name: str | None, runs_dir: Path | None) -> None:
    from lf_wrap.project.runs import RunFolder, locate_run_dir
    from lf_wrap.steps.serve import stop

    click.echo(stop(RunFolder(locate_run_dir(config_file, sets, run_name, runs_dir)).server_record))
# fmt: on
