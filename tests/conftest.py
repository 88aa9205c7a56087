"""Shared fixtures: an isolated working directory per test and a CLI runner."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from lf_wrap.cli import main
from lf_wrap.engines.vllm import ARGS_ENV as VLLM_ARGS_ENV

from .browser import browser  # noqa: F401  (the headless-Chromium fixture, for every test module)

REPO = Path(__file__).resolve().parent.parent
DATASETS = REPO / "datasets"
# The end-to-end tests train the demo with a seed drawn from those bench/demo_sweep.py
# proves (0-19), not one tuned seed; LF_WRAP_TEST_SEED=N replays a run (the seed is in
# pytest's header). Drawn once, in the process that starts the others: `make test` runs
# two pytest-xdist workers, which inherit the variable and so train with the same seed.
os.environ["LF_WRAP_TEST_SEED"] = os.environ.get("LF_WRAP_TEST_SEED") or str(random.SystemRandom().randrange(20))
TRAIN_SEED = int(os.environ["LF_WRAP_TEST_SEED"])

# Under pytest-xdist the workers' engines share the CPUs: each training or generating process
# gets its share of threads (one each for two workers on two cores). Two processes of two
# OpenMP threads each on two cores stall at every barrier (measured: the real model's replay
# answers 10 min instead of ~3, a family's training 4 min instead of ~1.5).
if os.environ.get("PYTEST_XDIST_WORKER"):
    from lf_wrap.engines.vllm import usable_cpus

    _share = max(1, usable_cpus() // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1))
    for _key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_key, str(_share))

# Every vLLM server the tests start skips torch.compile (`--enforce-eager`, through lf-wrap's
# LF_WRAP_VLLM_ARGS): about 25 s of every start on 2 CPUs, paid again for each new model path, i.e.
# for nearly every server here; what the tests assert (answers, stop tokens, token ids) does not
# depend on it. The tests of the path users run keep vLLM's default, compiled: the README tour
# and the real model (`compiled_vllm` below); commands run in-process (`run`) print what users see.
EAGER = "--enforce-eager"
os.environ.setdefault(VLLM_ARGS_ENV, EAGER)


@pytest.fixture(scope="module")
def compiled_vllm() -> Any:
    """vLLM as users get it (compiled) for a whole module: `pytestmark = pytest.mark.usefixtures(...)`."""
    with pytest.MonkeyPatch.context() as patch:
        if os.environ.get(VLLM_ARGS_ENV) == EAGER:
            patch.delenv(VLLM_ARGS_ENV)
        yield


# The files that take longest start first (durations of a clean-clone `make test --durations`:
# the real model ~18 min, the five families ~10, the benchmarks' smoke runs ~7, the README tour
# ~4 ...): with two workers each file runs whole on one of them (--dist loadfile), and a long
# file met last would leave the other worker idle for its length.
SLOWEST_FIRST = (
    "test_real_model.py",
    "test_families.py",
    "test_bench.py",
    "test_docs.py",
    "test_serve_check.py",
    "test_distributed.py",
    "test_chat_real.py",
    "test_eval_served.py",
    "test_preference_train.py",
    "test_template_check.py",
    "test_serve_auth.py",
    "test_train_export.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


def pytest_report_header() -> str:
    return f"lf-wrap demo training seed: {TRAIN_SEED} (replay with LF_WRAP_TEST_SEED={TRAIN_SEED})"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """lf-wrap's cache (remembered template checks) lives in the session's temp folder, never in ~/.cache."""
    os.environ["LF_WRAP_CACHE_DIR"] = str(tmp_path_factory.mktemp("lf-wrap-cache"))


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own empty folder, never in the checkout."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def run() -> Callable[..., Result]:
    """lf-wrap in-process. An exception that escapes a command (what the user would see as a
    traceback) is raised out of the runner and fails the test at once (catch_exceptions=False).
    The commands it prints are the ones users get: without the suite's LF_WRAP_VLLM_ARGS (a test
    that sets its own keeps it)."""

    def invoke(*args: str, input: str | None = None) -> Result:
        env = {VLLM_ARGS_ENV: None} if os.environ.get(VLLM_ARGS_ENV) == EAGER else {}
        return CliRunner(env=env).invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, Any], Path]:
    """Write a dataset file: a list/dict is dumped as JSON, a str or bytes written as is."""

    def _write(name: str, content: Any) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_text(json.dumps(content, ensure_ascii=False, indent=2), encoding="utf-8")
        return path

    return _write


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's tiny model, built once per test session."""
    from lf_wrap.model.tiny import build

    out = tmp_path_factory.mktemp("tiny") / "tiny-qwen2"
    build(out, DATASETS, seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_family(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Callable[[str], Path]:
    """`tiny_family("llama3")`: that family's tiny look-alike, built once per session (qwen2.5 is tiny_model)."""
    from lf_wrap.model.tiny import build

    built: dict[str, Path] = {"qwen2.5": tiny_model}

    def get(name: str) -> Path:
        if name not in built:
            out = tmp_path_factory.mktemp("tiny") / f"tiny-{name}"
            build(out, DATASETS, seed=0, family_name=name)
            built[name] = out
        return built[name]

    return get


@pytest.fixture
def project(tmp_path: Path, tiny_model: Path, run: Callable[..., Result]) -> Path:
    """A project folder (the current directory): the tiny model, the demo dataset registered."""
    import shutil

    shutil.copytree(tiny_model, tmp_path / "models" / "tiny-qwen2")
    reg = run("data", "register", DATASETS / "magic_conch.json", "--name", "magic_conch", "--dataset-dir", "data")
    assert reg.exit_code == 0, reg.output
    return tmp_path


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> dict[str, Any]:
    """One real train + export of the demo (through llamafactory-cli), shared by the tests
    that need a fine-tuned model. A copy of the demo project file (examples/magic_conch.yaml)
    in this folder: a copy's relative paths are relative to its own folder."""
    import shutil

    from lf_wrap.util.paths import demo_project

    root = tmp_path_factory.mktemp("project")
    shutil.copytree(tiny_model, root / "models" / "tiny-qwen2")
    shutil.copy(demo_project(), root / "lf-wrap.yaml")
    cfg = str(root / "lf-wrap.yaml")
    runner = CliRunner()
    reg = runner.invoke(main, ["data", "register", str(DATASETS / "magic_conch.json"), "--name", "magic_conch",
                               "--dataset-dir", str(root / "data")])  # fmt: skip
    assert reg.exit_code == 0, reg.output
    train = runner.invoke(main, ["train", "--config", cfg, "--set", f"seed={TRAIN_SEED}"])
    assert train.exit_code == 0, train.output
    export = runner.invoke(main, ["export", "--config", cfg])
    assert export.exit_code == 0, export.output
    return {"root": root, "config": cfg, "train": train, "export": export, "run": root / "runs" / "magic-conch"}
