"""`lf-wrap check`: prove that a served model answers, like its training data, and how fast
(lf_wrap/steps/check.py; the server from lf_wrap/project/target.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from lf_wrap.cli.common import config_options, echo_json, failure_payload, json_option


@click.command()
@config_options
@click.option("--base-url", help="OpenAI-compatible base URL, any server (default: the run's detached server).")
@click.option("--model", "model_name", help="Model name to query (default: the first the server lists).")
@click.option(
    "--api-key", envvar="LF_WRAP_API_KEY", help="Key to send; also checks that a request without it is refused."
)
@click.option("--golden", "golden", help="Registered dataset with prompts and expected answers (default: the run's).")
@click.option(
    "--golden-file",
    type=click.Path(path_type=Path),
    help="A dataset file (alpaca, sharegpt or openai rows) with prompts and expected answers.",
)
@click.option(
    "--dataset-dir",
    type=click.Path(path_type=Path),
    help="Where --golden's dataset_info.json is (default: the project's dataset_dir, else data).",
)
@click.option("--no-golden", is_flag=True, help="Skip the golden-answer check.")
@click.option("--samples", type=click.IntRange(0), default=16, show_default=True, help="Golden rows to try (0: all).")
@click.option(
    "--min-match",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="Fraction of golden answers that must match exactly.",
)
@click.option(
    "--parity/--no-parity",
    default=True,
    show_default=True,
    help="Ask the server (its /tokenize) which token ids it feeds the model for golden rows, and compare "
    "them with what LLaMA-Factory trained on (needs the project; SKIP where the server has no /tokenize).",
)
@click.option(
    "--parity-rows", type=click.IntRange(1), default=8, show_default=True, help="Golden rows the parity check compares."
)
@click.option("--no-thinking", is_flag=True, help="Send chat_template_kwargs enable_thinking=false (Qwen3 style).")
@click.option("--concurrency", type=click.IntRange(1, 256), help="Also run a load test at this concurrency.")
@click.option("--requests", "n_requests", type=click.IntRange(1, 10000), default=32, show_default=True)
@click.option("--max-tokens", type=click.IntRange(1), default=128, show_default=True)
@click.option("--timeout", "timeout_s", type=float, default=30.0, show_default=True, help="Per-request timeout (s).")
@json_option
def check(
    config_file: Path | None, sets: tuple[str, ...], base_url: str | None, model_name: str | None,
    api_key: str | None, as_json: bool, **options: Any,
) -> None:  # fmt: skip
    """Prove that a served model answers, answers like its training data, and how fast.

    \b
    Works with any OpenAI-compatible server. Golden answers are checked when a dataset is
    known (the project's, when it is registered) or given (--golden, --golden-file); else
    that check is skipped, with a note. In a project, parity asks the server which token ids
    it will feed the model for those rows (POST /tokenize with the messages, the generation
    prompt and the run's chat-template kwargs) and compares them, token for token, with the
    prompt LLaMA-Factory trained on (its template, default_system and thinking settings): a
    difference is a FAIL naming the first token that differs on both sides.

    \b
    Examples:
      lf-wrap check                                   # the run's detached server
      lf-wrap check --base-url http://127.0.0.1:8000 --golden magic_conch --min-match 0.8
      lf-wrap check --base-url http://some-host:8000/v1 --model m --golden-file golden.jsonl
      lf-wrap check --concurrency 16 --requests 64

    Exit status: 0 every check passed, 1 a check failed or the server could not be reached or
    answered with an error, 2 bad input.
    """
    if options["golden"] and options["golden_file"]:
        raise click.UsageError("give --golden NAME or --golden-file FILE, not both")
    if options["no_golden"] and (options["golden"] or options["golden_file"]):
        raise click.UsageError("--no-golden contradicts --golden/--golden-file: leave one out")
    from lf_wrap.project.target import resolve
    from lf_wrap.steps.check import run

    target = resolve(config_file, sets, base_url, model_name, api_key, settings=True)
    done = run(target, **options)
    if as_json:  # a failed check also has the keys every --json failure has
        echo_json(done.to_dict() | ({} if done.ok else failure_payload(*done.failure(), 1)))
    else:
        click.echo("\n".join(done.lines()))
    if done.report_line:
        click.echo(done.report_line, err=as_json)
    sys.exit(0 if done.ok else 1)
