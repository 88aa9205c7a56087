"""One `make setup` for both kinds of machine: the Makefile picks the CPU or the CUDA locks (by
`nvidia-smi`, or LF_WRAP_TARGET), and the CUDA locks resolve against the package registry as they
are, without downloading a wheel (pip's --dry-run reads the registry's metadata files): what a GPU
machine installs holds together even though no GPU machine ran it here."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from .conftest import REPO


def make_dry(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "LF_WRAP_TARGET")}
    return subprocess.run(["make", "-n", "-C", str(REPO), *args], capture_output=True, text=True, env=env,
                          check=False)  # fmt: skip


def test_the_target_picks_the_serving_lock_and_a_wrong_target_is_refused():
    cuda = make_dry("-B", "setup-serve", "LF_WRAP_TARGET=cuda")
    assert "-r requirements/serve-cuda.lock" in cuda.stdout and "torch==2.13.0" not in cuda.stdout
    assert "rebuilding .venvs/serve" in cuda.stdout  # a CPU environment is not reused for CUDA
    cpu = make_dry("-B", "setup-serve", "LF_WRAP_TARGET=cpu")
    assert "--no-deps -r requirements/serve.lock" in cpu.stdout and "torch==2.13.0" in cpu.stdout
    train = make_dry("-B", "setup-train", "LF_WRAP_TARGET=cuda")
    assert "-r requirements/train-cuda.lock" in train.stdout
    wrong = make_dry("setup-serve", "LF_WRAP_TARGET=gpu")
    assert wrong.returncode != 0 and "LF_WRAP_TARGET must be cpu or cuda, not 'gpu'" in wrong.stderr


def pins(*locks: str) -> dict[str, str]:
    out = {}
    for lock in locks:
        for line in (REPO / lock).read_text().splitlines():
            m = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line)
            if m:
                out[_norm(m[1])] = m[2]
    return out


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# The CUDA lock sets the tests below resolve: both at once (one module fixture), since each is
# minutes of waiting on the registry's metadata, not of CPU.
CUDA_SETS = {
    "serving": ("requirements/serve-cuda.lock",),
    "training": ("requirements/train.lock", "requirements/train-cuda.lock"),
}


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """What pip would install for each of CUDA_SETS on this platform, from the registry's metadata."""
    tmp = tmp_path_factory.mktemp("locks")
    running = {}
    for name, locks in CUDA_SETS.items():
        files = [x for lock in locks for x in ("-r", str(REPO / lock))]
        running[name] = subprocess.Popen(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
             "--disable-pip-version-check", "--report", str(tmp / f"{name}.json"), *files],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
    out = {}
    for name, proc in running.items():
        _, stderr = proc.communicate(timeout=1200)
        if proc.returncode != 0 and re.search(r"(?i)(connection|network is unreachable|name resolution|timed out)",
                                              stderr):  # fmt: skip
            pytest.skip(f"the package registry is not reachable: {stderr.strip().splitlines()[-1]}")
        assert proc.returncode == 0, stderr[-3000:]
        report = json.loads((tmp / f"{name}.json").read_text())
        out[name] = {_norm(i["metadata"]["name"]): i["metadata"]["version"] for i in report["install"]}
    return out


@pytest.mark.slow  # ~2 min of metadata downloads (both sets at once)
def test_the_cuda_serving_lock_resolves_to_exactly_its_pins(resolved):
    got = resolved["serving"]
    assert got == pins(*CUDA_SETS["serving"])  # complete (nothing unpinned pulled in) and consistent (pip agrees)
    assert got["vllm"] == "0.33.0" and got["torch"].startswith("2.")


@pytest.mark.slow
def test_the_cuda_training_locks_resolve_with_qlora_and_deepspeed(resolved):
    got = resolved["training"]
    assert got == pins(*CUDA_SETS["training"])
    assert "bitsandbytes" in got and "deepspeed" in got
