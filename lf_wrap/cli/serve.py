"""`lf-wrap serve`: start a server (the default subcommand), and the status and stop of a detached
one, which need only the run folder (lf_wrap/steps/serve.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from lf_wrap.cli.common import (
    DefaultGroup,
    config_options,
    echo_json,
    json_option,
    lenient_options,
    run_options,
    run_sets,
)


@click.group(cls=DefaultGroup, default_command="start")
def serve() -> None:
    """Serve a model behind an OpenAI-compatible API, and manage a detached server.

    \b
    `lf-wrap serve [OPTIONS]` is `lf-wrap serve start [OPTIONS]`:
      lf-wrap serve                                   # foreground, Ctrl-C stops it
      lf-wrap serve --detach --port 8000              # background (pidfile + log in the run folder)
      lf-wrap serve status                            # is the run's detached server up?
      lf-wrap serve stop                              # stop exactly the process group lf-wrap started
      lf-wrap serve stop --config other.yaml          # another project's run (or --run NAME)

    Exit status: see each subcommand's --help (`serve status` exits 3 when no server runs).
    """


@serve.command("start", short_help="Serve with vLLM or llama.cpp (the default: `serve ARGS` is `serve start ARGS`).")
@config_options
@click.option(
    "--engine", type=click.Choice(["vllm", "llama.cpp"]), default="vllm", show_default=True,
    help="vllm: the merged model (safetensors); llama.cpp: the run's GGUF (`lf-wrap export --format gguf`) with "
    "llama-server (`make setup-llamacpp`).",
)  # fmt: skip
@click.option(
    "--gguf", type=click.Path(path_type=Path), help="--engine llama.cpp: this GGUF file (default: the run's)."
)
@click.option(
    "--model",
    "model",
    type=click.Path(path_type=Path),
    help="Model folder to serve (default: the run's merged model, runs/<run_name>/merged).",
)
@click.option("--adapter", type=click.Path(path_type=Path), help="Serve the base model + this LoRA adapter.")
@click.option("--adapter-name", help="Model name for the adapter (default: the run name).")
@click.option("--served-model-name", help="Name clients ask for (default: the run name).")
@click.option("--tokenizer", type=click.Path(path_type=Path), help="Tokenizer folder, if not the model's.")
@click.option(
    "--chat-template",
    metavar="training|FILE",
    help="`training`: serve with a Jinja template that renders exactly what LLaMA-Factory trained on (checked, "
    "written to the run folder); or a .jinja file.",
)
@click.option("--max-model-len", type=click.IntRange(16), help="Longest prompt + answer, in tokens.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; 0.0.0.0 exposes it.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--api-key", envvar="LF_WRAP_API_KEY", help="Require this key (or set LF_WRAP_API_KEY).")
@click.option("--tensor-parallel-size", type=click.IntRange(1), help="Split each layer over N devices.")
@click.option("--pipeline-parallel-size", type=click.IntRange(1), help="Split the layers over N devices (or nodes).")
@click.option("--data-parallel-size", type=click.IntRange(1), help="N replicas of the model.")
@click.option("--dtype", help="auto, float16, bfloat16 or float32 (CPU default: float32).")
@click.option("--detach", is_flag=True, help="Run in the background (pidfile + log in the run folder).")
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=600.0,
    show_default=True,
    help="Seconds to wait for /health when detached.",
)
@click.option("--dry-run", is_flag=True, help="Print the command, start nothing.")
@click.option(
    "--vllm-arg", "extra", multiple=True, metavar="ARG",
    help="Passed to vllm serve untouched (repeatable), after the flags in LF_WRAP_VLLM_ARGS.",
)  # fmt: skip
@click.option(
    "--llamacpp-arg", "llamacpp_extra", multiple=True, metavar="ARG",
    help="Passed to llama-server untouched (repeatable), e.g. --llamacpp-arg=--parallel=8.",
)  # fmt: skip
@run_options
@json_option
def serve_start(
    config_file: Path | None, sets: tuple[str, ...], run_name: str | None, runs_dir: Path | None, detach: bool,
    timeout_s: float, dry_run: bool, as_json: bool, **options: Any,
) -> None:  # fmt: skip
    """Serve a model with `vllm serve`, or a GGUF with llama.cpp's llama-server (the default
    subcommand: `lf-wrap serve ...` runs this).

    \b
    By default the run's merged model (runs/<run_name>/merged). Examples:
      lf-wrap serve                                   # foreground, Ctrl-C stops it
      lf-wrap serve --detach --port 8000              # background; then: lf-wrap serve status|stop
      lf-wrap serve --adapter runs/magic-conch/output # base model + LoRA adapter, by name
      lf-wrap serve --model some/model/dir --vllm-arg=--enforce-eager
      lf-wrap serve --chat-template training          # the prompt format LLaMA-Factory trained on
      lf-wrap serve --engine llama.cpp --detach       # the run's GGUF (lf-wrap export --format gguf)

    Exit status: 0 the detached server is ready (foreground: the server exited by itself), 1 it failed
    to start or exited with an error, 2 bad input, 130/143 stopped by Ctrl-C/SIGTERM (foreground).
    """
    from lf_wrap.project.config import load_project
    from lf_wrap.steps import serve as step
    from lf_wrap.steps.snippets import for_record

    project = load_project(config_file, run_sets(sets, run_name, runs_dir))
    p = step.plan_for(project, **engine_options(options))
    for warning in p.warnings:
        click.echo(warning, err=True)
    if dry_run:
        click.echo(p.printable())
    elif not detach:
        step.serve_foreground(p)
    elif as_json:
        echo_json(step.serve_detached(p, timeout_s))
    else:
        info = step.serve_detached(p, timeout_s)
        served = f"{info['base_url']}/v1 serves {info['served_model_name']!r} (pid {info['pid']}, log {info['log']})"
        click.echo(f"ready in {info['ready_after_s']:.0f} s: {served}; stop with `lf-wrap serve stop`")
        click.echo("\n" + for_record(info, p.run.root, config_file))


VLLM_ONLY = ("model", "adapter", "adapter_name", "tokenizer", "tensor_parallel_size", "pipeline_parallel_size",
             "data_parallel_size", "dtype", "extra")  # fmt: skip


def engine_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options the chosen engine takes (a usage error for another engine's), named as plan_for names them."""
    options = dict(options)
    if options["engine"] == "llama.cpp":
        given = [f"--{k.replace('_', '-')}" for k in VLLM_ONLY if options[k]]
        if given:
            names = ", ".join(given).replace("--extra", "--vllm-arg")
            raise click.UsageError(f"{names}: vLLM only, not --engine llama.cpp")
        options["extra"] = options.pop("llamacpp_extra")
    else:
        if options["gguf"] or options["llamacpp_extra"]:
            raise click.UsageError("--gguf and --llamacpp-arg are for --engine llama.cpp")
        del options["llamacpp_extra"], options["gguf"], options["engine"]
    options["served_name"] = options.pop("served_model_name")
    return options


