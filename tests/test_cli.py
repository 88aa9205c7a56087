"""The command line as a whole: fast start, help texts, error conventions."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lf_wrap.cli import main

from .helpers import commands

HEAVY = ("torch", "transformers", "vllm", "llamafactory", "tokenizers", "openai")


def test_help_does_not_import_heavy_packages():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from lf_wrap.cli import main\n"
        "r = CliRunner().invoke(main, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "for sub in (['data', '--help'], ['data', 'validate', '--help'], ['render', '--help'], ['model', '--help']):\n"
        "    assert CliRunner().invoke(main, sub).exit_code == 0\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def loaded_after_validate(data, watched: tuple[str, ...]) -> list[str]:
    """Which of `watched` a fresh interpreter has imported after `lf-wrap data validate DATA`."""
    code = (
        "import json, sys\n"
        "from click.testing import CliRunner\n"
        "from lf_wrap.cli import main\n"
        f"r = CliRunner().invoke(main, ['data', 'validate', {str(data)!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        f"print(json.dumps(sorted(m for m in {watched!r} if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_validate_does_not_import_heavy_packages(tmp_path):
    data = tmp_path / "d.json"
    data.write_text('[{"instruction": "q", "output": "a"}]')
    assert loaded_after_validate(data, HEAVY) == []


# What `data validate FILE` has no use for: the project file and templates (render, config, jinja2,
# yaml, pydantic), the dataset registry's locks (filelock), HTTP and terminal UI libraries, and numpy
# (duplicates are found without it below 2M rows). Loading them was most of its start-up.
NOT_FOR_VALIDATE = (
    "jinja2", "yaml", "pydantic", "filelock", "httpx", "rich", "numpy", "tqdm",
    "lf_wrap.util.render", "lf_wrap.project.config", "lf_wrap.util.files", "lf_wrap.data.registry",
    # the other command groups' modules (loaded only when their command runs) and the layers above data/
    "lf_wrap.cli.train", "lf_wrap.cli.serve", "lf_wrap.cli.evaluate", "lf_wrap.steps", "lf_wrap.project",
    "lf_wrap.engines",
)  # fmt: skip


def test_validate_of_a_file_loads_only_the_reader_and_the_checks(tmp_path):
    data = tmp_path / "d.jsonl"  # more rows than the small-file duplicate search takes
    data.write_text("".join(f'{{"instruction": "q{i}", "output": "a"}}\n' for i in range(10_001)))
    assert loaded_after_validate(data, NOT_FOR_VALIDATE + HEAVY) == []


@pytest.mark.parametrize("path", list(commands(main)), ids=" ".join)
def test_every_command_has_help(run, path):
    result = run(*path, "--help")
    assert result.exit_code == 0
    assert "Usage: " in result.stdout


def test_usage_errors_exit_2_with_a_message(run):
    result = run("data", "validate")
    assert result.exit_code == 2
    assert "give a FILE to check (or --dataset-dir DIR --name NAME)" in result.stderr
    result = run("data", "validate", "--name", "x")
    assert result.exit_code == 2
    assert "--dataset-dir and --name go together" in result.stderr


def test_console_script_runs(tmp_path):
    exe = __import__("shutil").which("lf-wrap") or str(__import__("pathlib").Path(sys.executable).parent / "lf-wrap")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("lf-wrap, version ")


def test_every_command_has_a_help_page_and_every_page_a_command():
    """Each command's --help text is a page, cli/help/<command words joined by ->.txt; none is left over."""
    from lf_wrap.cli.options import HELP_PAGES

    named = {"-".join(path) or "lf-wrap" for path in [(), *commands(main)]}
    assert {p.stem for p in HELP_PAGES.glob("*.txt")} == named


def test_a_help_page_keeps_its_examples_as_written(run):
    """A `\\b` line in a page stops click re-wrapping the lines after it (examples stay one per line)."""
    out = run("train", "--help").stdout
    assert "  lf-wrap train --dry-run\n" in out and "\\b" not in out


def test_command_bodies_stay_short():
    """cli/ parses options and prints: a command's body that grows past ~30 lines has work for steps/ in it."""
    import ast
    from pathlib import Path

    long = []
    for path in (Path(__file__).resolve().parent.parent / "lf_wrap" / "cli").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.body:
                lines = node.body[-1].end_lineno - node.body[0].lineno + 1
                if lines > 30:
                    long.append(f"{path.name}:{node.lineno} {node.name}: {lines} lines")
    assert long == []
