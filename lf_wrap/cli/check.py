"""`lf-wrap check`: prove that a served model answers, like its training data, and how fast
(lf_wrap/steps/check.py; the server from lf_wrap/project/target.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from lf_wrap.cli.options import answer_options, config_options, json_option, page, server_options
from lf_wrap.cli.output import echo_json
from lf_wrap.util.errors import failure_payload


# fmt: off
@click.command(help=page("check"))
@config_options
@server_options("Model name to query (default: the run's served name, else the server's first).",
                "Key to send; also checks that a request without it is refused.")
@click.option("--golden", help="Registered dataset with prompts and expected answers (default: the run's).")
@click.option("--golden-file", type=click.Path(path_type=Path),
              help="A dataset file (alpaca, sharegpt or openai rows) with prompts and expected answers.")
@click.option("--dataset-dir", type=click.Path(path_type=Path),
              help="Where --golden's dataset_info.json is (default: the project's dataset_dir, else data).")
@click.option("--no-golden", is_flag=True, help="Skip the golden-answer check.")
@click.option("--samples", type=click.IntRange(0), default=16, show_default=True, help="Golden rows to try (0: all).")
@click.option("--min-match", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Fraction of golden answers that must match exactly.")
@click.option("--parity/--no-parity", default=True, show_default=True,
              help="Ask the server (its /tokenize) which token ids it feeds the model for golden rows, and compare "
              "them with what LLaMA-Factory trained on (needs the project; SKIP where the server has no /tokenize).")
@click.option("--parity-rows", type=click.IntRange(1), default=8, show_default=True,
              help="Golden rows the parity check compares.")
@click.option("--concurrency", type=click.IntRange(1, 256), help="Also run a load test at this concurrency.")
@click.option("--requests", "n_requests", type=click.IntRange(1, 10000), default=32, show_default=True)
@answer_options(max_tokens=128, what="request")
@json_option
def check(config_file: Path | None, sets: tuple[str, ...], base_url: str | None, model_name: str | None,
          api_key: str | None, as_json: bool, **o: Any) -> None:
    if o["golden"] and o["golden_file"]:
        raise click.UsageError("give --golden NAME or --golden-file FILE, not both")
    if o["no_golden"] and (o["golden"] or o["golden_file"]):
        raise click.UsageError("--no-golden contradicts --golden/--golden-file: leave one out")
    from lf_wrap.project.target import resolve
    from lf_wrap.steps.check import run

    done = run(resolve(config_file, sets, base_url, model_name, api_key, settings=True), **o)
    if as_json:  # a failed check also has the keys every --json failure has
        echo_json(done.to_dict() | ({} if done.ok else failure_payload(*done.failure(), 1)))
    else:
        click.echo("\n".join(done.lines()))
    if done.report_line:
        click.echo(done.report_line, err=as_json)
    sys.exit(0 if done.ok else 1)
# fmt: on
