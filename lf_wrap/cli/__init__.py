"""The `lf-wrap` command line: thin click commands over the library modules.

Nothing heavy is imported here: torch, transformers, vllm and llamafactory are imported
inside the commands that need them, so `lf-wrap --help` starts in a blink.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, NoReturn

import click

from lf_wrap import __version__
from lf_wrap.util.errors import Interrupted, LfWrapError, require

FORMAT_CHOICES = ["auto", "alpaca", "sharegpt", "openai", "preference", "kto"]
# Where a message says the problem is: "file:line[:col]" at the start of a line (or of a "  - " item), or "--set KEY".
_LOCATION = re.compile(r"^\s*(?:- )?(--set [\w.]+|[^\s:][^\n:]*:\d+(?::\d+)?)(?=:)", re.MULTILINE)


def _location(err: LfWrapError) -> str | None:
    if err.location:
        return err.location
    found = _LOCATION.search(err.message)
    return found.group(1) if found else None


def error_payload(err: LfWrapError | click.ClickException) -> dict[str, Any]:
    """The one JSON object a failure prints under --json: error, hint, location, exit_code
    (and the validation report, when the error carries one)."""
    if isinstance(err, LfWrapError):
        payload: dict[str, Any] = {"error": err.message, "hint": err.hint, "location": _location(err)}
        report = getattr(err, "report", None)
        if report is not None:
            payload["report"] = report.to_dict()
    else:
        param = getattr(err, "param", None)
        where = "/".join(param.opts) if isinstance(param, click.Parameter) and param.opts else None
        payload = {"error": err.format_message(), "hint": None, "location": where or getattr(err, "option_name", None)}
        if isinstance(err, click.UsageError):
            payload["hint"] = "see --help"
    payload["exit_code"] = err.exit_code
    return {k: payload[k] for k in ("error", "hint", "location", "exit_code", "report") if k in payload}


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
            click.echo(json.dumps(self.payload, ensure_ascii=False, indent=2))
        if self.original is not None:
            self.original.show(file)
        else:
            super().show(file)


def _json_mode(ctx: click.Context) -> bool:
    """--json given: the flag's callback ran, or (for an error while parsing) it is among the arguments."""
    argv: list[str] = ctx.meta.get("lf_wrap.argv", [])
    typed = argv[: argv.index("--")] if "--" in argv else argv
    return bool(ctx.meta.get("lf_wrap.json")) or "--json" in typed


class Group(click.Group):
    """Turns every LfWrapError (and, under --json, every usage error) into a Failure, once.

    `order` lists commands in the order --help shows them (the pipeline's); commands it does not
    name follow, alphabetically, and names with no command are skipped."""

    def __init__(self, *args: Any, order: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.order = order

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = super().list_commands(ctx)
        return [n for n in self.order if n in names] + [n for n in names if n not in self.order]

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


def _json_out(ctx: click.Context, payload: Any) -> None:
    click.echo(json.dumps(payload, ensure_ascii=False, indent=2))


def _fail_report(report: Any, as_json: bool) -> NoReturn:
    if as_json:  # the report, and the keys every --json failure has
        first = next((i for i in report.issues if i.severity == "error"), None)
        failure = {
            "error": report.summary(),
            "hint": "fix the rows listed in issues, then validate again",
            "location": first.location(report.file) if first else report.file,
            "exit_code": 2,
        }
        click.echo(json.dumps({**report.to_dict(), **failure}, ensure_ascii=False, indent=2))
    else:
        for line in report.lines():
            click.echo(line, err=True)
    sys.exit(2)


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        ctx.meta["lf_wrap.json"] = value
        return value

    return click.option(
        "--json", "as_json", is_flag=True, callback=remember, expose_value=True, help="Print a machine-readable report."
    )(f)


# --help lists the commands in the order of the pipeline, then the rest; a command not named here
# (a new one) is listed after these, alphabetically.
PIPELINE = ("model", "data", "init", "train", "export", "serve", "check", "eval", "chat", "report")
OTHERS = ("render", "template", "launch-plan")


@click.group(
    cls=Group,
    order=PIPELINE + OTHERS,
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


def _dataset_dir_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--dataset-dir", type=click.Path(path_type=Path), default=Path("data"), show_default=True, help=help
    )


# -- init --------------------------------------------------------------------------------
@main.command()
@click.option("--model", "model_ref", help="Your base model: its folder, or a hub id already downloaded.")
@click.option("--dataset", "dataset_ref", help="A dataset file (validated, then registered), or a registered name.")
@_dataset_dir_option("Where dataset_info.json is (and where a dataset file is registered).")
@click.option("--template", help="LLaMA-Factory chat template (default: picked from the model folder).")
@click.option("--demo", is_flag=True, help="Write the built-in demo project (examples/magic_conch.yaml) instead.")
@click.option("--force", is_flag=True, help="Replace an existing project file.")
@click.argument("path", type=click.Path(path_type=Path), default="lf-wrap.yaml")
def init(
    path: Path,
    model_ref: str | None,
    dataset_ref: str | None,
    dataset_dir: Path,
    template: str | None,
    demo: bool,
    force: bool,
) -> None:
    """Write a project file (lf-wrap.yaml) for your model and dataset, every value explained.

    \b
    Examples:
      lf-wrap init --model models/my-model --dataset my.json     # my.json is validated and registered
      lf-wrap init --model Qwen/Qwen2.5-0.5B-Instruct --dataset my_data --dataset-dir data
      lf-wrap init --demo                                        # the built-in demo's settings

    The chat template is picked from the model folder, cutoff_len from the data's token
    lengths, the hyperparameters from LLaMA-Factory's examples. Nothing is written (no
    project file, no dataset registered) unless every check passes.

    Exit status: 0 written, 2 bad input (nothing written).
    """
    from lf_wrap.steps import init as init_project

    if demo:
        if model_ref or dataset_ref or template:
            raise click.UsageError("--demo writes the built-in demo project: leave out --model, --dataset, --template")
        init_project.write_demo(path, force)
        click.echo(f"wrote {path}: the built-in demo project (what `make demo` runs)")
        return
    if not model_ref and not dataset_ref:
        raise click.UsageError(
            "pass --model DIR_OR_HUB_ID --dataset FILE_OR_NAME for your own project, or --demo for the built-in demo"
        )
    if not (model_ref and dataset_ref):
        raise click.UsageError("--model and --dataset go together: the project needs both")
    p = init_project.plan(path, model_ref, dataset_ref, dataset_dir, template, force)
    for note in p.notes:
        click.echo(note, err=True)
    init_project.write(p)
    click.echo(f"wrote {path}" + (f"; {p.registered}" if p.registered else ""))
    click.echo(f"next: lf-wrap render train{p.config_arg}   then: lf-wrap train --dry-run{p.config_arg}", err=True)


# -- data --------------------------------------------------------------------------------
@main.group(cls=Group, order=("validate", "register", "stats", "convert"))
def data() -> None:
    """Check, describe, convert and register datasets."""


@data.command("validate")
@click.argument("file", type=click.Path(path_type=Path), required=False)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMAT_CHOICES),
    default="auto",
    show_default=True,
    help="Dataset format; auto looks at the first row.",
)
@click.option("--dataset-dir", type=click.Path(path_type=Path), help="With --name: check a registered dataset.")
@click.option("--name", help="Name of the entry in DATASET_DIR/dataset_info.json to check, as LLaMA-Factory reads it.")
@click.option("--max-errors", type=click.IntRange(1), default=50, show_default=True, help="How many problems to list.")
@json_option
def data_validate(
    file: Path | None, fmt: str, dataset_dir: Path | None, name: str | None, max_errors: int, as_json: bool
) -> None:
    """Check a dataset row by row and report every problem.

    \b
    Examples:
      lf-wrap data validate datasets/magic_conch.json
      lf-wrap data validate chats.jsonl --format openai --json
      lf-wrap data validate --dataset-dir data --name magic_conch

    Each problem is printed as FILE:LINE: [row N].field: what is wrong — how to fix.
    Exit status: 0 valid (warnings allowed), 2 errors found.
    """
    if name or dataset_dir:
        if file is not None:
            raise click.UsageError("give either FILE or --dataset-dir with --name, not both")
        if not (name and dataset_dir):
            raise click.UsageError("--dataset-dir and --name go together")
        from lf_wrap.data.registry import validate_entry  # a registry: render, yaml, file locks

        report = validate_entry(dataset_dir, name, max_listed=max_errors)
    elif file is None:
        raise click.UsageError("give a FILE to check (or --dataset-dir DIR --name NAME)")
    else:
        from lf_wrap.data.validate import validate_file  # a file alone: the reader and the checks only

        report = validate_file(file, fmt, max_listed=max_errors)
    if not report.ok:
        _fail_report(report, as_json)
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        for line in report.lines()[:-1]:
            click.echo(line, err=True)
        click.echo(report.summary())


