"""The layout's one rule, read from the code: each layer imports only the layers below it.

    cli/        option parsing and printing; the only layer that imports click
    steps/      one module per verb (train, export, serve, check, eval, chat, report, init, ...)
    project/    the project file, its recipe for LLaMA-Factory, runs, stages, the target of a command
    model/      a model folder: checks, hub, tokenizer, EOS, thinking, its chat template
    data/  engines/   datasets; the programs lf-wrap drives (side by side: neither imports the other)
    util/       errors, files, processes, paths, rendering, progress

engines/inside/ holds programs that run in the training or serving environment, where lf-wrap
is not installed: they import nothing of lf_wrap. Every import counts, also one inside a function
or under TYPE_CHECKING, as tests/test_cli.py counts what `--help` loads.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lf_wrap"
RANK = {"cli": 6, "steps": 5, "project": 4, "model": 3, "data": 2, "engines": 2, "util": 1}
INSIDE = PACKAGE / "engines" / "inside"


def layer(module: str) -> str:
    """lf_wrap.steps.train -> steps; lf_wrap (the package itself: its version) -> ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, relative ones made absolute."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = module.split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], *([base] if base else [])])
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]  # `from lf_wrap import x`
    return found


def problems(path: Path, module: str) -> list[str]:
    """Every import of `path` (the module `module`) that breaks the rule, with its line."""
    own = layer(module) if layer(module) in RANK else ""  # lf_wrap/__init__.py, __main__.py: above the layers
    found = imports(path, module)
    if module.startswith("lf_wrap.engines.inside"):
        return [
            f"line {n}: {m} (runs where lf-wrap is not installed)" for n, m in found if m.split(".")[0] == "lf_wrap"
        ]
    wrong = []
    for line, target in found:
        if target.split(".")[0] == "click" and own != "cli" and module != "lf_wrap.__main__":
            wrong.append(f"line {line}: click (only cli/ parses options and prints)")
        if not target.startswith("lf_wrap.") or own == "":
            continue
        other = layer(target)
        if target.startswith("lf_wrap.engines.inside"):
            wrong.append(f"line {line}: {target} (run by path in another environment, never imported)")
        elif other in RANK and other != own and RANK[other] >= RANK[own]:
            wrong.append(f"line {line}: {target} ({own}/ may import only layers below it)")
    return wrong


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_is_in_a_layer():
    stray = [p for p in modules() if p.parent == PACKAGE and p.name not in ("__init__.py", "__main__.py")]
    assert stray == [], "a module beside the layers: put it in the folder of its layer"
    assert {p.relative_to(PACKAGE).parts[0] for p in modules() if p.parent != PACKAGE} == set(RANK)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path):
    wrong = problems(path, module_name(path))
    assert wrong == [], f"{path.relative_to(PACKAGE)}:\n" + "\n".join(wrong)


def test_the_rule_catches_what_it_is_for(tmp_path):
    """The checker itself: an upward import (absolute or relative), a sideways one between data/ and
    engines/, click below cli/, and lf_wrap inside engines/inside/ are all found."""
    probe = tmp_path / "probe.py"
    probe.write_text("import click\nfrom lf_wrap.steps import train\nfrom ..project import config\n"
                     "from lf_wrap.engines import vllm\nfrom lf_wrap.util.files import atomic_write\n")  # fmt: skip
    wrong = problems(probe, "lf_wrap.model.probe")
    assert any("click" in w for w in wrong) and any("lf_wrap.steps" in w for w in wrong)
    assert any("lf_wrap.project" in w for w in wrong) and not any("lf_wrap.engines" in w for w in wrong)
    assert not any("util" in w for w in wrong)
    assert any("lf_wrap.engines" in w for w in problems(probe, "lf_wrap.data.probe"))  # side by side, not down
    assert problems(probe, "lf_wrap.engines.inside.probe")  # nothing of lf_wrap at all
    assert not [w for w in problems(probe, "lf_wrap.cli.probe") if "click" in w]
