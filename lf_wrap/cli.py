"""The `lf-wrap` command line: thin click commands over the library modules.

Nothing heavy is imported here: torch, transformers, vllm and llamafactory are imported
inside the commands that need them, so `lf-wrap --help` starts in a blink.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from lf_wrap import __version__
from lf_wrap.errors import LfWrapError

FORMAT_CHOICES = ["auto", "alpaca", "sharegpt", "openai", "preference"]


class Failure(click.ClickException):
    """An LfWrapError on its way out: one clear message, the right exit code."""

    def __init__(self, err: LfWrapError) -> None:
        super().__init__(str(err))
        self.exit_code = err.exit_code


class Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LfWrapError as err:
            report = getattr(err, "report", None)
            if report is not None and not ctx.meta.get("lf_wrap.json"):
                for line in report.lines():
                    click.echo(line, err=True)
            raise Failure(err) from None


def _json_out(ctx: click.Context, payload: Any) -> None:
    click.echo(json.dumps(payload, ensure_ascii=False, indent=2))


def _fail_report(report: Any, as_json: bool) -> NoReturn:
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        for line in report.lines():
            click.echo(line, err=True)
    sys.exit(2)


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        ctx.meta["lf_wrap.json"] = value
        return value

    return click.option(
        "--json", "as_json", is_flag=True, callback=remember, expose_value=True, help="Print a machine-readable report."
    )(f)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="lf-wrap")
def main() -> None:
    """From a dataset file and a base model to a fine-tuned model behind an
    OpenAI-compatible API, one command per step.

    \b
    Typical path:
      lf-wrap init                                   # write lf-wrap.yaml (demo settings)
      lf-wrap model tiny models/tiny-qwen2           # or: lf-wrap model pull Qwen/Qwen2.5-0.5B-Instruct
      lf-wrap data validate my.json                  # every problem, with file:line and field
      lf-wrap data register my.json --name my_data   # write its dataset_info.json entry
      lf-wrap render train                           # the LLaMA-Factory YAML that would run
    """


# -- init --------------------------------------------------------------------------------
@main.command()
@click.option("--force", is_flag=True, help="Replace an existing lf-wrap.yaml.")
@click.argument("path", type=click.Path(path_type=Path), default="lf-wrap.yaml")
def init(path: Path, force: bool) -> None:
    """Write a project file (lf-wrap.yaml) with the built-in demo's settings."""
    from lf_wrap.config import init_text
    from lf_wrap.files import atomic_write

    if path.exists() and not force:
        raise LfWrapError(f"{path}: exists", hint="edit it, or pass --force to start over")
    atomic_write(path, init_text())
    click.echo(f"wrote {path}")


# -- data --------------------------------------------------------------------------------
@main.group(cls=Group)
def data() -> None:
    """Check, describe, convert and register datasets."""


@data.command("validate")
@click.argument("file", type=click.Path(path_type=Path), required=False)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMAT_CHOICES),
    default="auto",
    show_default=True,
    help="Dataset format; auto looks at the first row.",
)
@click.option("--dataset-dir", type=click.Path(path_type=Path), help="With --name: check a registered dataset.")
@click.option("--name", help="Name of the entry in DATASET_DIR/dataset_info.json to check, as LLaMA-Factory reads it.")
@click.option("--max-errors", type=click.IntRange(1), default=50, show_default=True, help="How many problems to list.")
@json_option
def data_validate(
    file: Path | None, fmt: str, dataset_dir: Path | None, name: str | None, max_errors: int, as_json: bool
) -> None:
    """Check a dataset row by row and report every problem.

    \b
    Examples:
      lf-wrap data validate datasets/magic_conch.json
      lf-wrap data validate chats.jsonl --format openai --json
      lf-wrap data validate --dataset-dir data --name magic_conch

    Each problem is printed as FILE:LINE: [row N].field: what is wrong — how to fix.
    Exit status: 0 valid (warnings allowed), 2 errors found.
    """
    from lf_wrap.data.registry import validate_entry
    from lf_wrap.data.validate import validate_file

    if name or dataset_dir:
        if file is not None:
            raise click.UsageError("give either FILE or --dataset-dir with --name, not both")
        if not (name and dataset_dir):
            raise click.UsageError("--dataset-dir and --name go together")
        report = validate_entry(dataset_dir, name, max_listed=max_errors)
    elif file is None:
        raise click.UsageError("give a FILE to check (or --dataset-dir DIR --name NAME)")
    else:
        report = validate_file(file, fmt, max_listed=max_errors)
    if not report.ok:
        _fail_report(report, as_json)
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        for line in report.lines()[:-1]:
            click.echo(line, err=True)
        click.echo(report.summary())