@data.command("stats")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES), default="auto", show_default=True)
@click.option(
    "--tokenizer",
    "tokenizer_dir",
    type=click.Path(path_type=Path),
    help="Model folder whose tokenizer and chat template count the tokens.",
)
@click.option("--cutoff-len", type=click.IntRange(1), help="Count rows longer than this (LLaMA-Factory's cutoff_len).")
@json_option
def data_stats(file: Path, fmt: str, tokenizer_dir: Path | None, cutoff_len: int | None, as_json: bool) -> None:
    """Rows, duplicates and length percentiles (tokens with --tokenizer, else characters).

    Exit status: 0 ok, 2 bad input (an invalid dataset, a folder without a tokenizer, a missing package).
    """
    from lf_wrap.data.stats import compute

    stats = compute(file, fmt, tokenizer_dir, cutoff_len)
    d = stats.to_dict()
    if as_json:
        click.echo(json.dumps(d, ensure_ascii=False, indent=2))
        return
    length = d["length"]
    click.echo(f"file        {d['file']} ({d['format']})")
    click.echo(f"rows        {d['rows']}")
    click.echo(f"duplicates  {d['duplicates']}")
    click.echo(
        f"{d['unit']:<11} min {length['min']}  p50 {length['p50']}  p95 {length['p95']}  max {length['max']}"
        + ("  (chat template applied)" if d["unit"] == "tokens" else "")
    )
    if cutoff_len is not None:
        if d["unit"] != "tokens":
            click.echo("truncated   (pass --tokenizer to count tokens against --cutoff-len)")
        else:
            click.echo(f"truncated   {d['truncated']} of {d['rows']} rows exceed cutoff_len {cutoff_len}")


@data.command("convert")
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--to", "target", type=click.Choice(["alpaca", "sharegpt", "openai"]), required=True)
@click.option(
    "--format", "fmt", type=click.Choice(FORMAT_CHOICES), default="auto", show_default=True, help="Format of SRC."
)
@click.option("--force", is_flag=True, help="Replace OUT if it exists (never SRC).")
def data_convert(src: Path, out: Path, target: str, fmt: str, force: bool) -> None:
    """Convert SRC to another format, written to OUT (.json list or .jsonl lines).

    SRC is only read. Rows the target format cannot hold are dropped and counted.

    Exit status: 0 written, 2 bad input (nothing written).
    """
    from lf_wrap.data.convert import convert

    result = convert(src, out, target, fmt, force)
    click.echo(f"wrote {result.out}: {result.written} rows, {result.source.format} -> {target}")
    for reason, n in result.dropped.items():
        click.echo(f"dropped {n} rows: {reason}", err=True)


@data.command("register")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--name", required=True, help="Dataset name for the `dataset:` key of the training config.")
@_dataset_dir_option("LLaMA-Factory's dataset_dir: where dataset_info.json and the data live.")
@click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES), default="auto", show_default=True)
@click.option("--force", is_flag=True, help="Replace a different entry (or data file) of the same name.")
@json_option
def data_register(file: Path, name: str, dataset_dir: Path, fmt: str, force: bool, as_json: bool) -> None:
    """Validate FILE, copy it into DATASET_DIR and write its dataset_info.json entry.

    \b
    Example:
      lf-wrap data register datasets/magic_conch.json --name magic_conch --dataset-dir data

    The entry is rendered from templates/dataset_info/<format>.json.j2. Registering the
    same file again changes nothing; a different entry under the same name needs --force.

    Exit status: 0 registered (or already registered), 2 bad input (nothing written).
    """
    from lf_wrap.data.registry import register

    reg = register(file, name, dataset_dir, fmt, force)
    if as_json:
        _json_out(
            click.get_current_context(),
            {
                "name": reg.name,
                "action": reg.action,
                "entry": reg.entry,
                "dataset_info": str(reg.info_path),
                "data_file": str(reg.data_path),
                "copied": reg.copied,
                "validation": reg.report.to_dict(),
            },
        )
        return
    click.echo(reg.report.summary())
    where = f"in {reg.info_path}" + (f" (data copied to {reg.data_path})" if reg.copied else "")
    if reg.action == "unchanged":
        click.echo(f"{reg.name!r} is already registered {where}, unchanged")
    else:
        click.echo(f"{'registered' if reg.action == 'added' else 'replaced'} {reg.name!r} {where}")


# -- model -------------------------------------------------------------------------------
@main.group(cls=Group)
def model() -> None:
    """Get a base model: download one (pull) or build the tiny demo model (tiny)."""


@model.command("pull")
@click.argument("model_id")
@click.option(
    "--hub",
    type=click.Choice(["hf", "modelscope"]),
    default="hf",
    show_default=True,
    help="Hugging Face (honours HF_ENDPOINT, HF_HOME, HF_TOKEN) or ModelScope.",
)
@click.option("--revision", help="Branch, tag or commit (default: the hub's main branch).")
@click.option("--local-dir", type=click.Path(path_type=Path), help="Download into this folder instead of the cache.")
@json_option
def model_pull(model_id: str, hub: str, revision: str | None, local_dir: Path | None, as_json: bool) -> None:
    """Download MODEL_ID (or check a local folder) and print one plain folder path.

    \b
    Examples:
      lf-wrap model pull Qwen/Qwen2.5-0.5B-Instruct
      HF_ENDPOINT=https://hf-mirror.com lf-wrap model pull Qwen/Qwen2.5-0.5B-Instruct
      lf-wrap model pull qwen/Qwen2.5-0.5B-Instruct --hub modelscope
      lf-wrap train --set model=$(lf-wrap model pull Qwen/Qwen2.5-0.5B-Instruct)

    A model already downloaded is found without the network. The printed folder holds
    config.json, the weights and the tokenizer (no snapshots/<hash> hunting).

    Exit status: 0 the folder is printed, 1 the hub could not be reached or the download failed, 2 bad input.
    """
    from lf_wrap.model.hub import pull

    path = pull(model_id, hub, revision, local_dir)  # type: ignore[arg-type]
    if as_json:
        _json_out(click.get_current_context(), {"model": model_id, "hub": hub, "path": str(path)})
    else:
        click.echo(str(path))


