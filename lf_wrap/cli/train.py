"""Training: `lf-wrap train`, `export` (merge the adapter) and `launch-plan` (a multi-node run's
commands); lf_wrap/steps/train.py, export.py, launch_plan.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from lf_wrap.cli.common import config_options, echo_json, json_option

# Flags of `train` that are project settings too: passed on as the --set overrides they are.
LAUNCH = ("nproc_per_node", "nnodes", "node_rank", "master_addr", "master_port", "deepspeed", "from_run")


# -- train / export ----------------------------------------------------------------------
@click.command()
@config_options
@click.option("--resume", is_flag=True, help="Continue the run from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Start the run over, deleting its output.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Run every check the real command runs, print the YAML and the command, start nothing.",
)
@click.option("--no-template-check", is_flag=True, help="Skip the train/serve chat-template agreement check.")
@click.option("--nproc-per-node", type=click.IntRange(1), help="Processes (GPUs) per node; >1 launches torchrun.")
@click.option("--nnodes", type=click.IntRange(1), help="Number of nodes.")
@click.option("--node-rank", type=click.IntRange(0), help="This node's rank, 0 .. nnodes-1.")
@click.option("--master-addr", help="Address of node 0, reachable from every node.")
@click.option("--master-port", type=click.IntRange(1, 65535), help="Rendezvous port on node 0.")
@click.option("--deepspeed", help="z0, z2, z3, z3-offload (from templates/deepspeed/) or a DeepSpeed JSON file.")
@click.option(
    "--from-run",
    metavar="NAME",
    help="Start from run NAME's result (its merged model, else its LoRA adapter), e.g. DPO after SFT.",
)
@json_option
def train(
    config_file: Path | None, sets: tuple[str, ...], resume: bool, overwrite: bool, dry_run: bool,
    no_template_check: bool, as_json: bool, **launch: Any,
) -> None:  # fmt: skip
    """Fine-tune with `llamafactory-cli train` (LoRA, QLoRA or full; SFT, DPO or KTO).

    \b
    Before the engine starts, lf-wrap checks: the model folder (config, weights,
    tokenizer), every dataset (registered and valid, row by row), the settings (keys and
    types), the run folder (no accidental overwrite), the engine and the hardware (GPUs,
    bf16), DeepSpeed, and that the chat template the model will be served with renders what
    LLaMA-Factory trains on. --dry-run runs all of these and exits 2 where the real command would.

    \b
    Examples:
      lf-wrap train                                  # ./lf-wrap.yaml (the built-in demo if there is none)
      lf-wrap train --set num_train_epochs=3 --set run_name=try2
      lf-wrap train --dry-run
      lf-wrap train --nproc-per-node 8 --deepspeed z3       # one node, 8 GPUs
      lf-wrap train --nnodes 2 --node-rank 0 --nproc-per-node 8 --master-addr 10.0.0.1
      lf-wrap train --set stage=dpo --set datasets=my_pairs --from-run my-sft-run   # DPO on an SFT result

    Exit status: 0 trained (--dry-run: every check passed), 1 the engine failed, 2 bad input or a
    failed check, 130/143 interrupted by Ctrl-C/SIGTERM (continue with --resume).
    """
    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite contradict each other")
    from lf_wrap.project.config import load_project
    from lf_wrap.steps import train as step
    from lf_wrap.steps.report import try_write

    sets += tuple(f"{k}={launch[k]}" for k in LAUNCH if launch[k] is not None)
    project = load_project(config_file, sets)
    p = step.plan(project, resume=resume, overwrite=overwrite, template_check=not no_template_check)
    for line in p.before_lines(dry_run):
        click.echo(line, err=True)
    if dry_run:
        click.echo(p.rendered.text, nl=False)
        click.echo("\n".join(p.dry_run_lines()), err=True)
        return
    result = step.execute(p, as_json=as_json)
    report_line = try_write(p.run.root)
    if as_json:
        click.echo(json.dumps({"event": "done", **result}, ensure_ascii=False))
    else:
        click.echo(step.done_line(p, result))
    click.echo(report_line, err=as_json)


@click.command()
@config_options
@click.option(
    "--format", "fmt", type=click.Choice(["hf", "gguf"]), default="hf", show_default=True,
    help="hf: the merged model (safetensors) for vLLM and transformers; gguf: one GGUF file for llama.cpp and "
    "Ollama, with a Modelfile (merges first when the run has no merged model).",
)  # fmt: skip
@click.option(
    "--quant", metavar="TYPE", default=None,
    help="--format gguf: f16, bf16, f32, q8_0 (default; written by llama.cpp's converter) or a k-quant such as "
    "q4_k_m, q5_k_m, q6_k (llama-quantize).",
)  # fmt: skip
@click.option("--overwrite", is_flag=True, help="Replace an existing merged model (--format gguf: GGUF file).")
@click.option("--dry-run", is_flag=True, help="Run every check the real command runs, print the YAML and the command.")
@click.option(
    "--chat-template",
    metavar="training|FILE",
    help="Give the merged model this chat template: `training` is a Jinja template that renders exactly what "
    "LLaMA-Factory trained on (checked first); or a .jinja file.",
)
@json_option
def export(
    config_file: Path | None, sets: tuple[str, ...], fmt: str, quant: str | None, overwrite: bool, dry_run: bool,
    chat_template: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Merge the run's LoRA adapter into the base model (`llamafactory-cli export`), or write it as GGUF.

    The merged model is written to runs/<run_name>/merged and checked (weights, config,
    tokenizer, chat template) before lf-wrap reports success. With --chat-template training
    its chat template (chat_template.jinja, and tokenizer_config.json's) becomes the one
    LLaMA-Factory trained with, so any server that uses the model's template serves it.

    With --format gguf, llama.cpp's own converter (built by `make setup-llamacpp`) writes
    runs/<run_name>/gguf/<run_name>.<quant>.gguf and an Ollama Modelfile beside it; the file
    carries the merged model's chat template and stop token, checked before it is renamed
    into place. Serve it with `lf-wrap serve --engine llama.cpp`.

    \b
    Examples:
      lf-wrap export                               # runs/<run_name>/merged
      lf-wrap export --format gguf                 # q8_0
      lf-wrap export --format gguf --quant q4_k_m

    Exit status: 0 exported and checked, 1 the engine failed or the result is incomplete, 2 bad input,
    130/143 interrupted by Ctrl-C/SIGTERM.
    """
    from lf_wrap.project.config import load_project

    if quant is not None and fmt != "gguf":
        raise click.UsageError("--quant is for --format gguf")
    project = load_project(config_file, sets)
    if fmt == "gguf":
        export_gguf(project, quant, overwrite, dry_run, chat_template, as_json)
        return
    from lf_wrap.steps import export as step

    p = step.plan(project, overwrite=overwrite, chat_template=chat_template)
    if dry_run:
        if p.rendered is not None:
            click.echo(p.rendered.text, nl=False)
        for line in p.dry_run_lines():
            click.echo(line, err=True)
        return
    result = step.execute(p)
    if as_json:
        echo_json(result)
    elif result["merged"]:
        click.echo(f"exported {result['model']} in {result['duration_s']:.0f} s")