@data.command("stats")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES), default="auto", show_default=True)
@click.option(
    "--tokenizer",
    "tokenizer_dir",
    type=click.Path(path_type=Path),
    help="Model folder whose tokenizer and chat template count the tokens.",
)
@click.option("--cutoff-len", type=click.IntRange(1), help="Count rows longer than this (LLaMA-Factory's cutoff_len).")
@json_option
def data_stats(file: Path, fmt: str, tokenizer_dir: Path | None, cutoff_len: int | None, as_json: bool) -> None:
    """Rows, duplicates and length percentiles (tokens with --tokenizer, else characters)."""
    from lf_wrap.data.stats import compute

    stats = compute(file, fmt, tokenizer_dir, cutoff_len)
    d = stats.to_dict()
    if as_json:
        click.echo(json.dumps(d, ensure_ascii=False, indent=2))
        return
    length = d["length"]
    click.echo(f"file        {d['file']} ({d['format']})")
    click.echo(f"rows        {d['rows']}")
    click.echo(f"duplicates  {d['duplicates']}")
    click.echo(
        f"{d['unit']:<11} min {length['min']}  p50 {length['p50']}  p95 {length['p95']}  max {length['max']}"
        + ("  (chat template applied)" if d["unit"] == "tokens" else "")
    )
    if cutoff_len is not None:
        if d["unit"] != "tokens":
            click.echo("truncated   (pass --tokenizer to count tokens against --cutoff-len)")
        else:
            click.echo(f"truncated   {d['truncated']} of {d['rows']} rows exceed cutoff_len {cutoff_len}")


@data.command("convert")
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--to", "target", type=click.Choice(["alpaca", "sharegpt", "openai"]), required=True)
@click.option(
    "--format", "fmt", type=click.Choice(FORMAT_CHOICES), default="auto", show_default=True, help="Format of SRC."
)
@click.option("--force", is_flag=True, help="Replace OUT if it exists (never SRC).")
def data_convert(src: Path, out: Path, target: str, fmt: str, force: bool) -> None:
    """Convert SRC to another format, written to OUT (.json list or .jsonl lines).

    SRC is only read. Rows the target format cannot hold are dropped and counted.
    """
    from lf_wrap.data.convert import convert

    result = convert(src, out, target, fmt, force)
    click.echo(f"wrote {result.out}: {result.written} rows, {result.source.format} -> {target}")
    for reason, n in result.dropped.items():
        click.echo(f"dropped {n} rows: {reason}", err=True)