@model.command("tiny")
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same weights and tokenizer.")
@click.option(
    "--datasets-dir",
    type=click.Path(path_type=Path),
    help="Text to train the tokenizer on (default: the bundled datasets/).",
)
@click.option("--force", is_flag=True, help="Build even if OUT_DIR already holds a model.")
@click.option(
    "--family",
    type=click.Choice(["qwen2.5", "qwen3", "deepseek-r1-distill", "llama3"]),
    default="qwen2.5",
    show_default=True,
    help="Look like this family: its architecture, special tokens, EOS/BOS/pad layout and chat template.",
)
@click.option(
    "--size",
    "size_name",
    type=click.Choice(["demo", "bench"]),
    default="demo",
    show_default=True,
    help="demo: 0.46 M parameters (~2 MB), trains in seconds; "
    "bench: ~24 M (hidden 512, 8 layers), for serving benchmarks where batching matters.",
)
@json_option
def model_tiny(
    out_dir: Path, seed: int, datasets_dir: Path | None, force: bool, family: str, size_name: str, as_json: bool
) -> None:
    """Build a tiny chat model (random weights) for demos, tests and benchmarks.

    \b
    Families (LLaMA-Factory template to train it with):
      qwen2.5              like Qwen2.5-Instruct (qwen); the demo model
      qwen3                like Qwen3, thinking on/off (qwen3, or qwen3 with enable_thinking: false)
      deepseek-r1-distill  like DeepSeek-R1-Distill-Qwen (deepseekr1)
      llama3               like Llama-3.2-Instruct (llama3)

    Exit status: 0 built (or already there), 2 bad input or a missing package (torch, transformers).
    """
    from lf_wrap.util.paths import datasets_dir as bundled

    if (out_dir / "config.json").exists() and not force:
        if as_json:
            _json_out(click.get_current_context(), {"path": str(out_dir), "built": False})
        else:
            click.echo(f"{out_dir}: a model is already there (pass --force to rebuild)")
        return
    if out_dir.exists() and not out_dir.is_dir():
        raise LfWrapError(f"{out_dir}: exists and is not a directory")
    require(("torch", "transformers", "tokenizers"), "lf-wrap model tiny")
    from lf_wrap.model.tiny import build, size

    facts = build(out_dir, datasets_dir or bundled(), seed=seed, spec=size(size_name), family_name=family)
    if as_json:
        _json_out(click.get_current_context(), {**facts, "built": True})
    else:
        like = f"; {facts['architecture']} like {facts['looks_like']}, train with template: {facts['template']}"
        click.echo(
            f"built {out_dir}: {facts['params']:,} parameters, vocab {facts['vocab_size']}, "
            f"{facts['weights_bytes'] / 1e6:.1f} MB of weights" + ("" if family == "qwen2.5" else like)
        )


# -- render ------------------------------------------------------------------------------
def _set_and_config(set_help: str, config_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The --config FILE and --set KEY=VALUE options, with help for what the command reads from them."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        f = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=set_help)(f)
        return click.option("--config", "config_file", type=click.Path(path_type=Path), help=config_help)(f)

    return decorate


_config_options = _set_and_config(
    "Override a setting or any LLaMA-Factory key (repeatable).",
    "Project file (default: ./lf-wrap.yaml if present, else the demo settings).",
)


@main.command()
@click.argument("what", type=click.Choice(["train", "export"]), required=False)
@_config_options
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
    from lf_wrap.project.config import load_project, project_hardware, render_export, render_train

    project = load_project(config_file, sets)
    if what == "train":
        hardware = project_hardware(project)
        click.echo(hardware.summary(), err=True)
        rendered = render_train(project, hardware=hardware)
    else:
        rendered = render_export(project)
    click.echo(rendered.text, nl=False)


# -- template ----------------------------------------------------------------------------
@main.group(cls=Group)
def template() -> None:
    """Will the model answer the way it was trained? Check the chat template."""


@template.command("check")
@_config_options
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
    config_file: Path | None,
    sets: tuple[str, ...],
    model_dir: Path | None,
    template_name: str | None,
    all_conversations: bool,
    as_json: bool,
) -> None:
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
    from lf_wrap.model.template_agreement import probe_project, report_lines, serve_training_agrees
    from lf_wrap.project.config import load_project

    project = load_project(config_file, sets)
    check = probe_project(project, model_dir, template_name, all_conversations=all_conversations)
    shown = model_dir or Path(project.config.model)
    check["serve_with"] = project.config.chat_template
    harmful = check["harmful"]
    if project.config.chat_template == "training":  # what is served is the training template: judge that
        harmful = not serve_training_agrees(check)
    if as_json:
        click.echo(json.dumps(check, ensure_ascii=False, indent=2))
    else:
        for line in report_lines(check, shown):
            click.echo(line)
    sys.exit(1 if harmful else 0)