def export_gguf(project: Any, quant: str | None, overwrite: bool, dry_run: bool, chat_template: str | None,
                as_json: bool) -> None:  # fmt: skip
    """`export --format gguf`: llama.cpp's converter (steps/export_gguf.py)."""
    from lf_wrap.steps import export_gguf as step

    quant = (quant or step.DEFAULT_QUANT).lower()
    g = step.plan(project, quant=quant, overwrite=overwrite, chat_template=chat_template)
    if dry_run:
        click.echo("\n".join(g.dry_run_lines()), err=True)
        return
    written = step.execute(g)
    if as_json:
        echo_json(written)
    else:
        click.echo(f"exported {written['file']} ({written['bytes'] / 1e6:.1f} MB, {written['quant']}) "
                   f"in {written['seconds']:.0f} s")  # fmt: skip


@click.command("launch-plan")
@config_options
@click.option("--nnodes", type=click.IntRange(1), required=True, help="Number of nodes.")
@click.option("--nproc-per-node", type=click.IntRange(1), default=1, show_default=True, help="GPUs per node.")
@click.option("--master-addr", required=True, help="Address of node 0, reachable from every node.")
@click.option("--master-port", type=click.IntRange(1, 65535), default=29500, show_default=True)
@click.option("--deepspeed", help="z0, z2, z3, z3-offload or a DeepSpeed JSON file.")
def launch_plan(config_file: Path | None, sets: tuple[str, ...], nnodes: int, nproc_per_node: int, master_addr: str,
                master_port: int, deepspeed: str | None) -> None:  # fmt: skip
    """Print the command to run on each node (and a Slurm line) for a multi-node run.

    \b
    Example:
      lf-wrap launch-plan --nnodes 4 --nproc-per-node 8 --master-addr 10.0.0.1 --deepspeed z3

    Exit status: 0 printed, 2 bad input.
    """
    from lf_wrap.project.config import load_project
    from lf_wrap.project.launch import Launch
    from lf_wrap.steps.launch_plan import lines

    args = [*(["--config", str(config_file)] if config_file else []), *[x for s in sets for x in ("--set", s)]]
    if deepspeed:
        args += ["--deepspeed", deepspeed]
    load_project(config_file, (*sets, *((f"deepspeed={deepspeed}",) if deepspeed else ())))  # validate first
    click.echo("\n".join(lines(args, Launch(nproc_per_node, nnodes, 0, master_addr, master_port))))