@data.command("register")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--name", required=True, help="Dataset name for the `dataset:` key of the training config.")
@click.option(
    "--dataset-dir",
    type=click.Path(path_type=Path),
    default=Path("data"),
    show_default=True,
    help="LLaMA-Factory's dataset_dir: where dataset_info.json and the data live.",
)
@click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES), default="auto", show_default=True)
@click.option("--force", is_flag=True, help="Replace a different entry (or data file) of the same name.")
@json_option
def data_register(file: Path, name: str, dataset_dir: Path, fmt: str, force: bool, as_json: bool) -> None:
    """Validate FILE, copy it into DATASET_DIR and write its dataset_info.json entry.

    \b
    Example:
      lf-wrap data register datasets/magic_conch.json --name magic_conch --dataset-dir data

    The entry is rendered from templates/dataset_info/<format>.json.j2. Registering the
    same file again changes nothing; a different entry under the same name needs --force.
    """
    from lf_wrap.data.registry import register

    reg = register(file, name, dataset_dir, fmt, force)
    if as_json:
        _json_out(
            click.get_current_context(),
            {
                "name": reg.name,
                "action": reg.action,
                "entry": reg.entry,
                "dataset_info": str(reg.info_path),
                "data_file": str(reg.data_path),
                "copied": reg.copied,
                "validation": reg.report.to_dict(),
            },
        )
        return
    click.echo(reg.report.summary())
    where = f"in {reg.info_path}" + (f" (data copied to {reg.data_path})" if reg.copied else "")
    if reg.action == "unchanged":
        click.echo(f"{reg.name!r} is already registered {where}, unchanged")
    else:
        click.echo(f"{'registered' if reg.action == 'added' else 'replaced'} {reg.name!r} {where}")


# -- model -------------------------------------------------------------------------------
@main.group(cls=Group)
def model() -> None:
    """Get a base model: download one (pull) or build the tiny demo model (tiny)."""


@model.command("pull")
@click.argument("model_id")
@click.option(
    "--hub",
    type=click.Choice(["hf", "modelscope"]),
    default="hf",
    show_default=True,
    help="Hugging Face (honours HF_ENDPOINT, HF_HOME, HF_TOKEN) or ModelScope.",
)
@click.option("--revision", help="Branch, tag or commit (default: the hub's main branch).")
@click.option("--local-dir", type=click.Path(path_type=Path), help="Download into this folder instead of the cache.")
@json_option
def model_pull(model_id: str, hub: str, revision: str | None, local_dir: Path | None, as_json: bool) -> None:
    """Download MODEL_ID (or check a local folder) and print one plain folder path.

    \b
    Examples:
      lf-wrap model pull Qwen/Qwen2.5-0.5B-Instruct
      HF_ENDPOINT=https://hf-mirror.com lf-wrap model pull Qwen/Qwen2.5-0.5B-Instruct
      lf-wrap model pull qwen/Qwen2.5-0.5B-Instruct --hub modelscope
      lf-wrap train --set model=$(lf-wrap model pull Qwen/Qwen2.5-0.5B-Instruct)

    A model already downloaded is found without the network. The printed folder holds
    config.json, the weights and the tokenizer (no snapshots/<hash> hunting).
    """
    from lf_wrap.hub import pull

    path = pull(model_id, hub, revision, local_dir)  # type: ignore[arg-type]
    if as_json:
        _json_out(click.get_current_context(), {"model": model_id, "hub": hub, "path": str(path)})
    else:
        click.echo(str(path))


@model.command("tiny")
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same weights and tokenizer.")
@click.option(
    "--datasets-dir",
    type=click.Path(path_type=Path),
    help="Text to train the tokenizer on (default: the bundled datasets/).",
)
@click.option("--force", is_flag=True, help="Build even if OUT_DIR already holds a model.")
@json_option
def model_tiny(out_dir: Path, seed: int, datasets_dir: Path | None, force: bool, as_json: bool) -> None:
    """Build a tiny Qwen2-style chat model (random weights, ~2 MB) for demos and tests."""
    from lf_wrap.paths import datasets_dir as bundled

    if (out_dir / "config.json").exists() and not force:
        if as_json:
            _json_out(click.get_current_context(), {"path": str(out_dir), "built": False})
        else:
            click.echo(f"{out_dir}: a model is already there (pass --force to rebuild)")
        return
    if out_dir.exists() and not out_dir.is_dir():
        raise LfWrapError(f"{out_dir}: exists and is not a directory")
    from lf_wrap.tiny_model import build

    facts = build(out_dir, datasets_dir or bundled(), seed=seed)
    if as_json:
        _json_out(click.get_current_context(), {**facts, "built": True})
    else:
        click.echo(
            f"built {out_dir}: {facts['params']:,} parameters, vocab {facts['vocab_size']}, "
            f"{facts['weights_bytes'] / 1e6:.1f} MB of weights"
        )


