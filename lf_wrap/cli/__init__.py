"""The `lf-wrap` command line: one module per command group, each parsing its options, calling
the step below (lf_wrap/steps/) and printing what it returns.

A command's module is imported only when the command is used or listed (`Group.lazy`), and the
steps only inside the command that runs them, so `lf-wrap --help` and `lf-wrap data validate`
load none of what the other commands need (torch, transformers, vllm and llamafactory never).
"""

from __future__ import annotations

import click

from lf_wrap import __version__
from lf_wrap.cli.common import Group

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
)
@click.version_option(__version__, prog_name="lf-wrap")
def main() -> None:
    """From a dataset file and a base model to a fine-tuned model behind an
    OpenAI-compatible API, one command per step.

    \b
    Typical path:
      lf-wrap model pull Qwen/Qwen2.5-0.5B-Instruct  # or, for the demo: lf-wrap model tiny models/tiny-qwen2
      lf-wrap data validate my.json                  # every problem, with file:line and field
      lf-wrap init --model DIR --dataset my.json     # write lf-wrap.yaml, register the data (or: init --demo)
      lf-wrap train --dry-run                        # every check, nothing started (render train: the YAML)
      lf-wrap train                                  # llamafactory-cli train; the run in runs/<name>/
      lf-wrap export                                 # merge the adapter into the base model
      lf-wrap serve --detach                         # vLLM, OpenAI-compatible, on 127.0.0.1:8000
      lf-wrap check                                  # it answers, like its training data, and how fast

    \b
    Exit status (every command; each command's --help says what applies to it):
      0 ok, 1 an external step failed (engine, download, server), 2 bad input or usage,
      3 `serve status`: no server running, 130/143 interrupted by Ctrl-C/SIGTERM.
      With --json, a failure prints one JSON object: error, hint, location, exit_code.
    """


if __name__ == "__main__":  # pragma: no cover
    main()