# -- train / export ----------------------------------------------------------------------
@main.command()
@_config_options
@click.option("--resume", is_flag=True, help="Continue the run from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Start the run over, deleting its output.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Run every check the real command runs, print the YAML and the command, start nothing.",
)
@click.option("--no-template-check", is_flag=True, help="Skip the train/serve chat-template agreement check.")
@click.option("--nproc-per-node", type=click.IntRange(1), help="Processes (GPUs) per node; >1 launches torchrun.")
@click.option("--nnodes", type=click.IntRange(1), help="Number of nodes.")
@click.option("--node-rank", type=click.IntRange(0), help="This node's rank, 0 .. nnodes-1.")
@click.option("--master-addr", help="Address of node 0, reachable from every node.")
@click.option("--master-port", type=click.IntRange(1, 65535), help="Rendezvous port on node 0.")
@click.option("--deepspeed", help="z0, z2, z3, z3-offload (from templates/deepspeed/) or a DeepSpeed JSON file.")
@click.option(
    "--from-run",
    metavar="NAME",
    help="Start from run NAME's result (its merged model, else its LoRA adapter), e.g. DPO after SFT.",
)
@json_option
def train(
    config_file: Path | None,
    sets: tuple[str, ...],
    resume: bool,
    overwrite: bool,
    dry_run: bool,
    no_template_check: bool,
    nproc_per_node: int | None,
    nnodes: int | None,
    node_rank: int | None,
    master_addr: str | None,
    master_port: int | None,
    deepspeed: str | None,
    from_run: str | None,
    as_json: bool,
) -> None:
    """Fine-tune with `llamafactory-cli train` (LoRA, QLoRA or full; SFT, DPO or KTO).

    \b
    Before the engine starts, lf-wrap checks: the model folder (config, weights,
    tokenizer), every dataset (registered and valid, row by row), the settings (keys and
    types), the run folder (no accidental overwrite), the engine and the hardware (GPUs,
    bf16), DeepSpeed, and that the chat template the model will be served with renders what
    LLaMA-Factory trains on. --dry-run runs all of these and exits 2 where the real command would.

    \b
    Examples:
      lf-wrap train                                  # ./lf-wrap.yaml (the built-in demo if there is none)
      lf-wrap train --set num_train_epochs=3 --set run_name=try2
      lf-wrap train --dry-run
      lf-wrap train --nproc-per-node 8 --deepspeed z3       # one node, 8 GPUs
      lf-wrap train --nnodes 2 --node-rank 0 --nproc-per-node 8 --master-addr 10.0.0.1
      lf-wrap train --set stage=dpo --set datasets=my_pairs --from-run my-sft-run   # DPO on an SFT result

    Exit status: 0 trained (--dry-run: every check passed), 1 the engine failed, 2 bad input or a
    failed check, 130/143 interrupted by Ctrl-C/SIGTERM (continue with --resume).
    """
    from lf_wrap.project.config import load_project
    from lf_wrap.steps.train import execute, plan

    launch_sets = {"nproc_per_node": nproc_per_node, "nnodes": nnodes, "node_rank": node_rank,
                   "master_addr": master_addr, "master_port": master_port, "deepspeed": deepspeed,
                   "from_run": from_run}  # fmt: skip
    sets = sets + tuple(f"{k}={v}" for k, v in launch_sets.items() if v is not None)
    project = load_project(config_file, sets)
    p = plan(project, resume=resume, overwrite=overwrite, template_check=not no_template_check)
    if p.hardware is not None:
        click.echo(p.hardware.summary(), err=True)
    if not dry_run:
        click.echo(p.batch_arithmetic(), err=True)
    if p.probe:
        from lf_wrap.model.template_agreement import progress_line

        click.echo(progress_line(p.probe["template_check"]), err=True)
    for note in p.notes:
        click.echo(note, err=True)
    if dry_run:
        click.echo(p.rendered.text, nl=False)
        from lf_wrap.util.process import shell_line

        if p.deepspeed is not None:
            click.echo(f"# would write {p.deepspeed[0]}:\n{p.deepspeed[1]}", nl=False, err=True)
        click.echo(f"# {p.batch_arithmetic()}", err=True)
        launch = project.launch
        if launch.distributed:
            click.echo(f"# node {launch.node_rank} of {launch.nnodes}:", err=True)
        click.echo(f"# would run: {shell_line(p.command, p.launch_env)}", err=True)
        return
    result = execute(p, as_json=as_json)
    from lf_wrap.steps.report import try_write

    if as_json:
        click.echo(json.dumps({"event": "done", **result}, ensure_ascii=False))
        click.echo(try_write(p.run.root), err=True)
    else:
        loss, eval_loss = result.get("final_loss"), result.get("final_eval_loss")
        click.echo(
            f"trained {p.run.name} in {result['duration_s']:.0f} s"
            + (f", final loss {loss:.4f}" if loss is not None else "")
            + (f", eval loss {eval_loss:.4f}" if eval_loss is not None else "")
            + f"; adapter in {p.run.output}"
        )
        click.echo(try_write(p.run.root))


@main.command()
@_config_options
@click.option("--overwrite", is_flag=True, help="Replace an existing merged model.")
@click.option("--dry-run", is_flag=True, help="Run every check the real command runs, print the YAML and the command.")
@click.option(
    "--chat-template",
    metavar="training|FILE",
    help="Give the merged model this chat template: `training` is a Jinja template that renders exactly what "
    "LLaMA-Factory trained on (checked first); or a .jinja file.",
)
@json_option
def export(
    config_file: Path | None,
    sets: tuple[str, ...],
    overwrite: bool,
    dry_run: bool,
    chat_template: str | None,
    as_json: bool,
) -> None:
    """Merge the run's LoRA adapter into the base model (`llamafactory-cli export`).

    The merged model is written to runs/<run_name>/merged and checked (weights, config,
    tokenizer, chat template) before lf-wrap reports success. With --chat-template training
    its chat template (chat_template.jinja, and tokenizer_config.json's) becomes the one
    LLaMA-Factory trained with, so any server that uses the model's template serves it.

    Exit status: 0 exported and checked, 1 the engine failed or the result is incomplete, 2 bad input,
    130/143 interrupted by Ctrl-C/SIGTERM.
    """
    from lf_wrap.project.config import load_project
    from lf_wrap.steps.export import execute, plan

    project = load_project(config_file, sets)
    p = plan(project, overwrite=overwrite)
    jinja = None
    if chat_template is None and project.config.chat_template == "training":
        chat_template = "training"  # the project serves what LLaMA-Factory trained on
    if chat_template is not None:  # before the merge: a template that cannot be made fails fast
        from lf_wrap.model.template_agreement import chat_template_text

        jinja = chat_template_text(project, chat_template)
    if dry_run:
        if p.rendered is not None:
            click.echo(p.rendered.text, nl=False)
            from lf_wrap.util.process import shell_line

            click.echo(f"# would run: {shell_line(p.command)}", err=True)
        if jinja is not None:
            click.echo(f"# would write the {chat_template} chat template into {p.run.merged}/chat_template.jinja",
                       err=True)  # fmt: skip
        return
    result = execute(p)
    if jinja is not None:
        from lf_wrap.model.template_agreement import install_chat_template

        written = install_chat_template(Path(result["model"]), jinja)
        p.run.record("export", {"chat_template": chat_template, "chat_template_files": [str(w) for w in written]})
        result["chat_template"] = chat_template
        click.echo(f"chat template: {chat_template} ({', '.join(w.name for w in written)})", err=True)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
    elif result["merged"]:
        click.echo(f"exported {result['model']} in {result['duration_s']:.0f} s")


@main.command("launch-plan")
@_config_options
@click.option("--nnodes", type=click.IntRange(1), required=True, help="Number of nodes.")
@click.option("--nproc-per-node", type=click.IntRange(1), default=1, show_default=True, help="GPUs per node.")
@click.option("--master-addr", required=True, help="Address of node 0, reachable from every node.")
@click.option("--master-port", type=click.IntRange(1, 65535), default=29500, show_default=True)
@click.option("--deepspeed", help="z0, z2, z3, z3-offload or a DeepSpeed JSON file.")
def launch_plan(config_file: Path | None, sets: tuple[str, ...], nnodes: int, nproc_per_node: int, master_addr: str,
                master_port: int, deepspeed: str | None) -> None:  # fmt: skip
    """Print the command to run on each node (and a Slurm line) for a multi-node run.

    \b
    Example:
      lf-wrap launch-plan --nnodes 4 --nproc-per-node 8 --master-addr 10.0.0.1 --deepspeed z3

    Exit status: 0 printed, 2 bad input.
    """
    from lf_wrap.project.config import load_project
    from lf_wrap.project.launch import Launch, node_command, slurm_line

    args = [*(["--config", str(config_file)] if config_file else []), *[x for s in sets for x in ("--set", s)]]
    if deepspeed:
        args += ["--deepspeed", deepspeed]
    load_project(config_file, (*sets, *((f"deepspeed={deepspeed}",) if deepspeed else ())))  # validate first
    launch = Launch(nproc_per_node, nnodes, 0, master_addr, master_port)
    click.echo(f"# {nnodes} nodes x {nproc_per_node} processes = world size {launch.world_size}; "
               "run each line on its node (same code, data and lf-wrap.yaml on every node):")  # fmt: skip
    for rank in range(nnodes):
        click.echo(f"node {rank}: {node_command(args, launch, rank)}")
    click.echo("# or, under Slurm (one task per node):")
    click.echo(slurm_line(args, launch))


