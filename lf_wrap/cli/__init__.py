"""The `lf-wrap` command line: one module per command group, each parsing its options, calling
the step below (lf_wrap/steps/) and printing what it returns.

A command's module is imported only when the command is used or listed (`Group.lazy`), and the
steps only inside the command that runs them, so `lf-wrap --help` and `lf-wrap data validate`
load none of what the other commands need (torch, transformers, vllm and llamafactory never).
"""

from __future__ import annotations

import click

from lf_wrap import __version__
from lf_wrap.cli.groups import Group
from lf_wrap.cli.options import page

# --help lists the commands in the order of the pipeline, then the rest; a command not named here
# (a new one) is listed after these, alphabetically.
PIPELINE = ("model", "data", "init", "train", "export", "serve", "check", "eval", "chat", "report")
OTHERS = ("render", "template", "launch-plan", "doctor")
# Each command: the module that defines it, and its name there.
COMMANDS = {
    "model": "lf_wrap.cli.model:model",
    "data": "lf_wrap.cli.data:data",
    "init": "lf_wrap.cli.project:init",
    "render": "lf_wrap.cli.project:render",
    "template": "lf_wrap.cli.project:template",
    "train": "lf_wrap.cli.train:train",
    "export": "lf_wrap.cli.train:export",
    "launch-plan": "lf_wrap.cli.train:launch_plan",
    "serve": "lf_wrap.cli.serve:serve",
    "check": "lf_wrap.cli.check:check",
    "chat": "lf_wrap.cli.chat:chat",
    "eval": "lf_wrap.cli.evaluate:eval_command",
    "report": "lf_wrap.cli.evaluate:report",
    "doctor": "lf_wrap.cli.doctor:doctor",
}


@click.group(
    cls=Group,
    order=PIPELINE + OTHERS,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    help=page("lf-wrap"),
)
@click.version_option(__version__, prog_name="lf-wrap")
def main() -> None: ...


if __name__ == "__main__":  # pragma: no cover
    main()
