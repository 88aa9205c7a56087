"""What every command group shares: the group classes (pipeline order, lazy loading, a default
subcommand), the one way a failure leaves (a message on stderr, the exit code, and under --json
one JSON object), and the options several commands take.

Only cli/ imports click: the steps below return what to print, or say it through util/console.py.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, NoReturn

import click

from lf_wrap.util.errors import Interrupted, LfWrapError

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
FORMAT_CHOICES = ["auto", "alpaca", "sharegpt", "openai", "preference", "kto"]
# Where a message says the problem is: "file:line[:col]" at the start of a line (or of a "  - " item), or "--set KEY".
_LOCATION = re.compile(r"^\s*(?:- )?(--set [\w.]+|[^\s:][^\n:]*:\d+(?::\d+)?)(?=:)", re.MULTILINE)


# -- failures ----------------------------------------------------------------------------
def failure_payload(error: str, hint: str | None, location: str | None, exit_code: int) -> dict[str, Any]:
    """The keys every --json failure has: error, hint, location, exit_code (the one builder of them)."""
    return {"error": error, "hint": hint, "location": location, "exit_code": exit_code}


def _location(err: LfWrapError) -> str | None:
    if err.location:
        return err.location
    found = _LOCATION.search(err.message)
    return found.group(1) if found else None


def error_payload(err: LfWrapError | click.ClickException) -> dict[str, Any]:
    """The one JSON object a failure prints under --json (and the validation report, when the error carries one)."""
    if isinstance(err, LfWrapError):
        payload = failure_payload(err.message, err.hint, _location(err), err.exit_code)
        report = getattr(err, "report", None)
        return payload | ({"report": report.to_dict()} if report is not None else {})
    param = getattr(err, "param", None)
    where = "/".join(param.opts) if isinstance(param, click.Parameter) and param.opts else None
    hint = "see --help" if isinstance(err, click.UsageError) else None
    return failure_payload(err.format_message(), hint, where or getattr(err, "option_name", None), err.exit_code)


def echo_json(payload: Any, *, err: bool = False) -> None:
    click.echo(json.dumps(payload, ensure_ascii=False, indent=2), err=err)


class Failure(click.ClickException):
    """An error on its way out: one clear message on stderr, the right exit code, and under
    --json exactly one JSON object on stdout (`error_payload`)."""

    def __init__(self, err: LfWrapError | click.ClickException, as_json: bool = False) -> None:
        super().__init__(str(err) if isinstance(err, LfWrapError) else err.format_message())
        self.exit_code = err.exit_code
        self.original = err if isinstance(err, click.ClickException) else None
        self.payload = error_payload(err) if as_json else None

    # click declares exit_code a class attribute (one code per exception class); a Failure carries the
    # code of the error it wraps (1, 2, 130, 143), so it is an attribute of each instance.
    @property
    def exit_code(self) -> int:
        return self._exit_code

    @exit_code.setter
    def exit_code(self, value: int) -> None:
        self._exit_code = value

    def show(self, file: IO[Any] | None = None) -> None:
        if self.payload is not None:
            echo_json(self.payload)
        if self.original is not None:
            self.original.show(file)
        else:
            super().show(file)


def exit_with(err: LfWrapError, *, json_printed: bool) -> NoReturn:
    """Fail with `err`; when the command's --json object (carrying the failure's keys) is already
    out, only the message goes to stderr, so stdout holds exactly one JSON object."""
    if json_printed:
        click.echo(f"Error: {err}", err=True)
        raise SystemExit(err.exit_code)
    raise err


def fail_report(report: Any, as_json: bool) -> NoReturn:
    """A dataset with errors: every problem listed (stderr), or under --json the report with the failure keys."""
    if as_json:
        first = next((i for i in report.issues if i.severity == "error"), None)
        where = first.location(report.file) if first else report.file
        hint = "fix the rows listed in issues, then validate again"
        echo_json({**report.to_dict(), **failure_payload(report.summary(), hint, where, 2)})
    else:
        for line in report.lines():
            click.echo(line, err=True)
    raise SystemExit(2)


def _json_mode(ctx: click.Context) -> bool:
    """--json given: the flag's callback ran, or (for an error while parsing) it is among the arguments."""
    argv: list[str] = ctx.meta.get("lf_wrap.argv", [])
    typed = argv[: argv.index("--")] if "--" in argv else argv
    return bool(ctx.meta.get("lf_wrap.json")) or "--json" in typed


