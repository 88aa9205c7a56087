"""`lf-wrap data`: check, describe, convert and register datasets (lf_wrap/data/)."""

from __future__ import annotations

from pathlib import Path

import click

from lf_wrap.cli.common import FORMAT_CHOICES, Group, dataset_dir_option, echo_json, fail_report, json_option


# -- data --------------------------------------------------------------------------------
@click.group(cls=Group, order=("validate", "register", "stats", "convert"))
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
    if name or dataset_dir:
        if file is not None:
            raise click.UsageError("give either FILE or --dataset-dir with --name, not both")
        if not (name and dataset_dir):
            raise click.UsageError("--dataset-dir and --name go together")
        from lf_wrap.data.registry import validate_entry  # a registry: render, yaml, file locks

        report = validate_entry(dataset_dir, name, max_listed=max_errors)
    elif file is None:
        raise click.UsageError("give a FILE to check (or --dataset-dir DIR --name NAME)")
    else:
        from lf_wrap.data.validate import validate_file  # a file alone: the reader and the checks only

        report = validate_file(file, fmt, max_listed=max_errors)
    if not report.ok:
        fail_report(report, as_json)
    if as_json:
        echo_json(report.to_dict())
        return
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
    """Rows, duplicates and length percentiles (tokens with --tokenizer, else characters).

    Exit status: 0 ok, 2 bad input (an invalid dataset, a folder without a tokenizer, a missing package).
    """
    from lf_wrap.data.stats import compute

    stats = compute(file, fmt, tokenizer_dir, cutoff_len)
    if as_json:
        echo_json(stats.to_dict())
    else:
        click.echo("\n".join(stats.lines()))


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

    Exit status: 0 written, 2 bad input (nothing written).
    """
    from lf_wrap.data.convert import convert

    result = convert(src, out, target, fmt, force)
    click.echo(f"wrote {result.out}: {result.written} rows, {result.source.format} -> {target}")
    for reason, n in result.dropped.items():
        click.echo(f"dropped {n} rows: {reason}", err=True)


@data.command("register")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--name", required=True, help="Dataset name for the `dataset:` key of the training config.")
@dataset_dir_option("LLaMA-Factory's dataset_dir: where dataset_info.json and the data live.")
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

    Exit status: 0 registered (or already registered), 2 bad input (nothing written).
    """
    from lf_wrap.data.registry import register

    reg = register(file, name, dataset_dir, fmt, force)
    if as_json:
        echo_json(reg.to_dict())
        return
    click.echo(reg.report.summary())
    click.echo(reg.describe())