# -- serve / check --------------------------------------------------------------------------
def _run_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--runs-dir",
        type=click.Path(path_type=Path),
        help="Folder that holds the run folders (default: the project's runs_dir).",
    )(f)
    f = click.option("--run", "run_name", metavar="NAME", help="The run (default: the project's run_name).")(f)
    return f


def _run_sets(sets: tuple[str, ...], run_name: str | None, runs_dir: Path | None) -> tuple[str, ...]:
    """--run/--runs-dir as the --set overrides they are (a command-line path is relative to the current folder)."""
    extra = ((f"run_name={run_name}",) if run_name else ()) + (
        (f"runs_dir={runs_dir.expanduser().absolute()}",) if runs_dir else ()
    )
    return (*sets, *extra)


@main.group(cls=DefaultGroup, default_command="start")
def serve() -> None:
    """Serve a model behind an OpenAI-compatible API, and manage a detached server.

    \b
    `lf-wrap serve [OPTIONS]` is `lf-wrap serve start [OPTIONS]`:
      lf-wrap serve                                   # foreground, Ctrl-C stops it
      lf-wrap serve --detach --port 8000              # background (pidfile + log in the run folder)
      lf-wrap serve status                            # is the run's detached server up?
      lf-wrap serve stop                              # stop exactly the process group lf-wrap started
      lf-wrap serve stop --config other.yaml          # another project's run (or --run NAME)

    Exit status: see each subcommand's --help (`serve status` exits 3 when no server runs).
    """


@serve.command("start", short_help="Serve a model with vLLM (the default: `serve ARGS` is `serve start ARGS`).")
@_config_options
@click.option(
    "--model",
    "model",
    type=click.Path(path_type=Path),
    help="Model folder to serve (default: the run's merged model, runs/<run_name>/merged).",
)
@click.option("--adapter", type=click.Path(path_type=Path), help="Serve the base model + this LoRA adapter.")
@click.option("--adapter-name", help="Model name for the adapter (default: the run name).")
@click.option("--served-model-name", help="Name clients ask for (default: the run name).")
@click.option("--tokenizer", type=click.Path(path_type=Path), help="Tokenizer folder, if not the model's.")
@click.option(
    "--chat-template",
    metavar="training|FILE",
    help="`training`: serve with a Jinja template that renders exactly what LLaMA-Factory trained on (checked, "
    "written to the run folder); or a .jinja file.",
)
@click.option("--max-model-len", type=click.IntRange(16), help="Longest prompt + answer, in tokens.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; 0.0.0.0 exposes it.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--api-key", envvar="LF_WRAP_API_KEY", help="Require this key (or set LF_WRAP_API_KEY).")
@click.option("--tensor-parallel-size", type=click.IntRange(1), help="Split each layer over N devices.")
@click.option("--pipeline-parallel-size", type=click.IntRange(1), help="Split the layers over N devices (or nodes).")
@click.option("--data-parallel-size", type=click.IntRange(1), help="N replicas of the model.")
@click.option("--dtype", help="auto, float16, bfloat16 or float32 (CPU default: float32).")
@click.option("--detach", is_flag=True, help="Run in the background (pidfile + log in the run folder).")
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=600.0,
    show_default=True,
    help="Seconds to wait for /health when detached.",
)
@click.option("--dry-run", is_flag=True, help="Print the command, start nothing.")
@click.option("--vllm-arg", "extra", multiple=True, metavar="ARG", help="Passed to vllm serve untouched (repeatable).")
@_run_options
@json_option
def serve_start(
    model: Path | None,
    config_file: Path | None,
    sets: tuple[str, ...],
    run_name: str | None,
    runs_dir: Path | None,
    adapter: Path | None,
    adapter_name: str | None,
    served_model_name: str | None,
    tokenizer: Path | None,
    chat_template: str | None,
    max_model_len: int | None,
    host: str,
    port: int,
    api_key: str | None,
    tensor_parallel_size: int | None,
    pipeline_parallel_size: int | None,
    data_parallel_size: int | None,
    dtype: str | None,
    detach: bool,
    timeout_s: float,
    dry_run: bool,
    extra: tuple[str, ...],
    as_json: bool,
) -> None:
    """Serve a model with `vllm serve` (the default subcommand: `lf-wrap serve ...` runs this).

    \b
    By default the run's merged model (runs/<run_name>/merged). Examples:
      lf-wrap serve                                   # foreground, Ctrl-C stops it
      lf-wrap serve --detach --port 8000              # background; then: lf-wrap serve status|stop
      lf-wrap serve --adapter runs/magic-conch/output # base model + LoRA adapter, by name
      lf-wrap serve --model some/model/dir --vllm-arg=--enforce-eager
      lf-wrap serve --chat-template training          # the prompt format LLaMA-Factory trained on

    Exit status: 0 the detached server is ready (foreground: the server exited by itself), 1 it failed
    to start or exited with an error, 2 bad input, 130/143 stopped by Ctrl-C/SIGTERM (foreground).
    """
    from lf_wrap.project.config import load_project
    from lf_wrap.steps.serve import plan, serve_detached, serve_foreground

    project = load_project(config_file, _run_sets(sets, run_name, runs_dir))
    template_file = None
    if chat_template is None and project.config.chat_template == "training":
        chat_template = "training"  # the project serves what LLaMA-Factory trained on
    if chat_template is not None:
        from lf_wrap.model.template_agreement import chat_template_file

        template_file = chat_template_file(project, chat_template)
        click.echo(f"chat template: {template_file}", err=True)
    p = plan(
        project,
        model=model,
        adapter=adapter,
        adapter_name=adapter_name,
        served_name=served_model_name,
        tokenizer=tokenizer,
        max_model_len=max_model_len,
        host=host,
        port=port,
        api_key=api_key,
        tensor_parallel_size=tensor_parallel_size,
        pipeline_parallel_size=pipeline_parallel_size,
        data_parallel_size=data_parallel_size,
        dtype=dtype,
        extra=extra,
        chat_template=template_file,
    )
    for warning in p.warnings:
        click.echo(warning, err=True)
    if dry_run:
        click.echo(p.printable())
        return
    if detach:
        info = serve_detached(p, timeout_s)
        if as_json:
            _json_out(click.get_current_context(), info)
        else:
            click.echo(
                f"ready in {info['ready_after_s']:.0f} s: {info['base_url']}/v1 serves {info['served_model_name']!r} "
                f"(pid {info['pid']}, log {info['log']}); stop with `lf-wrap serve stop`"
            )
            click.echo("\n" + _snippets(info, p.run.root, config_file))
        return
    serve_foreground(p)


def _snippets(info: dict[str, Any], run_root: Path, config_file: Path | None) -> str:
    """curl / openai / LangChain code for a detached server (serve.json's record); lf_wrap/steps/snippets.py."""
    import shlex

    from lf_wrap.steps.snippets import for_server

    return for_server(
        info["base_url"],
        info["served_model_name"],
        api_key_required=bool(info.get("api_key_required")),
        model_dir=info.get("model"),
        run_root=run_root,
        chat_args=f" --config {shlex.quote(str(config_file))}" if config_file else "",
    )


