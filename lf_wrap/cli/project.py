"""The project file: `lf-wrap init` writes it, `render` prints the YAML it makes for LLaMA-Factory,
`template check` proves its chat template (lf_wrap/steps/init.py, lf_wrap/project/)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lf_wrap.cli.groups import Group
from lf_wrap.cli.options import config_options, dataset_dir_option, json_option, page
from lf_wrap.cli.output import echo_lines, emit


# fmt: off
@click.command(help=page("init"))
@click.option("--model", "model_ref", help="Your base model: its folder, or a hub id already downloaded.")
@click.option("--dataset", "dataset_ref", help="A dataset file (validated, then registered), or a registered name.")
@dataset_dir_option("Where dataset_info.json is (and where a dataset file is registered).")
@click.option("--template", help="LLaMA-Factory chat template (default: picked from the model folder).")
@click.option("--demo", is_flag=True, help="Write the built-in demo project (examples/magic_conch.yaml) instead.")
@click.option("--force", is_flag=True, help="Replace an existing project file.")
@click.option("--replay/--no-replay", default=True, show_default=True, help="For a small dataset, mix in the base "
              "model's own answers to general questions (keeps what it knew).")
@click.argument("path", type=click.Path(path_type=Path), default="lf-wrap.yaml")
def init(path: Path, model_ref: str | None, dataset_ref: str | None, dataset_dir: Path, template: str | None,
         demo: bool, force: bool, replay: bool) -> None:
    from lf_wrap.steps import init as step

    if demo:
        if model_ref or dataset_ref or template:
            raise click.UsageError("--demo writes the built-in demo project: leave out --model, --dataset, --template")
        step.write_demo(path, force)
        click.echo(f"wrote {path}: the built-in demo project (what `make demo` runs)")
        return
    if not model_ref and not dataset_ref:
        raise click.UsageError("pass --model DIR_OR_HUB_ID --dataset FILE_OR_NAME for your own project, or --demo "
                               "for the built-in demo")
    if not (model_ref and dataset_ref):
        raise click.UsageError("--model and --dataset go together: the project needs both")
    p = step.plan(path, model_ref, dataset_ref, dataset_dir, template, force, replay=replay)
    echo_lines(p.notes, err=True)
    step.write(p)
    click.echo(f"wrote {path}" + (f"; {p.registered}" if p.registered else ""))
    click.echo(f"next: lf-wrap render train{p.config_arg}   then: lf-wrap train --dry-run{p.config_arg}", err=True)


@click.command(help=page("render"))
@click.argument("what", type=click.Choice(["train", "export"]), required=False)
@config_options
@click.option("--list-templates", is_flag=True, help="List LLaMA-Factory chat template names and exit.")
def render(what: str | None, config_file: Path | None, sets: tuple[str, ...], list_templates: bool) -> None:
    if list_templates:
        from lf_wrap.engines.schema import templates

        click.echo("\n".join(templates()))
        return
    if what is None:
        raise click.UsageError("say what to render: train or export")
    from lf_wrap.project.config import load_project
    from lf_wrap.project.recipe import project_hardware, render_export, render_train

    project = load_project(config_file, sets)
    if what == "export":
        click.echo(render_export(project).text, nl=False)
        return
    hardware = project_hardware(project)
    click.echo(hardware.summary(), err=True)
    click.echo(render_train(project, hardware=hardware).text, nl=False)


@click.group(cls=Group, help=page("template"))
def template() -> None: ...


@template.command("check", help=page("template-check"))
@config_options
@click.option("--model", "model_dir", type=click.Path(path_type=Path),
              help="Model folder (its tokenizer is enough; default: the project's `model:`).")
@click.option("--template", "template_name", help="LLaMA-Factory template (default: the project's `template:`).")
@click.option("--all-conversations", is_flag=True, help="Count a difference in every kind of conversation, not only "
              "the kinds the project's data trains.")
@json_option
def template_check(config_file: Path | None, sets: tuple[str, ...], model_dir: Path | None, template_name: str | None,
                   all_conversations: bool, as_json: bool) -> None:
    from lf_wrap.model.template_agreement import report_lines
    from lf_wrap.project.chat_template import judge
    from lf_wrap.project.config import load_project

    project = load_project(config_file, sets)
    check, harmful = judge(project, model_dir, template_name, all_conversations)
    emit(as_json, check, report_lines(check, model_dir or Path(project.config.model)))
    sys.exit(1 if harmful else 0)
# fmt: on
