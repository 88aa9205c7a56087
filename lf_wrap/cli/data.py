"""`lf-wrap data`: check, describe, convert and register datasets (lf_wrap/data/)."""

from __future__ import annotations

from pathlib import Path

import click

from lf_wrap.cli.groups import Group
from lf_wrap.cli.options import FORMAT_CHOICES, dataset_dir_option, json_option, page
from lf_wrap.cli.output import echo_lines, emit, fail_report

# fmt: off
FORMAT = click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES), default="auto", show_default=True,
                      help="Dataset format; auto looks at the first row.")
FILE = click.Path(path_type=Path)


@click.group(cls=Group, order=("validate", "register", "stats", "convert"), help=page("data"))
def data() -> None: ...


@data.command("validate", help=page("data-validate"))
@click.argument("file", type=FILE, required=False)
@FORMAT
@click.option("--dataset-dir", type=FILE, help="With --name: check a registered dataset.")
@click.option("--name", help="Name of the entry in DATASET_DIR/dataset_info.json to check, as LLaMA-Factory reads it.")
@click.option("--max-errors", type=click.IntRange(1), default=50, show_default=True, help="How many problems to list.")
@json_option
def data_validate(file: Path | None, fmt: str, dataset_dir: Path | None, name: str | None, max_errors: int,
                  as_json: bool) -> None:
    if file is not None:
        if name or dataset_dir:
            raise click.UsageError("give either FILE or --dataset-dir with --name, not both")
        from lf_wrap.data.validate import validate_file  # a file alone: the reader and the checks only

        report = validate_file(file, fmt, max_listed=max_errors)
    elif name and dataset_dir:
        from lf_wrap.data.registry import validate_entry  # a registry: render, yaml, file locks

        report = validate_entry(dataset_dir, name, max_listed=max_errors)
    else:
        raise click.UsageError("--dataset-dir and --name go together" if name or dataset_dir else
                               "give a FILE to check (or --dataset-dir DIR --name NAME)")
    if not report.ok:
        fail_report(report, as_json)
    echo_lines([] if as_json else report.lines()[:-1], err=True)  # the warnings; the summary goes to stdout
    emit(as_json, report.to_dict(), [report.summary()])


@data.command("stats", help=page("data-stats"))
@click.argument("file", type=FILE)
@FORMAT
@click.option("--tokenizer", "tokenizer_dir", type=FILE,
              help="Model folder whose tokenizer and chat template count the tokens.")
@click.option("--cutoff-len", type=click.IntRange(1), help="Count rows longer than this (LLaMA-Factory's cutoff_len).")
@json_option
def data_stats(file: Path, fmt: str, tokenizer_dir: Path | None, cutoff_len: int | None, as_json: bool) -> None:
    from lf_wrap.data.stats import compute

    stats = compute(file, fmt, tokenizer_dir, cutoff_len)
    emit(as_json, stats.to_dict(), stats.lines())


@data.command("convert", help=page("data-convert"))
@click.argument("src", type=FILE)
@click.argument("out", type=FILE)
@click.option("--to", "target", type=click.Choice(["alpaca", "sharegpt", "openai"]), required=True)
@click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES), default="auto", show_default=True,
              help="Format of SRC.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists (never SRC).")
def data_convert(src: Path, out: Path, target: str, fmt: str, force: bool) -> None:
    from lf_wrap.data.convert import convert

    result = convert(src, out, target, fmt, force)
    click.echo(f"wrote {result.out}: {result.written} rows, {result.source.format} -> {target}")
    echo_lines((f"dropped {n} rows: {reason}" for reason, n in result.dropped.items()), err=True)


@data.command("register", help=page("data-register"))
@click.argument("file", type=FILE)
@click.option("--name", required=True, help="Dataset name for the `dataset:` key of the training config.")
@dataset_dir_option("LLaMA-Factory's dataset_dir: where dataset_info.json and the data live.")
@FORMAT
@click.option("--force", is_flag=True, help="Replace a different entry (or data file) of the same name.")
@json_option
def data_register(file: Path, name: str, dataset_dir: Path, fmt: str, force: bool, as_json: bool) -> None:
    from lf_wrap.data.registry import register

    reg = register(file, name, dataset_dir, fmt, force)
    emit(as_json, reg.to_dict(), [reg.report.summary(), reg.describe()])
# fmt: on
