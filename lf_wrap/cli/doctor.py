"""`lf-wrap doctor`: the machine, its GPUs and each engine's environment, judged (lf_wrap/steps/doctor.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from lf_wrap.cli.options import json_option, page
from lf_wrap.cli.output import emit


# fmt: off
@click.command(help=page("doctor"))
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="Project file whose "
              "llamafactory_cli:/vllm: settings to follow (default: ./lf-wrap.yaml if there is one).")
@json_option
def doctor(config_file: Path | None, as_json: bool) -> None:
    from lf_wrap.project.config import PROJECT_FILE, load_project
    from lf_wrap.steps.doctor import look

    settings: dict[str, Any] = {}
    if config_file is not None or Path(PROJECT_FILE).exists():
        p = load_project(config_file)
        settings = {"llamafactory_cli": p.config.llamafactory_cli, "vllm": p.config.vllm, "root": p.root}
    report = look(**settings)
    emit(as_json, report.to_dict(), report.lines())
    sys.exit(0 if report.ok else 1)
# fmt: on
