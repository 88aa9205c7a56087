"""The project file: `lf-wrap init` writes it, `render` prints the YAML it makes for LLaMA-Factory,
`template check` proves its chat template (lf_wrap/steps/init.py, lf_wrap/project/)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lf_wrap.cli.common import Group, config_options, dataset_dir_option, echo_json, json_option


# -- init --------------------------------------------------------------------------------
@click.command()
@click.option("--model", "model_ref", help="Your base model: its folder, or a hub id already downloaded.")
@click.option("--dataset", "dataset_ref", help="A dataset file (validated, then registered), or a registered name.")
@dataset_dir_option("Where dataset_info.json is (and where a dataset file is registered).")
@click.option("--template", help="LLaMA-Factory chat template (default: picked from the model folder).")
@click.option("--demo", is_flag=True, help="Write the built-in demo project (examples/magic_conch.yaml) instead.")
@click.option("--force", is_flag=True, help="Replace an existing project file.")
@click.option(
    "--replay/--no-replay",
    default=True,
    show_default=True,
    help="For a small dataset, mix in the base model's own answers to general questions (keeps what it knew).",
)
@click.argument("path", type=click.Path(path_type=Path), default="lf-wrap.yaml")
def init(
    path: Path, model_ref: str | None, dataset_ref: str | None, dataset_dir: Path, template: str | None, demo: bool,
    force: bool, replay: bool,
) -> None:  # fmt: skip
    """Write a project file (lf-wrap.yaml) for your model and dataset, every value explained.

    \b
    Examples:
      lf-wrap init --model models/my-model --dataset my.json     # my.json is validated and registered
      lf-wrap init --model Qwen/Qwen2.5-0.5B-Instruct --dataset my_data --dataset-dir data
      lf-wrap init --demo                                        # the built-in demo's settings

    The chat template is picked from the model folder (its family's own template first where the
    chat template shows only a format such as ChatML) and proven by the template check,
    cutoff_len from the data's token lengths. Up to 5,000 rows the hyperparameters are
    lf-wrap's small-data recipe, measured on a real model (the passes over the data that make
    about 100 steps of 8 rows, taken 4 rows per step; LoRA rank 16; replay rows: the base model's
    own answers to general questions, generated here in the training environment); above,
    LLaMA-Factory's examples.
    Nothing is written (no project file, no dataset registered) unless every check passes.

    Exit status: 0 written, 2 bad input (nothing written).
    """
    from lf_wrap.steps import init as step

    if demo:
        if model_ref or dataset_ref or template:
            raise click.UsageError("--demo writes the built-in demo project: leave out --model, --dataset, --template")
        step.write_demo(path, force)
        click.echo(f"wrote {path}: the built-in demo project (what `make demo` runs)")
        return
    if not model_ref and not dataset_ref:
        raise click.UsageError(
            "pass --model DIR_OR_HUB_ID --dataset FILE_OR_NAME for your own project, or --demo for the built-in demo"
        )
    if not (model_ref and dataset_ref):
        raise click.UsageError("--model and --dataset go together: the project needs both")
    p = step.plan(path, model_ref, dataset_ref, dataset_dir, template, force, replay=replay)
    for note in p.notes:
        click.echo(note, err=True)
    step.write(p)
    click.echo(f"wrote {path}" + (f"; {p.registered}" if p.registered else ""))
    click.echo(f"next: lf-wrap render train{p.config_arg}   then: lf-wrap train --dry-run{p.config_arg}", err=True)


@click.command()
@click.argument("what", type=click.Choice(["train", "export"]), required=False)
@config_options
@click.option("--list-templates", is_flag=True, help="List LLaMA-Factory chat template names and exit.")
def render(what: str | None, config_file: Path | None, sets: tuple[str, ...], list_templates: bool) -> None:
    """Print the LLaMA-Factory YAML that `train` or `export` would run.

    \b
    Examples:
      lf-wrap render train
      lf-wrap render train --set learning_rate=1e-4 --set method=qlora
      lf-wrap render export --config my-project.yaml

    Exit status: 0 printed, 1 an external step failed (asking the training environment), 2 bad input.
    """
    if list_templates:
        from lf_wrap.engines.schema import templates

        click.echo("\n".join(templates()))
        return
    if what is None:
        raise click.UsageError("say what to render: train or export")
    from lf_wrap.project.config import load_project
    from lf_wrap.project.recipe import project_hardware, render_export, render_train

    project = load_project(config_file, sets)
    if what == "train":
        hardware = project_hardware(project)
        click.echo(hardware.summary(), err=True)
        rendered = render_train(project, hardware=hardware)
    else:
        rendered = render_export(project)
    click.echo(rendered.text, nl=False)


# -- template ----------------------------------------------------------------------------
@click.group(cls=Group)
def template() -> None:
    """Will the model answer the way it was trained? Check the chat template."""


@template.command("check")
@config_options
@click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path),
    help="Model folder (its tokenizer is enough; default: the project's `model:`).",
)
@click.option("--template", "template_name", help="LLaMA-Factory template (default: the project's `template:`).")
@click.option(
    "--all-conversations",
    is_flag=True,
    help="Count a difference in every kind of conversation, not only the kinds the project's data trains.",
)
@json_option
def template_check(
    config_file: Path | None, sets: tuple[str, ...], model_dir: Path | None, template_name: str | None,
    all_conversations: bool, as_json: bool,
) -> None:  # fmt: skip
    """Compare what LLaMA-Factory trains on with what the model's chat template serves.

    \b
    Two conversations of two turns each, without and with a system prompt, are encoded
    by LLaMA-Factory's own template code (in the training environment) and rendered by
    the model's chat template (what vLLM serves with), then compared token for token:
    the prompt before each answer, and how each answer ends. Every difference comes
    with the fixes that the same comparison proves right: another template, a
    default_system, mask_history, or serving with the training template.
    A difference only in a kind of conversation the project's data never trains (a
    system prompt, a second turn) is shown but not counted, unless --all-conversations.

    \b
    Examples:
      lf-wrap template check                          # the project's model and template
      lf-wrap template check --model models/m --template llama3 --json

    Exit status: 0 agree or harmless, 1 harmful differences, 2 bad input.
    """
    from lf_wrap.model.template_agreement import report_lines
    from lf_wrap.project.chat_template import judge
    from lf_wrap.project.config import load_project

    project = load_project(config_file, sets)
    check, harmful = judge(project, model_dir, template_name, all_conversations)
    if as_json:
        echo_json(check)
    else:
        click.echo("\n".join(report_lines(check, model_dir or Path(project.config.model))))
    sys.exit(1 if harmful else 0)
