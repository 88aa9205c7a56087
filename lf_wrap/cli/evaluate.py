"""Did the fine-tune work? `lf-wrap eval` (tuned vs base, or preference margins) and `report`
(one page per run): lf_wrap/steps/evaluate.py, evaluate_preference.py, report.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from lf_wrap.cli.options import answer_options, config_options, json_option, page, run_options, run_sets
from lf_wrap.cli.output import echo_lines, emit, error_payload, exit_with


# fmt: off
@click.command("eval", help=page("eval"))
@config_options
@run_options
@click.option("--dataset", "dataset_ref", metavar="NAME|FILE", help="Rows to compare: a registered dataset or a "
              "dataset file (default: the run's held-out rows, else its training data).")
@click.option("--dataset-dir", type=click.Path(path_type=Path),
              help="Where --dataset's dataset_info.json is (default: the project's dataset_dir).")
@click.option("--rows", "n_rows", type=click.IntRange(0), default=100, show_default=True,
              help="Compare this many rows, spread evenly (0: all).")
@click.option("--base-url", help="Compare two endpoints: the base model's OpenAI-compatible URL (+ --tuned-url).")
@click.option("--tuned-url", help="The tuned model's OpenAI-compatible URL (with --base-url).")
@click.option("--base-model", help="Model name at --base-url (default: the first the server lists).")
@click.option("--tuned-model", help="Model name at --tuned-url (default: the first the server lists).")
@click.option("--api-key", envvar="LF_WRAP_API_KEY", help="Key for --base-url/--tuned-url (or LF_WRAP_API_KEY).")
@answer_options(max_tokens=256)
@click.option("--concurrency", type=click.IntRange(1, 256), default=32, show_default=True,
              help="Questions in flight at once (vLLM batches them; latencies include the wait).")
@click.option("--no-report", is_flag=True, help="Do not rewrite runs/<name>/report.html.")
@click.option("--canary/--no-canary", "canary_on", default=True, show_default=True,
              help="Also ask both sides lf-wrap's general-knowledge questions: did the tune break what the model "
              "knew, or leak the training data's words into general answers?")
@click.option("--fail-on", multiple=True, metavar="RULE",
              help="Exit 1 when the tuned model fails RULE, e.g. worse>0, chrf<+5, canary<0, drift>0 (repeatable; "
              "default: the project's eval.fail_on). Changes within the noise of the rows never fail.")
@click.option("--no-fail-on", is_flag=True,
              help="Ignore the project's eval.fail_on: measure and record, never fail on a rule.")
@click.option("--preference", is_flag=True,
              help="For a DPO/KTO run: the log-prob margin (chosen - rejected) of preference pairs before and "
              "after the run, and where its greedy answers lean (--dataset: held-out pairs).")
@json_option
def eval_command(config_file: Path | None, sets: tuple[str, ...], run_name: str | None, runs_dir: Path | None,
                 preference: bool, as_json: bool, **o: Any) -> None:
    sets = run_sets(sets, run_name, runs_dir)
    if preference:  # log-prob margins of preference pairs, in the training environment
        return _eval_preference(config_file, sets, as_json, **o)
    if o["fail_on"] and o["no_fail_on"]:
        raise click.UsageError("--fail-on and --no-fail-on contradict each other: leave one out")
    if bool(o["base_url"]) != bool(o["tuned_url"]):
        raise click.UsageError("give both --base-url and --tuned-url to compare two endpoints (or neither: lf-wrap "
                               "serves the run's base model and adapter itself)")
    if (o["base_model"] or o["tuned_model"]) and not o["base_url"]:
        raise click.UsageError("--base-model/--tuned-model name models at --base-url/--tuned-url: give those too")
    from lf_wrap.project.target import in_a_project
    from lf_wrap.steps import evaluate as step

    if o["base_url"] and not o["dataset_ref"] and not in_a_project(config_file, sets):
        raise click.UsageError("say which rows to compare: --dataset NAME|FILE (or run it in a project)")
    result, report_line = step.compare(config_file, sets, **o)
    failure = step.gate_failure(result)  # under --json one object: the result, with the failure's keys if it failed
    emit(as_json, result | (error_payload(failure) if failure else {}), step.summary_lines(result))
    echo_lines([report_line] if report_line else [], err=as_json)
    if failure:
        exit_with(failure, json_printed=as_json)


def _eval_preference(config_file: Path | None, sets: tuple[str, ...], as_json: bool, **o: Any) -> None:
    if o["fail_on"] or o["no_fail_on"]:
        raise click.UsageError("--fail-on judges tuned-vs-base answers; it does not apply to --preference")
    if o["base_url"] or o["tuned_url"]:
        raise click.UsageError("--preference measures log-probabilities of the run's models in the training "
                               "environment: it takes no --base-url/--tuned-url")
    from lf_wrap.steps import evaluate_preference as step

    result = step.from_command(config_file, sets, o["dataset_ref"], o["dataset_dir"], o["max_tokens"])
    emit(as_json, result, [*step.summary_lines(result), f"wrote {result['file']}"])


@click.command(help=page("report"))
@config_options
@run_options
@click.option("--open", "open_it", is_flag=True, help="Open the page in the default web browser.")
@json_option
def report(config_file: Path | None, sets: tuple[str, ...], run_name: str | None, runs_dir: Path | None,
           open_it: bool, as_json: bool) -> None:
    from lf_wrap.project.runs import locate_run_dir
    from lf_wrap.steps.report import write

    path, missing = write(locate_run_dir(config_file, sets, run_name, runs_dir))
    echo_lines([] if as_json else [f"missing: {item}" for item in missing], err=True)
    emit(as_json, {"report": str(path), "missing": missing}, [f"report: {path}"])
    if open_it and not as_json:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())
# fmt: on