# -- render ------------------------------------------------------------------------------
def _config_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override a setting or any LLaMA-Factory key (repeatable).",
    )(f)
    f = click.option(
        "--config",
        "config_file",
        type=click.Path(path_type=Path),
        help="Project file (default: ./lf-wrap.yaml if present, else the demo settings).",
    )(f)
    return f


@main.command()
@click.argument("what", type=click.Choice(["train", "export"]), required=False)
@_config_options
@click.option("--list-templates", is_flag=True, help="List LLaMA-Factory chat template names and exit.")
def render(what: str | None, config_file: Path | None, sets: tuple[str, ...], list_templates: bool) -> None:
    """Print the LLaMA-Factory YAML that `train` or `export` would run.

    \b
    Examples:
      lf-wrap render train
      lf-wrap render train --set learning_rate=1e-4 --set method=qlora
      lf-wrap render export --config my-project.yaml
    """
    if list_templates:
        from lf_wrap.engines.schema import templates

        click.echo("\n".join(templates()))
        return
    if what is None:
        raise click.UsageError("say what to render: train or export")
    from lf_wrap.config import load_project, render_export, render_train

    project = load_project(config_file, sets)
    rendered = render_train(project) if what == "train" else render_export(project)
    click.echo(rendered.text, nl=False)


# -- train / export ----------------------------------------------------------------------
@main.command()
@_config_options
@click.option("--resume", is_flag=True, help="Continue the run from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Start the run over, deleting its output.")
@click.option("--dry-run", is_flag=True, help="Check everything, print the YAML and the command, run nothing.")
@click.option("--no-template-check", is_flag=True, help="Skip the train/serve chat-template agreement check.")
@click.option("--nproc-per-node", type=click.IntRange(1), help="Processes (GPUs) per node; >1 launches torchrun.")
@click.option("--nnodes", type=click.IntRange(1), help="Number of nodes.")
@click.option("--node-rank", type=click.IntRange(0), help="This node's rank, 0 .. nnodes-1.")
@click.option("--master-addr", help="Address of node 0, reachable from every node.")
@click.option("--master-port", type=click.IntRange(1, 65535), help="Rendezvous port on node 0.")
@click.option("--deepspeed", help="z0, z2, z3, z3-offload (from templates/deepspeed/) or a DeepSpeed JSON file.")
@json_option
def train(
    config_file: Path | None,
    sets: tuple[str, ...],
    resume: bool,
    overwrite: bool,
    dry_run: bool,
    no_template_check: bool,
    nproc_per_node: int | None,
    nnodes: int | None,
    node_rank: int | None,
    master_addr: str | None,
    master_port: int | None,
    deepspeed: str | None,
    as_json: bool,
) -> None:
    """Fine-tune with `llamafactory-cli train` (LoRA, QLoRA or full).

    \b
    Before the engine starts, lf-wrap checks: the model folder (config, weights,
    tokenizer), every dataset (registered and valid, row by row), the settings (keys and
    types), the run folder (no accidental overwrite), and that the chat template the model
    will be served with renders what LLaMA-Factory trains on.

    \b
    Examples:
      lf-wrap train                                  # demo settings / ./lf-wrap.yaml
      lf-wrap train --set num_train_epochs=3 --set run_name=try2
      lf-wrap train --dry-run
      lf-wrap train --nproc-per-node 8 --deepspeed z3       # one node, 8 GPUs
      lf-wrap train --nnodes 2 --node-rank 0 --nproc-per-node 8 --master-addr 10.0.0.1
    """
    from lf_wrap.config import load_project
    from lf_wrap.train import execute, plan

    launch_sets = {"nproc_per_node": nproc_per_node, "nnodes": nnodes, "node_rank": node_rank,
                   "master_addr": master_addr, "master_port": master_port, "deepspeed": deepspeed}  # fmt: skip
    sets = sets + tuple(f"{k}={v}" for k, v in launch_sets.items() if v is not None)
    project = load_project(config_file, sets)
    p = plan(
        project,
        resume=resume,
        overwrite=overwrite,
        template_check=not no_template_check and not dry_run,
        need_engine=not dry_run,
    )
    if dry_run:
        click.echo(p.rendered.text, nl=False)
        from lf_wrap.process import shell_line

        if p.deepspeed is not None:
            click.echo(f"# would write {p.deepspeed[0]}:\n{p.deepspeed[1]}", nl=False, err=True)
        launch = project.launch
        if launch.distributed:
            click.echo(f"# {p.batch_arithmetic()}", err=True)
            click.echo(f"# node {launch.node_rank} of {launch.nnodes}:", err=True)
        click.echo(f"# would run: {shell_line(p.command, p.launch_env)}", err=True)
        return
    click.echo(p.batch_arithmetic(), err=True)
    if p.probe:
        check = p.probe["template_check"]
        how = ", remembered from an earlier identical check" if check.get("cached") else ""
        click.echo(
            f"template check: {check['template']!r} and the model's chat template agree ({check['status']}{how})",
            err=True,
        )
    for note in p.notes:
        click.echo(note, err=True)
    result = execute(p, as_json=as_json)
    if as_json:
        click.echo(json.dumps({"event": "done", **result}, ensure_ascii=False))
    else:
        loss = result.get("final_loss")
        click.echo(
            f"trained {p.run.name} in {result['duration_s']:.0f} s"
            + (f", final loss {loss:.4f}" if loss is not None else "")
            + f"; adapter in {p.run.output}"
        )


