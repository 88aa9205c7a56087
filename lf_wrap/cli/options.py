"""The options several commands take, and the help pages (cli/help/NAME.txt: text, kept apart from
the code it describes)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
FORMAT_CHOICES = ["auto", "alpaca", "sharegpt", "openai", "preference", "kto"]
HELP_PAGES = Path(__file__).parent / "help"


def page(name: str) -> str:
    """A command's --help text, cli/help/NAME.txt; a line `\\b` keeps what follows as written (click's rule)."""
    return (HELP_PAGES / f"{name}.txt").read_text(encoding="utf-8").replace("\\b\n", "\b\n")


def options(*decorators: Decorator) -> Decorator:
    """Several options as one decorator, listed in --help in the order given."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(decorators):
            f = option(f)
        return f

    return decorate


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        ctx.meta["lf_wrap.json"] = value
        return value

    return click.option("--json", "as_json", is_flag=True, callback=remember, help="Print a machine-readable report.")(
        f
    )


def dataset_dir_option(help: str) -> Decorator:
    return click.option("--dataset-dir", type=click.Path(path_type=Path), default=Path("data"), show_default=True,
                        help=help)  # fmt: skip


def set_and_config(set_help: str, config_help: str) -> Decorator:
    """The --config FILE and --set KEY=VALUE options, with help for what the command reads from them."""
    return options(click.option("--config", "config_file", type=click.Path(path_type=Path), help=config_help),
                   click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=set_help))  # fmt: skip


config_options = set_and_config(
    "Override a setting or any LLaMA-Factory key (repeatable).",
    "Project file (default: ./lf-wrap.yaml if present, else the demo settings).",
)
run_options = options(
    click.option("--run", "run_name", metavar="NAME", help="The run (default: the project's run_name)."),
    click.option("--runs-dir", type=click.Path(path_type=Path),
                 help="Folder that holds the run folders (default: the project's runs_dir)."),
)  # fmt: skip
# --config/--set/--run/--runs-dir, read only for the run folder: the rest of the project file is not validated.
lenient_options = options(
    set_and_config("run_name=, runs_dir= (or datasets=) as the server was started with; other keys are ignored here.",
                   "Project file the server was started with (only run_name and runs_dir are read from it)."),
    run_options,
)  # fmt: skip


def server_options(model_help: str, key_help: str) -> Decorator:
    """--base-url, --model, --api-key: which server a command talks to (lf_wrap/project/target.py)."""
    return options(
        click.option("--base-url", help="OpenAI-compatible base URL, any server (default: the run's detached server)."),
        click.option("--model", "model_name", help=model_help),
        click.option("--api-key", envvar="LF_WRAP_API_KEY", help=key_help),
    )


def answer_options(max_tokens: int, what: str = "answer") -> Decorator:
    """--max-tokens, --timeout, --no-thinking: how each answer is asked for (check, chat, eval)."""
    timeout = 30.0 if what == "request" else 120.0
    return options(
        click.option("--max-tokens", type=click.IntRange(1), default=max_tokens, show_default=True,
                     help="Longest answer, in tokens."),
        click.option("--timeout", "timeout_s", type=float, default=timeout, show_default=True,
                     help=f"Per-{what} timeout (s)."),
        click.option("--no-thinking", is_flag=True,
                     help="Thinking models (Qwen3 style): answer without thinking (enable_thinking=false)."),
    )  # fmt: skip


def run_sets(sets: tuple[str, ...], run_name: str | None, runs_dir: Path | None) -> tuple[str, ...]:
    """--run/--runs-dir as the --set overrides they are (a command-line path is relative to the current folder)."""
    extra = ((f"run_name={run_name}",) if run_name else ()) + (
        (f"runs_dir={runs_dir.expanduser().absolute()}",) if runs_dir else ()
    )
    return (*sets, *extra)
