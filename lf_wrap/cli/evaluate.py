"""Did the fine-tune work? `lf-wrap eval` (tuned vs base, or preference margins) and `report`
(one page per run): lf_wrap/steps/evaluate.py, evaluate_preference.py, report.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from lf_wrap.cli.common import (
    Decorator,
    config_options,
    echo_json,
    error_payload,
    exit_with,
    json_option,
    run_options,
    run_sets,
    with_options,
)

# `lf-wrap eval`'s options. A new mode adds its option here and branches at the top of
# `eval_command` (options arrive as one mapping, so nothing else changes).
EVAL_OPTIONS: list[Decorator] = [
    config_options,
    run_options,
    click.option("--dataset", "dataset_ref", metavar="NAME|FILE",
                 help="Rows to compare: a registered dataset or a dataset file (default: the run's held-out rows, "
                 "else its training data)."),
    click.option("--dataset-dir", type=click.Path(path_type=Path),
                 help="Where --dataset's dataset_info.json is (default: the project's dataset_dir)."),
    click.option("--rows", "n_rows", type=click.IntRange(0), default=100, show_default=True,
                 help="Compare this many rows, spread evenly (0: all)."),
    click.option("--base-url", help="Compare two endpoints: the base model's OpenAI-compatible URL (+ --tuned-url)."),
    click.option("--tuned-url", help="The tuned model's OpenAI-compatible URL (with --base-url)."),
    click.option("--base-model", help="Model name at --base-url (default: the first the server lists)."),
    click.option("--tuned-model", help="Model name at --tuned-url (default: the first the server lists)."),
    click.option("--api-key", envvar="LF_WRAP_API_KEY", help="Key for --base-url/--tuned-url (or LF_WRAP_API_KEY)."),
    click.option("--max-tokens", type=click.IntRange(1), default=256, show_default=True, help="Longest answer."),
    click.option("--concurrency", type=click.IntRange(1, 256), default=32, show_default=True,
                 help="Questions in flight at once (vLLM batches them; latencies include the wait)."),
    click.option("--timeout", "timeout_s", type=float, default=120.0, show_default=True,
                 help="Per-answer timeout (s)."),
    click.option("--no-thinking", is_flag=True, help="Send chat_template_kwargs enable_thinking=false (Qwen3 style)."),
    click.option("--no-report", is_flag=True, help="Do not rewrite runs/<name>/report.html."),
    click.option("--canary/--no-canary", "canary_on", default=True, show_default=True,
                 help="Also ask both sides lf-wrap's general-knowledge questions: did the tune break what the model "
                 "knew, or leak the training data's words into general answers?"),
    click.option("--fail-on", "fail_on", multiple=True, metavar="RULE",
                 help="Exit 1 when the tuned model fails RULE, e.g. worse>0, chrf<+5, canary<0, drift>0 (repeatable; "
                 "default: the project's eval.fail_on). Changes within the noise of the rows never fail."),
    click.option("--no-fail-on", "no_fail_on", is_flag=True,
                 help="Ignore the project's eval.fail_on: measure and record, never fail on a rule."),
    click.option("--preference", is_flag=True,
                 help="For a DPO/KTO run: the log-prob margin (chosen - rejected) of preference pairs before and "
                 "after the run, and where its greedy answers lean (--dataset: held-out pairs)."),
    json_option,
]  # fmt: skip


@click.command("eval")
@with_options(EVAL_OPTIONS)
def eval_command(
    config_file: Path | None,
    sets: tuple[str, ...],
    run_name: str | None,
    runs_dir: Path | None,
    preference: bool,
    as_json: bool,
    **o: Any,
) -> None:
    """Ask the base model and the tuned model the same questions; score both, side by side.

    \b
    Both answer greedily through vLLM: for a LoRA run, one server with the base model and the
    run's adapter (--enable-lora), so one engine answers for both; a full fine-tune gets two
    servers, one after the other. Rows: --dataset if given, else the run's held-out split
    (val_size, or eval_dataset), else its training data (then the scores show memorisation).
    Per row: exact match, chrF, ROUGE-L (character level for Chinese), latency, and for rows
    with an `expect` list whether the answer has one of its words. Rows where the tuned model
    got worse are listed first. The canary (--no-canary: off) asks both sides 56 general
    questions. It ends with verdicts: did the tune take, did it break what the model knew
    (judged against noise with a paired bootstrap). Results: runs/<name>/eval.json, the report.
    --fail-on (or the project's `eval: {fail_on: [...]}`) makes it a gate for CI: a rule fails
    only when the change is past its threshold beyond the noise of the rows measured.

    \b
    Examples:
      lf-wrap eval                                    # the project's run
      lf-wrap eval --dataset my_test.jsonl --rows 0   # every row of a test file
      lf-wrap eval --base-url http://a:8000/v1 --tuned-url http://b:8000/v1 --dataset test.json

    Exit status: 0 compared, 1 a server failed to start, could not be reached or answered with an
    error, or a --fail-on rule failed, 2 bad input (a rule that does not parse, no run, no adapter,
    an adapter that does not fit the base model, a dataset without answers).
    """
    sets = run_sets(sets, run_name, runs_dir)
    if preference:  # log-prob margins of preference pairs, in the training environment
        _eval_preference(config_file, sets, as_json, **o)
        return
    if o["fail_on"] and o["no_fail_on"]:
        raise click.UsageError("--fail-on and --no-fail-on contradict each other: leave one out")
    if bool(o["base_url"]) != bool(o["tuned_url"]):
        raise click.UsageError(
            "give both --base-url and --tuned-url to compare two endpoints (or neither: lf-wrap serves the run's "
            "base model and adapter itself)"
        )
    if (o["base_model"] or o["tuned_model"]) and not o["base_url"]:
        raise click.UsageError("--base-model/--tuned-model name models at --base-url/--tuned-url: give those too")
    from lf_wrap.project.target import in_a_project
    from lf_wrap.steps import evaluate as step

    if o["base_url"] and not o["dataset_ref"] and not in_a_project(config_file, sets):
        raise click.UsageError("say which rows to compare: --dataset NAME|FILE (or run it in a project)")
    result, report_line = step.compare(config_file, sets, **o)
    failure = step.gate_failure(result)
    if as_json:  # one JSON object: the result, with the failure's keys when the gate failed
        echo_json(result | (error_payload(failure) if failure else {}))
    else:
        click.echo("\n".join(step.summary_lines(result)))
    if report_line:
        click.echo(report_line, err=as_json)
    if failure:
        exit_with(failure, json_printed=as_json)


def _eval_preference(config_file: Path | None, sets: tuple[str, ...], as_json: bool, **o: Any) -> None:
    from lf_wrap.steps import evaluate_preference as step

    if o["fail_on"] or o["no_fail_on"]:
        raise click.UsageError("--fail-on judges tuned-vs-base answers; it does not apply to --preference")
    if o["base_url"] or o["tuned_url"]:
        raise click.UsageError("--preference measures log-probabilities of the run's models in the training "
                               "environment: it takes no --base-url/--tuned-url")  # fmt: skip
    result = step.from_command(config_file, sets, o["dataset_ref"], o["dataset_dir"], o["max_tokens"])
    if as_json:
        echo_json(result)
        return
    click.echo("\n".join([*step.summary_lines(result), f"wrote {result['file']}"]))


@click.command()
@config_options
@run_options
@click.option("--open", "open_it", is_flag=True, help="Open the page in the default web browser.")
@json_option
def report(
    config_file: Path | None, sets: tuple[str, ...], run_name: str | None, runs_dir: Path | None, open_it: bool,
    as_json: bool,
) -> None:  # fmt: skip
    """Write runs/<name>/report.html: one self-contained page to judge the run.

    \b
    Loss and learning-rate curves (train, and eval loss with a validation split), the
    dataset's token lengths against cutoff_len, the template check, every hyperparameter
    with where it came from, `lf-wrap eval`'s tuned-vs-base table with the worst regressions,
    the last `lf-wrap check`, and the versions and hashes of the run. No network needed to
    view it (inline SVG, no scripts). Parts the run does not have yet are listed, with the
    command that makes them. `train`, `eval` and `check` rewrite it too.

    \b
    Examples:
      lf-wrap report                                  # the project's run
      lf-wrap report --run try2 --open

    Exit status: 0 written, 2 no such run folder.
    """
    from lf_wrap.project.runs import locate_run_dir
    from lf_wrap.steps.report import write

    path, missing = write(locate_run_dir(config_file, sets, run_name, runs_dir))
    if as_json:
        echo_json({"report": str(path), "missing": missing})
        return
    for item in missing:
        click.echo(f"missing: {item}", err=True)
    click.echo(f"report: {path}")
    if open_it:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())
