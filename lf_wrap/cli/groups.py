"""The command classes: `Group` (pipeline order, lazy loading, every failure turned into one message
and exit code) and `DefaultGroup` (a default subcommand: `serve ARGS` is `serve start ARGS`)."""

from __future__ import annotations

import importlib
from typing import Any, NoReturn

import click

from lf_wrap.cli.output import echo_json, error_payload
from lf_wrap.util.errors import Interrupted, LfWrapError


def _json_mode(ctx: click.Context) -> bool:
    """--json given: the flag's callback ran, or (for an error while parsing) it is among the arguments."""
    argv: list[str] = ctx.meta.get("lf_wrap.argv", [])
    return bool(ctx.meta.get("lf_wrap.json")) or "--json" in (argv[: argv.index("--")] if "--" in argv else argv)


def fail(ctx: click.Context, err: LfWrapError | click.ClickException) -> NoReturn:
    """The one way out of a failed command: under --json its JSON object on stdout, the message on
    stderr (a usage error with its usage line, as click shows it), and its exit code (1, 2, 130, 143)."""
    if _json_mode(ctx):
        echo_json(error_payload(err))
    if isinstance(err, click.ClickException):
        err.show()
    else:
        click.echo(f"Error: {err}", err=True)
    ctx.exit(err.exit_code)


class Group(click.Group):
    """Ends every LfWrapError, usage error and Ctrl-C the same way (`fail`), once; an OSError on a path
    that slipped past the checks below becomes one message naming the path.

    `order` lists commands as --help shows them (the pipeline's; others follow, alphabetically).
    `lazy` maps a command's name to "module:attribute", imported only when used or listed."""

    def __init__(self, *args: Any, order: tuple[str, ...] = (), lazy: dict[str, str] | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.order, self.lazy = order, dict(lazy or {})

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
        except LfWrapError as err:
            report = getattr(err, "report", None)
            if report is not None and not _json_mode(ctx):
                click.echo("\n".join(report.lines()), err=True)
                err.hint = "fix the rows listed above, then run this again"
            fail(ctx, err)
        except KeyboardInterrupt:  # Ctrl-C outside an engine run (those are handled by lf_wrap.util.process)
            fail(ctx, Interrupted("interrupted (SIGINT)", "SIGINT"))
        except click.ClickException as err:
            fail(ctx, err)
        except OSError as err:
            if not err.filename:  # not about a path: a bug, or something no message here would explain
                raise
            fail(
                ctx,
                LfWrapError(
                    f"{err.filename}: cannot read or write it ({err.strerror or type(err).__name__})",
                    hint="check that the path is right and that you may read and write there",
                ),
            )


class DefaultGroup(Group):
    """A group with a default subcommand, as simonw/llm's `llm keys`: `serve ARGS` is `serve start ARGS`
    unless ARGS name a subcommand. Not the click-default-group package: it would hand `stop` in
    `serve --config X stop` to the default command as an argument; this routes it to `serve stop --config X`."""

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
        takes_value = {o for p in default.params if isinstance(p, click.Option) and not p.is_flag and not p.count
                       for o in (*p.opts, *p.secondary_opts)}  # fmt: skip
        i = 0
        while i < len(args) and args[i] != "--":
            if args[i] in self.commands:
                return [args[i], *args[:i], *args[i + 1 :]]
            i += 2 if args[i] in takes_value else 1
        return [self.default_command, *args]
