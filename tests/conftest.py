"""Shared fixtures: an isolated working directory per test and a CLI runner."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
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
# depend on it. The README tour, the path users run, keeps vLLM's default, compiled (`compiled_vllm`
# below; the real model's starts compiled for 101 s each in CI, so it runs eager like the rest);
# commands run in-process (`run`) print what users see.
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
# the real model ~25 min, the five families ~11, the benchmarks' smoke runs ~8, the serve checks ~7,
# the README tour ~5 ...): with two workers each file runs whole on one of them (--dist loadfile), and a long
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
    """lf-wrap's cache (remembered template checks) lives in the session's temp folder, never in
    ~/.cache: one for all workers (its entries are content-addressed and written atomically), so a
    check one worker ran is remembered by the other."""
    cache = shared_folder(tmp_path_factory) / "lf-wrap-cache"
    cache.mkdir(exist_ok=True)
    os.environ["LF_WRAP_CACHE_DIR"] = str(cache)


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


def shared_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's temp folder that every pytest-xdist worker sees: pytest-of-<user>/pytest-N/,
    above each worker's popen-gwK/ (the session's own folder without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], Any]) -> tuple[Path, Any]:
    """`build(folder)` once for the whole session, not once per pytest-xdist worker (the recipe in
    pytest-xdist's docs: the first worker to ask builds under a file lock in the folder the workers
    share; the others wait for it). Returns the shared folder, read-only from then on, and what
    `build` returned (JSON)."""
    from filelock import FileLock

    shared = shared_folder(tmp_path_factory)
    folder, record = shared / name, shared / f"{name}.json"
    with FileLock(str(shared / f"{name}.lock")):
        if not record.is_file():
            record.write_text(json.dumps(build(folder)))
    return folder, json.loads(record.read_text())


def copy_of(tmp_path_factory: pytest.TempPathFactory, src: Path, name: str) -> Path:
    """A worker's own copy of a shared folder: the absolute paths written inside it (train.yaml,
    manifest.json, adapter_config.json, logs) point at the copy, as if it had been made there."""
    import shutil

    dst = tmp_path_factory.mktemp(name) / src.name
    shutil.copytree(src, dst)
    old, new = str(src).encode(), str(dst).encode()
    for path in dst.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.stat().st_size < 4_000_000:
            data = path.read_bytes()
            if old in data and b"\0" not in data:
                path.write_bytes(data.replace(old, new))
    return dst


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's tiny model (a trained tokenizer, random weights: ~10 s), built once per test session."""
    from lf_wrap.model.tiny import build

    def make(out: Path) -> None:
        build(out, DATASETS, seed=0)

    shared, _ = built_once(tmp_path_factory, "tiny-qwen2", make)
    return copy_of(tmp_path_factory, shared, "tiny")


@pytest.fixture(scope="session")
def tiny_family(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Callable[[str], Path]:
    """`tiny_family("llama3")`: that family's tiny look-alike, built once per session (qwen2.5 is tiny_model)."""
    from lf_wrap.model.tiny import build

    built: dict[str, Path] = {"qwen2.5": tiny_model}

    def get(name: str) -> Path:
        if name not in built:

            def make(out: Path) -> None:
                build(out, DATASETS, seed=0, family_name=name)

            shared, _ = built_once(tmp_path_factory, f"tiny-{name}", make)
            built[name] = copy_of(tmp_path_factory, shared, "tiny")
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


@dataclass(frozen=True)
class Ran:
    """What a test reads of a command's result (CliRunner's Result, kept as text across workers)."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def _train_demo(root: Path, tiny_model: Path) -> dict[str, Ran]:
    """register + train + export of the demo in `root`, through the real llamafactory-cli."""
    import shutil

    from lf_wrap.util.paths import demo_project

    shutil.copytree(tiny_model, root / "models" / "tiny-qwen2")
    shutil.copy(demo_project(), root / "lf-wrap.yaml")
    cfg = str(root / "lf-wrap.yaml")
    runner = CliRunner()
    done: dict[str, Ran] = {}
    for step, args in (
        ("register", ["data", "register", str(DATASETS / "magic_conch.json"), "--name", "magic_conch",
                      "--dataset-dir", str(root / "data")]),
        ("train", ["train", "--config", cfg, "--set", f"seed={TRAIN_SEED}"]),
        ("export", ["export", "--config", cfg]),
    ):  # fmt: skip
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
        done[step] = Ran(result.exit_code, result.stdout, result.stderr)
    return done


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> dict[str, Any]:
    """One real train + export of the demo (through llamafactory-cli), shared by the tests
    that need a fine-tuned model. A copy of the demo project file (examples/magic_conch.yaml)
    in this folder: a copy's relative paths are relative to its own folder.

    Trained once for the whole session (~2 min), not once per worker (built_once); each worker
    works on its own copy, so its servers, exports and manifests never meet the other's."""
    shared, ran = built_once(tmp_path_factory, "trained-demo",
                             lambda root: {k: vars(v) for k, v in _train_demo(root, tiny_model).items()})  # fmt: skip
    root = copy_of(tmp_path_factory, shared, "project")
    here = {k: Ran(v["exit_code"], *(v[f].replace(str(shared), str(root)) for f in ("stdout", "stderr")))
            for k, v in ran.items()}  # fmt: skip
    return {"root": root, "config": str(root / "lf-wrap.yaml"), "train": here["train"], "export": here["export"],
            "run": root / "runs" / "magic-conch"}  # fmt: skip