@serve.command("status")
@lenient_options
@json_option
def serve_status(
    config_file: Path | None, sets: tuple[str, ...], run_name: str | None, runs_dir: Path | None, as_json: bool
) -> None:
    """Is the run's detached server running and healthy?

    Only the run folder is needed (runs/<run_name>/serve.json): a typo elsewhere in the project
    file does not stop this.

    Exit status: 0 running, 3 not running (nothing recorded, or its process is gone), 2 bad input.
    """
    from lf_wrap.project.runs import RunFolder, locate_run_dir
    from lf_wrap.steps.serve import status
    from lf_wrap.steps.snippets import for_record

    run = RunFolder(locate_run_dir(config_file, sets, run_name, runs_dir))
    info = status(run.server_record)
    if as_json:
        echo_json({**info, "exit_code": 0 if info["running"] else 3})
    elif info["running"]:
        click.echo(f"running: pid {info['pid']}, {info['base_url']}/v1 serves {info.get('served_model_name')!r}, "
                   f"{'healthy' if info['healthy'] else 'not healthy yet'}")  # fmt: skip
        click.echo("\n" + for_record(info, run.root, config_file))
    else:
        click.echo(f"not running: {info['reason']}")
    sys.exit(0 if info["running"] else 3)


@serve.command("stop")
@lenient_options
def serve_stop(config_file: Path | None, sets: tuple[str, ...], run_name: str | None, runs_dir: Path | None) -> None:
    """Stop the run's detached server (exactly the process group lf-wrap started).

    Only the run folder is needed (runs/<run_name>/serve.json): a typo elsewhere in the project
    file does not stop this.

    Exit status: 0 stopped (or it had already exited: the stale record is removed), 2 no server
    recorded for the run, or bad input.
    """
    from lf_wrap.project.runs import RunFolder, locate_run_dir
    from lf_wrap.steps.serve import stop

    click.echo(stop(RunFolder(locate_run_dir(config_file, sets, run_name, runs_dir)).server_record))
