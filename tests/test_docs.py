"""The README's console blocks and docs/cli.md are generated from real runs (docs/docgen.py,
`make docs`); these tests fail when either has drifted from what lf-wrap prints.

- docs/cli.md (every command's --help): exactly, in the fast tier (click renders it in-process).
- README blocks that need no engine (model pull/tiny, data validate/register/stats, init,
  render): re-run for real in a temporary folder and compared exactly, in the fast tier
  (~10 s: building the tiny model, loading its tokenizer and init's template check; that check
  is remembered in the session's cache, where the other tests find it).
- The whole tour (real training, export, vLLM serving, template checks): the slow tier replays
  it and compares each block; where a number is never the same twice (losses, timings, pids,
  ports, token rates) or the machine words a line its own way, the comparison masks exactly
  that (`docgen.normalize`, `Block.vary`) and holds every other character.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))

import docgen  # noqa: E402

STALE = "stale: regenerate with `make docs` (docs/docgen.py)"
# The README shows the commands users run: vLLM as it comes, compiled (not the suite's --enforce-eager).
pytestmark = pytest.mark.usefixtures("compiled_vllm")


def test_the_cli_reference_is_every_commands_help_exactly():
    assert docgen.cog_files([docgen.CLI_MD], check=True) == 0, "docs/cli.md is stale: `python docs/docgen.py --cli`"


def test_every_generated_readme_block_is_in_the_session_and_back():
    assert set(docgen.readme_blocks()) == {b.name for b in docgen.session()}


def test_the_readme_shows_no_path_of_the_machine_it_was_made_on():
    text = docgen.README.read_text(encoding="utf-8")
    assert str(ROOT) not in text and "/tmp/lf-wrap-docs-" not in text


@pytest.mark.edit_loop  # make test runs the whole tour below, these blocks included
def test_the_readmes_quick_blocks_are_what_lf_wrap_prints_now():
    readme = docgen.readme_blocks()
    quick = [b for b in docgen.session() if b.fast]
    assert {b.name for b in quick} >= {"validate", "register", "stats", "init", "render"}
    for block, text in docgen.run_session(quick, cache_dir=Path(os.environ["LF_WRAP_CACHE_DIR"])):
        assert block.comparable(readme[block.name]) == block.comparable(text), f"README block {block.name!r} is {STALE}"


def test_the_readmes_benchmark_table_is_what_bench_results_json_holds():
    docgen.RESULTS.update(docgen.readme_blocks())  # the console blocks as they are: only the table is checked
    try:
        assert docgen.cog_files([docgen.README], check=True) == 0, (
            "README benchmark table: `python docs/docgen.py --bench`"
        )
    finally:
        docgen.RESULTS.clear()


@pytest.mark.slow
def test_the_whole_readme_tour_is_what_lf_wrap_prints_now():
    """Real training, export, serving and template checks, in the README's order."""
    readme = docgen.readme_blocks()
    for block, text in docgen.run_session():
        assert block.comparable(readme[block.name]) == block.comparable(text), f"README block {block.name!r} is {STALE}"


def test_normalize_masks_what_varies_and_keeps_the_rest():
    a = "$ OMP_NUM_THREADS=1 LD_PRELOAD=/x/libtcmalloc.so python -m vllm --port 8000\nready in 23 s (pid 8547)"
    b = "$ python -m vllm --port 8001\nnote: tcmalloc is missing\nready in 31 s (pid 912)"
    assert docgen.normalize(a) == docgen.normalize(b) == "$ python -m vllm --port N\nready in N s (pid N)"
    assert docgen.normalize("global batch size 8") != docgen.normalize("global size 8")


def test_transcripts_keep_the_first_and_last_progress_line():
    lines = ["$ engine", "train: step 1", "train: step 2", "train: step 3", "trained"]
    assert docgen.first_and_last("train: step")(lines) == [
        "$ engine",
        "train: step 1",
        "...",
        "train: step 3",
        "trained",
    ]


# -- lf-wrap --help: the pipeline's order -----------------------------------------------------
def test_help_lists_the_commands_in_pipeline_order_then_the_rest():
    from lf_wrap.cli import main

    out = CliRunner().invoke(main, ["--help"], terminal_width=100).output
    listed = [line.split()[0] for line in out.split("Commands:\n")[1].splitlines() if line.strip()]
    path = ["model", "data", "init", "train", "export", "serve", "check"]
    assert listed[: len(path)] == path
    assert {"render", "template", "launch-plan"} <= set(listed[len(path) :])
    for step in ("model pull", "data validate", "init", "train --dry-run", "train", "export", "serve", "check"):
        assert f"lf-wrap {step}" in out  # the whole typical path, spelled out


def test_a_command_the_order_does_not_name_is_listed_after_it():
    from lf_wrap.cli import Group

    @click.group(cls=Group, order=("train", "gone", "export"))
    def cli() -> None:
        pass

    for name in ("zebra", "export", "alpha", "train"):
        cli.add_command(click.Command(name, callback=lambda: None))
    with click.Context(cli) as ctx:
        assert cli.list_commands(ctx) == ["train", "export", "alpha", "zebra"]


def test_every_lf_wrap_path_the_docs_and_comments_name_exists():
    """A moved file leaves no stale path behind in the README, the templates or the code's own comments:
    a path under lf_wrap/, or one under a layer's folder (steps/, model/, ...). A bare data/ path is also
    the work folder's and LLaMA-Factory's, so only the full form counts for that folder."""
    import re

    named = re.compile(
        r"\blf_wrap/[\w/]+\.(?:py|json)\b|(?<![\w/])(?:cli|steps|project|model|engines|util)/[\w/]+\.py\b"
    )
    sources = [docgen.README, *ROOT.glob("templates/**/*.j2"), *ROOT.glob("templates/**/*.html"),
               *ROOT.glob("lf_wrap/**/*.py"), *ROOT.glob("tests/*.py"), *ROOT.glob("bench/*.py")]  # fmt: skip
    missing = []
    for src in sources:
        for path in named.findall(src.read_text(encoding="utf-8")):
            if not (ROOT / path if path.startswith("lf_wrap/") else ROOT / "lf_wrap" / path).exists():
                missing.append(f"{src.relative_to(ROOT)}: {path}")
    assert sorted(set(missing)) == []
