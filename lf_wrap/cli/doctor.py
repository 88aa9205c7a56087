"""`lf-wrap doctor`: the machine, its GPUs and each engine's environment, judged (lf_wrap/steps/doctor.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from lf_wrap.cli.common import echo_json, json_option

MARK = {"ok": "ok  ", "note": "note", "warn": "WARN", "fail": "FAIL"}


@click.command()
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    help="Project file whose llamafactory_cli:/vllm: settings to follow (default: ./lf-wrap.yaml if there is one).",
)
@json_option
def doctor(config_file: Path | None, as_json: bool) -> None:
    """What this machine and its engines can do, and what stops them.

    \b
    Shows the CPU (and its AVX2/AVX-512), memory and free disk; the GPUs and NVIDIA driver
    (nvidia-smi); and each engine's environment as its own Python sees it: torch's build and
    CUDA version, whether it can use the GPUs (and torch's own words when not), bf16, and the
    packages that matter (LLaMA-Factory, transformers, PEFT, bitsandbytes, DeepSpeed; vLLM).

    \b
    Examples:
      lf-wrap doctor
      lf-wrap doctor --json | jq .findings

    Exit status: 0 nothing stops a run (warnings may be printed), 1 something does: a torch
    built for a CUDA the driver cannot run, an environment whose Python or torch fails.
    """
    from lf_wrap.project.config import PROJECT_FILE, load_project
    from lf_wrap.steps.doctor import look

    settings: dict[str, Any] = {}
    if config_file is not None or Path(PROJECT_FILE).exists():
        project = load_project(config_file)
        settings = {"llamafactory_cli": project.config.llamafactory_cli, "vllm": project.config.vllm,
                    "root": project.root}  # fmt: skip
    report = look(**settings)
    if as_json:
        echo_json(report.to_dict())
    else:
        show(report)
    sys.exit(0 if report.ok else 1)


def show(report: Any) -> None:
    m = report.machine
    isa = ", ".join(m["isa"]) or "no AVX2"
    click.echo(f"machine   {m['cpu']}: {m['usable_cpus']} usable CPU(s), {isa}; "
               f"{m['memory_gib']} GiB memory; {m['disk_free_gib']} GiB free disk here")  # fmt: skip
    if report.gpus:
        names = "; ".join(f"{g['name']} ({g['memory_mib']} MiB, compute {g['compute_cap']})" for g in report.gpus)
        click.echo(f"GPUs      {names} ({report.gpus_how})")
        drv = report.driver or {}
        if drv.get("version"):
            click.echo(f"driver    {drv['version']}, runs CUDA {drv['cuda']} and older")
    else:
        click.echo(f"GPUs      none ({report.gpus_how})")
    for role, env in report.environments.items():
        facts = env.facts or {}
        packages = ", ".join(f"{k} {v}" for k, v in (facts.get("packages") or {}).items() if v)
        where = env.python or "not found"
        target = f", installed for {env.installed_for}" if env.installed_for else ""
        torch, cuda = facts.get("torch"), facts.get("cuda_build")
        build = f": torch {torch}" + (f" (CUDA {cuda})" if cuda else "") if torch else ""
        click.echo(f"{role:<9} {where}{target}{build}" + (f"; {packages}" if packages else ""))
    click.echo(f"llama.cpp {report.llamacpp or 'not built'}")
    click.echo("")
    for f in report.findings:
        click.echo(f"{MARK[f.level]} {f.subject}: {f.text}")
        if f.fix:
            click.echo(f"     fix: {f.fix}")
    verdict = "ready" if report.ok else "not ready: fix what says FAIL above"
    click.echo(f"doctor: {verdict}")