def _pidfile(config_file: Path | None, sets: tuple[str, ...], run_name: str | None, runs_dir: Path | None) -> Path:
    from lf_wrap.project.runs import locate_run_dir

    return locate_run_dir(config_file, sets, run_name, runs_dir) / "serve.json"


def _lenient_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--config/--set/--run/--runs-dir, read only for the run folder: the rest of the project file is not validated."""
    return _set_and_config(
        "run_name=, runs_dir= (or datasets=) as the server was started with; other keys are ignored here.",
        "Project file the server was started with (only run_name and runs_dir are read from it).",
    )(_run_options(f))


@serve.command("status")
@_lenient_options
@json_option
def serve_status(
    config_file: Path | None, sets: tuple[str, ...], run_name: str | None, runs_dir: Path | None, as_json: bool
) -> None:
    """Is the run's detached server running and healthy?

    Only the run folder is needed (runs/<run_name>/serve.json): a typo elsewhere in the project
    file does not stop this.

    Exit status: 0 running, 3 not running (nothing recorded, or its process is gone), 2 bad input.
    """
    from lf_wrap.steps.serve import status

    info = status(_pidfile(config_file, sets, run_name, runs_dir))
    if as_json:
        click.echo(json.dumps({**info, "exit_code": 0 if info["running"] else 3}, indent=2))
    elif info["running"]:
        click.echo(
            f"running: pid {info['pid']}, {info['base_url']}/v1 serves {info['served_model_name']!r}, "
            f"{'healthy' if info['healthy'] else 'not healthy yet'}"
        )
        pidfile = _pidfile(config_file, sets, run_name, runs_dir)
        click.echo("\n" + _snippets(info, pidfile.parent, config_file))
    else:
        click.echo(f"not running: {info['reason']}")
    sys.exit(0 if info["running"] else 3)


@serve.command("stop")
@_lenient_options
def serve_stop(config_file: Path | None, sets: tuple[str, ...], run_name: str | None, runs_dir: Path | None) -> None:
    """Stop the run's detached server (exactly the process group lf-wrap started).

    Only the run folder is needed (runs/<run_name>/serve.json): a typo elsewhere in the project
    file does not stop this.

    Exit status: 0 stopped (or it had already exited: the stale record is removed), 2 no server
    recorded for the run, or bad input.
    """
    from lf_wrap.steps.serve import stop

    click.echo(stop(_pidfile(config_file, sets, run_name, runs_dir)))


@main.command()
@_config_options
@click.option("--base-url", help="OpenAI-compatible base URL, any server (default: the run's detached server).")
@click.option("--model", "model_name", help="Model name to query (default: the first the server lists).")
@click.option(
    "--api-key", envvar="LF_WRAP_API_KEY", help="Key to send; also checks that a request without it is refused."
)
@click.option("--golden", "golden", help="Registered dataset with prompts and expected answers (default: the run's).")
@click.option(
    "--golden-file",
    type=click.Path(path_type=Path),
    help="A dataset file (alpaca, sharegpt or openai rows) with prompts and expected answers.",
)
@click.option(
    "--dataset-dir",
    type=click.Path(path_type=Path),
    help="Where --golden's dataset_info.json is (default: the project's dataset_dir, else data).",
)
@click.option("--no-golden", is_flag=True, help="Skip the golden-answer check.")
@click.option("--samples", type=click.IntRange(0), default=16, show_default=True, help="Golden rows to try (0: all).")
@click.option(
    "--min-match",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="Fraction of golden answers that must match exactly.",
)
@click.option("--no-thinking", is_flag=True, help="Send chat_template_kwargs enable_thinking=false (Qwen3 style).")
@click.option("--concurrency", type=click.IntRange(1, 256), help="Also run a load test at this concurrency.")
@click.option("--requests", "n_requests", type=click.IntRange(1, 10000), default=32, show_default=True)
@click.option("--max-tokens", type=click.IntRange(1), default=128, show_default=True)
@click.option("--timeout", "timeout_s", type=float, default=30.0, show_default=True, help="Per-request timeout (s).")
@json_option
def check(
    config_file: Path | None,
    sets: tuple[str, ...],
    base_url: str | None,
    model_name: str | None,
    api_key: str | None,
    golden: str | None,
    golden_file: Path | None,
    dataset_dir: Path | None,
    no_golden: bool,
    samples: int,
    min_match: float,
    no_thinking: bool,
    concurrency: int | None,
    n_requests: int,
    max_tokens: int,
    timeout_s: float,
    as_json: bool,
) -> None:
    """Prove that a served model answers, answers like its training data, and how fast.

    \b
    Works with any OpenAI-compatible server. Golden answers are checked when a dataset is
    known (the project's, when it is registered) or given (--golden, --golden-file); else
    that check is skipped, with a note.

    \b
    Examples:
      lf-wrap check                                   # the run's detached server
      lf-wrap check --base-url http://127.0.0.1:8000 --golden magic_conch --min-match 0.8
      lf-wrap check --base-url http://some-host:8000/v1 --model m --golden-file golden.jsonl
      lf-wrap check --concurrency 16 --requests 64

    Exit status: 0 every check passed, 1 a check failed or the server could not be reached or
    answered with an error, 2 bad input.
    """
    from lf_wrap.project.config import PROJECT_FILE, load_project
    from lf_wrap.project.runs import RunFolder
    from lf_wrap.steps.check import Checker, golden_from_dataset, golden_from_file, registered
    from lf_wrap.steps.serve import read_pidfile

    if golden and golden_file:
        raise click.UsageError("give --golden NAME or --golden-file FILE, not both")
    if no_golden and (golden or golden_file):
        raise click.UsageError("--no-golden contradicts --golden/--golden-file: leave one out")
    # A project only where there is one (or no --base-url says which server): any server can be checked.
    project = None
    if base_url is None or config_file is not None or sets or Path(PROJECT_FILE).exists():
        project = load_project(config_file, sets)
    kwargs = None
    if project is not None:
        if base_url is None:
            info = read_pidfile(project.run_dir.resolve() / "serve.json")
            if info is None:
                raise LfWrapError(
                    "no --base-url and no detached server for this run",
                    hint="start one with `lf-wrap serve --detach`, or pass --base-url",
                )
            base_url = info["base_url"]
            model_name = model_name or info.get("served_model_name")
        # A model trained not to think gets the chat-template kwargs it is served with (lf_wrap/model/thinking.py).
        thinking = RunFolder(project.run_dir.resolve()).manifest().get("train", {}).get("thinking") or {}
        kwargs = thinking.get("chat_template_kwargs") or None
    assert base_url is not None
    checker = Checker(base_url, api_key, model_name, timeout_s, no_thinking, max_tokens, chat_template_kwargs=kwargs)
    items = []
    skipped: list[dict[str, str]] = []
    known_dir = dataset_dir or (project.path(project.config.dataset_dir) if project else Path("data"))
    if golden_file is not None:
        items = golden_from_file(golden_file, samples)
    elif golden:
        items = golden_from_dataset(known_dir, golden, samples)
    elif not no_golden:
        names = project.config.datasets if project else []
        missing = next((why for name in names if (why := registered(known_dir, name))), None)
        if not names or missing:
            why = f"the project's dataset is not there ({missing})" if missing else "no dataset known"
            skipped.append({"name": "golden", "reason": f"{why}: pass --golden NAME or --golden-file FILE"})
        else:
            for name in names:
                items += golden_from_dataset(known_dir, name, samples)
    prompts = [g.messages for g in items] or [[{"role": "user", "content": "Hello!"}]]
    results = [checker.models()]
    if results[0].ok:
        results += [checker.chat(), checker.stream()]
        if api_key:
            results.append(checker.auth())
        results.append(checker.stops(prompts[0]))
        if items:
            results.append(checker.golden(items, min_match))
        if concurrency:
            results.append(checker.load(prompts, concurrency, n_requests))
    else:  # asking for a model the server does not serve would only repeat that
        later = ["chat", "stream", *(["auth"] if api_key else []), "stop"]
        later += [*(["golden"] if items else []), *(["load"] if concurrency else [])]
        skipped = [{"name": n, "reason": "the model is not served"} for n in later] + skipped
    ok = all(r.ok for r in results)
    report_line = None
    if project is not None:  # the run's manifest keeps the last check; its report shows it
        from lf_wrap.steps.report import record_check

        checks = [{"name": r.name, "ok": r.ok, "detail": r.detail, **r.data} for r in results]
        report_line = record_check(project.run_dir.resolve(), checker.base_url, checker.model, ok, checks, skipped)
    if as_json:
        payload = {
            "ok": ok,
            "base_url": checker.base_url,
            "model": checker.model,
            "checks": [{"name": r.name, "ok": r.ok, "detail": r.detail, **r.data} for r in results],
            "skipped": skipped,
            "exit_code": 0 if ok else 1,
        }
        if not ok:  # the keys every --json failure has
            failed = ", ".join(r.name for r in results if not r.ok)
            payload |= {"error": f"failed checks: {failed}", "hint": "see each check's detail",
                        "location": checker.base_url}  # fmt: skip
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        for r in results:
            click.echo(f"{'PASS' if r.ok else 'FAIL'}  {r.name:<7} {r.detail}")
            for miss in r.data.get("misses", []) if not r.ok else []:
                click.echo(f"      expected {miss['expected']!r}\n      got      {miss['got']!r}")
                if miss.get("reasoning"):
                    click.echo(f"      reasoning {miss['reasoning']!r}")
        for skip in skipped:
            click.echo(f"SKIP  {skip['name']:<7} {skip['reason']}")
        click.echo(f"{checker.base_url} ({checker.model}): {'all checks passed' if ok else 'FAILED'}")
    if report_line:
        click.echo(report_line, err=as_json)
    sys.exit(0 if ok else 1)


# -- chat --------------------------------------------------------------------------------
@main.command()
@_config_options
@click.option("--base-url", help="OpenAI-compatible base URL, any server (default: the run's detached server).")
@click.option("--model", "model_name", help="Model name (default: the run's served name, else the server's first).")
@click.option("--api-key", envvar="LF_WRAP_API_KEY", help="Key the server wants (or set LF_WRAP_API_KEY).")
@click.option("--system", help="System prompt (in the chat: /system TEXT).")
@click.option(
    "--temperature",
    type=click.FloatRange(0, 2),
    help="Sampling temperature (default: the model's generation_config.json, as the server applies it).",
)
@click.option("--max-tokens", type=click.IntRange(1), default=512, show_default=True, help="Longest answer.")
@click.option("--no-thinking", is_flag=True, help="Thinking models: answer without thinking (enable_thinking=false).")
@click.option("--timeout", "timeout_s", type=float, default=120.0, show_default=True, help="Per-answer timeout (s).")
@click.option("--web", is_flag=True, help="Serve a chat page instead (http://HOST:PORT/).")
@click.option("--host", default="127.0.0.1", show_default=True, help="--web: address to bind; 0.0.0.0 exposes it.")
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True, help="--web: port.")
def chat(
    config_file: Path | None,
    sets: tuple[str, ...],
    base_url: str | None,
    model_name: str | None,
    api_key: str | None,
    system: str | None,
    temperature: float | None,
    max_tokens: int,
    no_thinking: bool,
    timeout_s: float,
    web: bool,
    host: str,
    port: int,
) -> None:
    """Talk to the served model: in the terminal, or in a web page with --web.

    \b
    Examples:
      lf-wrap chat                                    # the run's detached server (lf-wrap serve --detach)
      echo "Who are you?" | lf-wrap chat              # piped: one answer per line of questions
      lf-wrap chat --base-url http://some-host:8000/v1 --model m --system "Be brief."
      lf-wrap chat --web --port 7860                  # a chat page on http://127.0.0.1:7860/

    \b
    In the chat: /reset forgets the conversation, /system TEXT sets the system prompt,
    /exit (or Ctrl-D) quits; Ctrl-C stops an answer and keeps the session. A thinking
    model's reasoning is shown apart from its answer (piped: on stderr). The API key is sent
    by lf-wrap (the web page's server), never by the browser.

    Exit status: 0 done, 1 the server could not be reached or a question got an error
    instead of an answer, 2 bad input (e.g. a model the server does not serve).
    """
    from lf_wrap.steps.chat import Conversation, chat_in_terminal, resolve

    target = resolve(config_file, sets, base_url, model_name, api_key)
    conv = Conversation(
        target,
        system=system,
        temperature=temperature,
        max_tokens=max_tokens,
        thinking=False if no_thinking else None,
        timeout_s=timeout_s,
    )
    if web:
        from lf_wrap.steps.chat_page import serve_page

        serve_page(conv, host, port)
        return
    sys.exit(chat_in_terminal(conv))


# -- eval / report -------------------------------------------------------------------------
# `lf-wrap eval`'s options. A new mode adds its option here and branches at the top of
# `eval_command` (options arrive as one mapping, so nothing else changes).
EVAL_OPTIONS: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
    _config_options,
    _run_options,
    click.option("--dataset", "dataset_ref", metavar="NAME|FILE",
                 help="Rows to compare: a registered dataset or a dataset file (default: the run's held-out rows, "
                 "else its training data)."),
    click.option("--dataset-dir", type=click.Path(path_type=Path),
                 help="Where --dataset's dataset_info.json is (default: the project's dataset_dir)."),
    click.option("--rows", "n_rows", type=click.IntRange(0), default=100, show_default=True,
                 help="Compare this many rows, spread evenly (0: all)."),
    click.option("--base-url", help="Compare two endpoints: the base model's OpenAI-compatible URL (+ --tuned-url)."),
    click.option("--tuned-url", help="The tuned model's OpenAI-compatible URL (with --base-url)."),
    click.option("--base-model", help="Model name at --base-url (default: the first the server lists)."),
    click.option("--tuned-model", help="Model name at --tuned-url (default: the first the server lists)."),
    click.option("--api-key", envvar="LF_WRAP_API_KEY", help="Key for --base-url/--tuned-url (or LF_WRAP_API_KEY)."),
    click.option("--max-tokens", type=click.IntRange(1), default=256, show_default=True, help="Longest answer."),
    click.option("--concurrency", type=click.IntRange(1, 256), default=32, show_default=True,
                 help="Questions in flight at once (vLLM batches them; latencies include the wait)."),
    click.option("--timeout", "timeout_s", type=float, default=120.0, show_default=True,
                 help="Per-answer timeout (s)."),
    click.option("--no-thinking", is_flag=True, help="Send chat_template_kwargs enable_thinking=false (Qwen3 style)."),
    click.option("--no-report", is_flag=True, help="Do not rewrite runs/<name>/report.html."),
    click.option("--preference", is_flag=True,
                 help="For a DPO/KTO run: the log-prob margin (chosen - rejected) of preference pairs before and "
                 "after the run, and where its greedy answers lean (--dataset: held-out pairs)."),
    json_option,
]  # fmt: skip


def _with(options: list[Callable[[Callable[..., Any]], Callable[..., Any]]]) -> Callable[..., Any]:
    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def _eval_preference(o: dict[str, Any]) -> None:
    from lf_wrap.project.config import load_project
    from lf_wrap.steps import evaluate_preference as preference_eval

    if o["base_url"] or o["tuned_url"]:
        raise click.UsageError("--preference measures log-probabilities of the run's models in the training "
                               "environment: it takes no --base-url/--tuned-url")  # fmt: skip
    project = load_project(o["config_file"], _run_sets(o["sets"], o["run_name"], o["runs_dir"]))
    dataset_dir = o["dataset_dir"] or project.path(project.config.dataset_dir)
    result = preference_eval.run_eval(project, o["dataset_ref"], dataset_dir, o["max_tokens"])
    if o["as_json"]:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    for line in preference_eval.summary_lines(result):
        click.echo(line)
    click.echo(f"wrote {result['file']}")


@main.command("eval")
@_with(EVAL_OPTIONS)
def eval_command(**o: Any) -> None:
    """Ask the base model and the tuned model the same questions; score both, side by side.

    \b
    Both answer greedily through vLLM: for a LoRA run, one server with the base model and the
    run's adapter (--enable-lora), so one engine answers for both; a full fine-tune gets two
    servers, one after the other. Rows: --dataset if given, else the run's held-out split
    (val_size, or eval_dataset), else its training data (then the scores show memorisation).
    Per row: exact match, chrF, ROUGE-L (character level for Chinese), latency. Rows where the
    tuned model got worse are listed first. Results: runs/<name>/eval.json and the report.

    \b
    Examples:
      lf-wrap eval                                    # the project's run
      lf-wrap eval --dataset my_test.jsonl --rows 0   # every row of a test file
      lf-wrap eval --base-url http://a:8000/v1 --tuned-url http://b:8000/v1 --dataset test.json

    Exit status: 0 compared, 1 a server failed to start, could not be reached or answered with an
    error, 2 bad input (no run, no adapter, an adapter that does not fit the base model, a
    dataset without answers).
    """
    if o["preference"]:  # log-prob margins of preference pairs (steps/evaluate_preference.py)
        _eval_preference(o)
        return
    from lf_wrap.steps import evaluate

    as_json = o["as_json"]
    base_url, tuned_url = o["base_url"], o["tuned_url"]
    if bool(base_url) != bool(tuned_url):
        raise click.UsageError(
            "give both --base-url and --tuned-url to compare two endpoints (or neither: lf-wrap serves the run's "
            "base model and adapter itself)"
        )
    if (o["base_model"] or o["tuned_model"]) and not base_url:
        raise click.UsageError("--base-model/--tuned-model name models at --base-url/--tuned-url: give those too")
    sets = _run_sets(o["sets"], o["run_name"], o["runs_dir"])
    has_project = o["config_file"] is not None or bool(sets) or Path("lf-wrap.yaml").exists()
    project = None
    if not base_url or has_project:
        from lf_wrap.project.config import load_project

        project = load_project(o["config_file"], sets)
    run = None
    manifest: dict[str, Any] = {}
    if project is not None:
        from lf_wrap.project.runs import RunFolder

        run = RunFolder(project.run_dir.resolve())
        if not base_url and not run.root.is_dir():
            raise LfWrapError(
                f"{run.root}: no such run",
                hint="train it first (`lf-wrap train`), name another with --run NAME, or compare two endpoints "
                "with --base-url/--tuned-url",
            )
        manifest = run.manifest()
    dataset_dir = o["dataset_dir"] or (project.path(project.config.dataset_dir) if project else Path("data"))
    if o["dataset_ref"]:
        rows = evaluate.rows_from_dataset(o["dataset_ref"], dataset_dir, o["n_rows"])
    elif project is not None:
        rows = evaluate.rows_for_run(project, manifest, o["n_rows"])
    else:
        raise click.UsageError("say which rows to compare: --dataset NAME|FILE (or run it in a project)")
    thinking = (manifest.get("train") or {}).get("thinking") or {}
    opts = {
        "timeout_s": o["timeout_s"],
        "no_thinking": o["no_thinking"],
        "max_tokens": o["max_tokens"],
        "concurrency": o["concurrency"],
        "chat_template_kwargs": thinking.get("chat_template_kwargs") or None,
    }
    if base_url:
        p = evaluate.Plan(
            rows, "two endpoints given with --base-url/--tuned-url",
            evaluate.Side("base", base_url, o["base_model"], base_url),
            evaluate.Side("tuned", tuned_url, o["tuned_model"], tuned_url), run,
        )  # fmt: skip
    else:
        assert project is not None and run is not None
        p = evaluate.plan_run(project, rows, run)
    click.echo(f"eval: {rows.describe()}", err=True)
    click.echo(f"eval: {p.how}", err=True)
    result = evaluate.execute(p, o["api_key"], opts)
    report_line = None
    if run is not None and run.root.is_dir():
        result["file"] = str(evaluate.record(run, result))
        if not o["no_report"]:
            from lf_wrap.steps.report import try_write

            report_line = try_write(run.root)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
        if report_line:
            click.echo(report_line, err=True)
        return
    for line in evaluate.summary_lines(result):
        click.echo(line)
    if report_line:
        click.echo(report_line)


@main.command()
@_config_options
@_run_options
@click.option("--open", "open_it", is_flag=True, help="Open the page in the default web browser.")
@json_option
def report(
    config_file: Path | None,
    sets: tuple[str, ...],
    run_name: str | None,
    runs_dir: Path | None,
    open_it: bool,
    as_json: bool,
) -> None:
    """Write runs/<name>/report.html: one self-contained page to judge the run.

    \b
    Loss and learning-rate curves (train, and eval loss with a validation split), the
    dataset's token lengths against cutoff_len, the template check, every hyperparameter
    with where it came from, `lf-wrap eval`'s tuned-vs-base table with the worst regressions,
    the last `lf-wrap check`, and the versions and hashes of the run. No network needed to
    view it (inline SVG, no scripts). Parts the run does not have yet are listed, with the
    command that makes them. `train`, `eval` and `check` rewrite it too.

    \b
    Examples:
      lf-wrap report                                  # the project's run
      lf-wrap report --run try2 --open

    Exit status: 0 written, 2 no such run folder.
    """
    from lf_wrap.project.runs import locate_run_dir
    from lf_wrap.steps.report import write

    run_dir = locate_run_dir(config_file, sets, run_name, runs_dir)
    path, missing = write(run_dir)
    if as_json:
        click.echo(json.dumps({"report": str(path), "missing": missing}, ensure_ascii=False, indent=2))
        return
    for item in missing:
        click.echo(f"missing: {item}", err=True)
    click.echo(f"report: {path}")
    if open_it:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())


if __name__ == "__main__":  # pragma: no cover
    main()
