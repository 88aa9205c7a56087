"""Training: `lf-wrap train`, `export` (merge the adapter, or write a GGUF) and `launch-plan` (a
multi-node run's commands); lf_wrap/steps/train.py, export.py, export_gguf.py, launch_plan.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from lf_wrap.cli.options import config_options, json_option, page
from lf_wrap.cli.output import echo_lines, emit

# fmt: off
# Flags of `train` that are project settings too: passed on as the --set overrides they are.
LAUNCH = ("nproc_per_node", "nnodes", "node_rank", "master_addr", "master_port", "deepspeed", "from_run")


@click.command(help=page("train"))
@config_options
@click.option("--resume", is_flag=True, help="Continue the run from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Start the run over, deleting its output.")
@click.option("--dry-run", is_flag=True,
              help="Run every check the real command runs, print the YAML and the command, start nothing.")
@click.option("--no-template-check", is_flag=True, help="Skip the train/serve chat-template agreement check.")
@click.option("--nproc-per-node", type=click.IntRange(1), help="Processes (GPUs) per node; >1 launches torchrun.")
@click.option("--nnodes", type=click.IntRange(1), help="Number of nodes.")
@click.option("--node-rank", type=click.IntRange(0), help="This node's rank, 0 .. nnodes-1.")
@click.option("--master-addr", help="Address of node 0, reachable from every node.")
@click.option("--master-port", type=click.IntRange(1, 65535), help="Rendezvous port on node 0.")
@click.option("--deepspeed", help="z0, z2, z3, z3-offload (from templates/deepspeed/) or a DeepSpeed JSON file.")
@click.option("--from-run", metavar="NAME", help="Start from run NAME's result (its merged model, else its LoRA "
              "adapter), e.g. DPO after SFT.")
@json_option
def train(config_file: Path | None, sets: tuple[str, ...], resume: bool, overwrite: bool, dry_run: bool,
          no_template_check: bool, as_json: bool, **launch: Any) -> None:
    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite contradict each other")
    from lf_wrap.project.config import load_project
    from lf_wrap.steps import train as step
    from lf_wrap.steps.report import try_write

    project = load_project(config_file, sets + tuple(f"{k}={launch[k]}" for k in LAUNCH if launch[k] is not None))
    p = step.plan(project, resume=resume, overwrite=overwrite, template_check=not no_template_check)
    echo_lines(p.before_lines(dry_run), err=True)
    if dry_run:
        click.echo(p.rendered.text, nl=False)
        echo_lines(p.dry_run_lines(), err=True)
        return
    result = step.execute(p, as_json=as_json)
    report_line = try_write(p.run.root)
    click.echo(json.dumps({"event": "done", **result}, ensure_ascii=False) if as_json else step.done_line(p, result))
    click.echo(report_line, err=as_json)


@click.command(help=page("export"))
@config_options
@click.option("--format", "fmt", type=click.Choice(["hf", "gguf"]), default="hf", show_default=True,
              help="hf: the merged model (safetensors) for vLLM and transformers; gguf: one GGUF file for llama.cpp "
              "and Ollama, with a Modelfile (merges first when the run has no merged model).")
@click.option("--quant", metavar="TYPE", help="--format gguf: f16, bf16, f32, q8_0 (default; written by llama.cpp's "
              "converter) or a k-quant such as q4_k_m, q5_k_m, q6_k (llama-quantize).")
@click.option("--overwrite", is_flag=True, help="Replace an existing merged model (--format gguf: GGUF file).")
@click.option("--dry-run", is_flag=True, help="Run every check the real command runs, print the YAML and the command.")
@click.option("--chat-template", metavar="training|FILE", help="Give the merged model this chat template: `training` "
              "is a Jinja template that renders exactly what LLaMA-Factory trained on (checked first); or a .jinja "
              "file.")
@json_option
def export(config_file: Path | None, sets: tuple[str, ...], fmt: str, quant: str | None, overwrite: bool,
           dry_run: bool, chat_template: str | None, as_json: bool) -> None:
    if quant is not None and fmt != "gguf":
        raise click.UsageError("--quant is for --format gguf")
    from lf_wrap.project.config import load_project
    from lf_wrap.steps import export, export_gguf

    project = load_project(config_file, sets)
    step: Any = export_gguf if fmt == "gguf" else export
    choices = {"quant": (quant or export_gguf.DEFAULT_QUANT).lower()} if fmt == "gguf" else {}
    p = step.plan(project, overwrite=overwrite, chat_template=chat_template, **choices)
    if dry_run:
        if getattr(p, "rendered", None) is not None:
            click.echo(p.rendered.text, nl=False)
        echo_lines(p.dry_run_lines(), err=True)
        return
    result = step.execute(p)
    emit(as_json, result, step.done_lines(result))


@click.command("launch-plan", help=page("launch-plan"))
@config_options
@click.option("--nnodes", type=click.IntRange(1), required=True, help="Number of nodes.")
@click.option("--nproc-per-node", type=click.IntRange(1), default=1, show_default=True, help="GPUs per node.")
@click.option("--master-addr", required=True, help="Address of node 0, reachable from every node.")
@click.option("--master-port", type=click.IntRange(1, 65535), default=29500, show_default=True)
@click.option("--deepspeed", help="z0, z2, z3, z3-offload or a DeepSpeed JSON file.")
def launch_plan(config_file: Path | None, sets: tuple[str, ...], nnodes: int, nproc_per_node: int, master_addr: str,
                master_port: int, deepspeed: str | None) -> None:
    from lf_wrap.project.launch import Launch
    from lf_wrap.steps.launch_plan import plan

    launch = Launch(nproc_per_node, nnodes, 0, master_addr, master_port)
    click.echo("\n".join(plan(config_file, sets, deepspeed, launch)))
# fmt: on