@main.command()
@_config_options
@click.option("--overwrite", is_flag=True, help="Replace an existing merged model.")
@click.option("--dry-run", is_flag=True, help="Print the export YAML and the command, run nothing.")
@json_option
def export(config_file: Path | None, sets: tuple[str, ...], overwrite: bool, dry_run: bool, as_json: bool) -> None:
    """Merge the run's LoRA adapter into the base model (`llamafactory-cli export`).

    The merged model is written to runs/<run_name>/merged and checked (weights, config,
    tokenizer, chat template) before lf-wrap reports success.
    """
    from lf_wrap.config import load_project
    from lf_wrap.export import execute, plan

    project = load_project(config_file, sets)
    p = plan(project, overwrite=overwrite, need_engine=not dry_run)
    if dry_run:
        if p.rendered is not None:
            click.echo(p.rendered.text, nl=False)
            from lf_wrap.process import shell_line

            click.echo(f"# would run: {shell_line(p.command)}", err=True)
        return
    result = execute(p)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
    elif result["merged"]:
        click.echo(f"exported {result['model']} in {result['duration_s']:.0f} s")


@main.command("launch-plan")
@_config_options
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
    """
    from lf_wrap.config import load_project
    from lf_wrap.distributed import Launch, node_command, slurm_line

    args = [*(["--config", str(config_file)] if config_file else []), *[x for s in sets for x in ("--set", s)]]
    if deepspeed:
        args += ["--deepspeed", deepspeed]
    load_project(config_file, (*sets, *((f"deepspeed={deepspeed}",) if deepspeed else ())))  # validate first
    launch = Launch(nproc_per_node, nnodes, 0, master_addr, master_port)
    click.echo(f"# {nnodes} nodes x {nproc_per_node} processes = world size {launch.world_size}; "
               "run each line on its node (same code, data and lf-wrap.yaml on every node):")  # fmt: skip
    for rank in range(nnodes):
        click.echo(f"node {rank}: {node_command(args, launch, rank)}")
    click.echo("# or, under Slurm (one task per node):")
    click.echo(slurm_line(args, launch))


# -- serve / check --------------------------------------------------------------------------
@main.group(cls=Group, invoke_without_command=True, context_settings={"ignore_unknown_options": False})
@_config_options
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
@click.option("--vllm-arg", "extra", multiple=True, metavar="ARG", help="Passed to vllm serve untouched (repeatable).")
@json_option
@click.pass_context
def serve(
    ctx: click.Context,
    model: Path | None,
    config_file: Path | None,
    sets: tuple[str, ...],
    adapter: Path | None,
    adapter_name: str | None,
    served_model_name: str | None,
    tokenizer: Path | None,
    max_model_len: int | None,
    host: str,
    port: int,
    api_key: str | None,
    tensor_parallel_size: int | None,
    pipeline_parallel_size: int | None,
    data_parallel_size: int | None,
    dtype: str | None,
    detach: bool,
    timeout_s: float,
    dry_run: bool,
    extra: tuple[str, ...],
    as_json: bool,
) -> None:
    """Serve a model with `vllm serve` behind an OpenAI-compatible API.

    \b
    By default the run's merged model (runs/<run_name>/merged). Examples:
      lf-wrap serve                                   # foreground, Ctrl-C stops it
      lf-wrap serve --detach --port 8000              # background; then: lf-wrap serve status|stop
      lf-wrap serve --adapter runs/magic-conch/output # base model + LoRA adapter, by name
      lf-wrap serve --model some/model/dir --vllm-arg=--enforce-eager
    """
    if ctx.invoked_subcommand is not None:
        return
    from lf_wrap.config import load_project
    from lf_wrap.serve import plan, serve_detached, serve_foreground

    project = load_project(config_file, sets)
    p = plan(
        project,
        model=model,
        adapter=adapter,
        adapter_name=adapter_name,
        served_name=served_model_name,
        tokenizer=tokenizer,
        max_model_len=max_model_len,
        host=host,
        port=port,
        api_key=api_key,
        tensor_parallel_size=tensor_parallel_size,
        pipeline_parallel_size=pipeline_parallel_size,
        data_parallel_size=data_parallel_size,
        dtype=dtype,
        extra=extra,
    )
    for warning in p.warnings:
        click.echo(warning, err=True)
    if dry_run:
        click.echo(p.printable())
        return
    if detach:
        info = serve_detached(p, timeout_s)
        if as_json:
            _json_out(ctx, info)
        else:
            click.echo(
                f"ready in {info['ready_after_s']:.0f} s: {info['base_url']}/v1 serves {info['served_model_name']!r} "
                f"(pid {info['pid']}, log {info['log']}); stop with `lf-wrap serve stop`"
            )
        return
    serve_foreground(p, timeout_s)


def _pidfile(config_file: Path | None, sets: tuple[str, ...]) -> Path:
    from lf_wrap.config import load_project

    return load_project(config_file, sets).run_dir.resolve() / "serve.json"


@serve.command("status")
@_config_options
@json_option
def serve_status(config_file: Path | None, sets: tuple[str, ...], as_json: bool) -> None:
    """Is the run's detached server running and healthy?"""
    from lf_wrap.serve import status

    info = status(_pidfile(config_file, sets))
    if as_json:
        click.echo(json.dumps(info, indent=2))
    elif info["running"]:
        click.echo(
            f"running: pid {info['pid']}, {info['base_url']}/v1 serves {info['served_model_name']!r}, "
            f"{'healthy' if info['healthy'] else 'not healthy yet'}"
        )
    else:
        click.echo(f"not running: {info['reason']}")
    sys.exit(0 if info["running"] else 3)