# -- groups ------------------------------------------------------------------------------
class Group(click.Group):
    """Turns every LfWrapError (and, under --json, every usage error) into a Failure, once; an
    OSError on a path that slipped past the checks below becomes one message naming the path.

    `order` lists commands in the order --help shows them (the pipeline's); commands it does not
    name follow, alphabetically, and names with no command are skipped. `lazy` maps a command's
    name to "module:attribute": the module is imported only when the command is used or listed."""

    def __init__(self, *args: Any, order: tuple[str, ...] = (), lazy: dict[str, str] | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.order = order
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = sorted({*super().list_commands(ctx), *self.lazy})
        return [n for n in self.order if n in names] + [n for n in names if n not in self.order]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, _, attribute = self.lazy[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if ctx.parent is None:
            ctx.meta["lf_wrap.argv"] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Failure:
            raise
        except LfWrapError as err:
            as_json = _json_mode(ctx)
            report = getattr(err, "report", None)
            if report is not None and not as_json:
                for line in report.lines():
                    click.echo(line, err=True)
                err.hint = "fix the rows listed above, then run this again"
            raise Failure(err, as_json) from None
        except KeyboardInterrupt:  # Ctrl-C outside an engine run (those are handled by lf_wrap.util.process)
            raise Failure(Interrupted("interrupted (SIGINT)", "SIGINT"), _json_mode(ctx)) from None
        except click.ClickException as err:
            if _json_mode(ctx):
                raise Failure(err, as_json=True) from None
            raise
        except OSError as err:
            if not err.filename:  # not about a path: a bug, or something no message here would explain
                raise
            unreadable = LfWrapError(
                f"{err.filename}: cannot read or write it ({err.strerror or type(err).__name__})",
                hint="check that the path is right and that you may read and write there",
            )
            raise Failure(unreadable, _json_mode(ctx)) from None


class DefaultGroup(Group):
    """A group with a default subcommand, the pattern simonw/llm uses for `llm keys`:
    `serve ARGS` runs `serve start ARGS` unless ARGS name a subcommand.

    A small subclass rather than the click-default-group package: no extra dependency for two
    methods, and it also routes options typed before the subcommand's name, so
    `serve --config X stop` is `serve stop --config X` (that package would hand `stop` to the
    default command as an extra argument)."""

    def __init__(self, *args: Any, default_command: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.default_command = default_command

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and (args[0] in self.commands or args[0] in ctx.help_option_names):
            return super().parse_args(ctx, args)
        return super().parse_args(ctx, self._route(args))

    def _route(self, args: list[str]) -> list[str]:
        """The first bare word that names a subcommand (not an option's value) goes first; else the default."""
        default = self.commands[self.default_command]
        takes_value = {
            opt
            for p in default.params
            if isinstance(p, click.Option) and not p.is_flag and not p.count
            for opt in (*p.opts, *p.secondary_opts)
        }
        i = 0
        while i < len(args) and args[i] != "--":
            if args[i] in self.commands:
                return [args[i], *args[:i], *args[i + 1 :]]
            i += 2 if args[i] in takes_value else 1
        return [self.default_command, *args]


# -- options -----------------------------------------------------------------------------
def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        ctx.meta["lf_wrap.json"] = value
        return value

    return click.option(
        "--json", "as_json", is_flag=True, callback=remember, expose_value=True, help="Print a machine-readable report."
    )(f)


def dataset_dir_option(help: str) -> Decorator:
    return click.option(
        "--dataset-dir", type=click.Path(path_type=Path), default=Path("data"), show_default=True, help=help
    )


def set_and_config(set_help: str, config_help: str) -> Decorator:
    """The --config FILE and --set KEY=VALUE options, with help for what the command reads from them."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        f = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=set_help)(f)
        return click.option("--config", "config_file", type=click.Path(path_type=Path), help=config_help)(f)

    return decorate


config_options = set_and_config(
    "Override a setting or any LLaMA-Factory key (repeatable).",
    "Project file (default: ./lf-wrap.yaml if present, else the demo settings).",
)


def run_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--runs-dir",
        type=click.Path(path_type=Path),
        help="Folder that holds the run folders (default: the project's runs_dir).",
    )(f)
    return click.option("--run", "run_name", metavar="NAME", help="The run (default: the project's run_name).")(f)


def run_sets(sets: tuple[str, ...], run_name: str | None, runs_dir: Path | None) -> tuple[str, ...]:
    """--run/--runs-dir as the --set overrides they are (a command-line path is relative to the current folder)."""
    extra = ((f"run_name={run_name}",) if run_name else ()) + (
        (f"runs_dir={runs_dir.expanduser().absolute()}",) if runs_dir else ()
    )
    return (*sets, *extra)


def lenient_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--config/--set/--run/--runs-dir, read only for the run folder: the rest of the project file is not validated."""
    return set_and_config(
        "run_name=, runs_dir= (or datasets=) as the server was started with; other keys are ignored here.",
        "Project file the server was started with (only run_name and runs_dir are read from it).",
    )(run_options(f))


def with_options(options: list[Decorator]) -> Decorator:
    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            f = option(f)
        return f

    return decorate