@serve.command("stop")
@_config_options
def serve_stop(config_file: Path | None, sets: tuple[str, ...]) -> None:
    """Stop the run's detached server (exactly the process group lf-wrap started)."""
    from lf_wrap.serve import stop

    click.echo(stop(_pidfile(config_file, sets)))


@main.command()
@_config_options
@click.option("--base-url", help="OpenAI-compatible base URL (default: the run's detached server).")
@click.option("--model", "model_name", help="Model name to query (default: the first the server lists).")
@click.option(
    "--api-key", envvar="LF_WRAP_API_KEY", help="Key to send; also checks that a request without it is refused."
)
@click.option("--golden", "golden", help="Registered dataset with prompts and expected answers (default: the run's).")
@click.option("--no-golden", is_flag=True, help="Skip the golden-answer check.")
@click.option("--samples", type=click.IntRange(0), default=16, show_default=True, help="Golden rows to try (0: all).")
@click.option(
    "--min-match",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="Fraction of golden answers that must match exactly.",
)
@click.option("--no-thinking", is_flag=True, help="Send chat_template_kwargs enable_thinking=false (Qwen3 style).")
@click.option("--concurrency", type=click.IntRange(1, 256), help="Also run a load test at this concurrency.")
@click.option("--requests", "n_requests", type=click.IntRange(1, 10000), default=32, show_default=True)
@click.option("--max-tokens", type=click.IntRange(1), default=128, show_default=True)
@click.option("--timeout", "timeout_s", type=float, default=30.0, show_default=True, help="Per-request timeout (s).")
@json_option
def check(
    config_file: Path | None,
    sets: tuple[str, ...],
    base_url: str | None,
    model_name: str | None,
    api_key: str | None,
    golden: str | None,
    no_golden: bool,
    samples: int,
    min_match: float,
    no_thinking: bool,
    concurrency: int | None,
    n_requests: int,
    max_tokens: int,
    timeout_s: float,
    as_json: bool,
) -> None:
    """Prove that a served model answers, answers like its training data, and how fast.

    Exit 0 when every check passes, 1 otherwise.

    \b
    Examples:
      lf-wrap check                                   # the run's detached server
      lf-wrap check --base-url http://127.0.0.1:8000 --golden magic_conch --min-match 0.8
      lf-wrap check --concurrency 16 --requests 64
    """
    from lf_wrap.check import Checker, golden_from_dataset
    from lf_wrap.config import load_project
    from lf_wrap.serve import read_pidfile

    project = load_project(config_file, sets)
    if base_url is None:
        info = read_pidfile(project.run_dir.resolve() / "serve.json")
        if info is None:
            raise LfWrapError(
                "no --base-url and no detached server for this run",
                hint="start one with `lf-wrap serve --detach`, or pass --base-url",
            )
        base_url = info["base_url"]
        model_name = model_name or info.get("served_model_name")
    checker = Checker(base_url, api_key, model_name, timeout_s, no_thinking, max_tokens)
    results = [checker.models()]
    results += [checker.chat(), checker.stream()]
    if api_key:
        results.append(checker.auth())
    prompts = [[{"role": "user", "content": "Hello!"}]]
    if not no_golden:
        items = []
        for name in [golden] if golden else project.config.datasets:
            items += golden_from_dataset(project.path(project.config.dataset_dir), name, samples)
        results.append(checker.golden(items, min_match))
        prompts = [g.messages for g in items]
    if concurrency:
        results.append(checker.load(prompts, concurrency, n_requests))
    ok = all(r.ok for r in results)
    if as_json:
        payload = {
            "ok": ok,
            "base_url": checker.base_url,
            "model": checker.model,
            "checks": [{"name": r.name, "ok": r.ok, "detail": r.detail, **r.data} for r in results],
        }
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        for r in results:
            click.echo(f"{'PASS' if r.ok else 'FAIL'}  {r.name:<7} {r.detail}")
            for miss in r.data.get("misses", []) if not r.ok else []:
                click.echo(f"      expected {miss['expected']!r}\n      got      {miss['got']!r}")
        click.echo(f"{checker.base_url} ({checker.model}): {'all checks passed' if ok else 'FAILED'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":  # pragma: no cover
    main()
