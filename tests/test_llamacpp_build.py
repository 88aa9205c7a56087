"""Finding and building llama.cpp (lf_wrap/engines/llamacpp.py, llamacpp_build.py) without building
it: the build key follows the CPU's instruction sets, a failed build step shows the end of its log,
and a half-built folder is never taken for a build. The real build is `make setup-llamacpp`
(make test runs it first), and tests/test_gguf.py uses it."""

from __future__ import annotations

import sys

import pytest

from lf_wrap.engines import llamacpp
from lf_wrap.engines.llamacpp import LlamaCpp, cpu_key
from lf_wrap.engines.llamacpp_build import _run
from lf_wrap.util.errors import ExternalError, LfWrapError


def test_the_build_key_changes_with_the_cpus_instruction_sets(tmp_path):
    avx2, avx512 = tmp_path / "avx2", tmp_path / "avx512"
    avx2.write_text("processor : 0\nflags : fpu sse avx avx2\n")
    avx512.write_text("processor : 0\nflags : fpu sse avx avx2 avx512f avx512bw\n")
    same_flags_other_order = tmp_path / "same"
    same_flags_other_order.write_text("flags : avx2 avx sse fpu\n")
    assert cpu_key(avx2) != cpu_key(avx512)  # an AVX-512 build would die with SIGILL on an AVX2 CPU
    assert cpu_key(avx2) == cpu_key(same_flags_other_order)
    unknown = cpu_key(tmp_path / "missing")  # no /proc/cpuinfo (not Linux): a key all the same, never an error
    assert unknown != cpu_key(avx2) and len(unknown.rsplit("-", 1)[1]) == 10


def test_a_folder_without_the_server_binary_is_not_a_build_and_the_message_says_how_to_build(tmp_path, monkeypatch):
    half = tmp_path / "half"
    (half / "src").mkdir(parents=True)
    (half / "src" / "convert_hf_to_gguf.py").write_text("")
    assert LlamaCpp.at(half) is None  # e.g. interrupted before the binaries were copied
    (half / "bin").mkdir()
    (half / "bin" / "llama-server").write_text("")
    found = LlamaCpp.at(half)
    assert found is not None and found.converter == half / "src" / "convert_hf_to_gguf.py"
    checkout = tmp_path / "checkout"  # a llama.cpp source checkout built with CMake
    (checkout / "build" / "bin").mkdir(parents=True)
    (checkout / "build" / "bin" / "llama-server").write_text("")
    (checkout / "convert_hf_to_gguf.py").write_text("")
    assert LlamaCpp.at(checkout) == LlamaCpp(checkout, checkout / "build" / "bin", checkout)
    monkeypatch.setenv("LF_WRAP_LLAMACPP", str(tmp_path / "nowhere"))
    with pytest.raises(LfWrapError, match=r"llama\.cpp not found") as err:
        LlamaCpp.find()
    assert "make setup-llamacpp" in str(err.value) and "LF_WRAP_LLAMACPP" in str(err.value)


def test_a_failed_build_step_shows_the_end_of_its_log_and_keeps_it(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    llamacpp.cache_root().mkdir(parents=True)
    log = tmp_path / "build.log"
    step = [sys.executable, "-c", "print('compiling ggml.c'); print('error: no such flag -mavx9'); raise SystemExit(3)"]
    with pytest.raises(ExternalError, match=r"building llama-server failed \(exit 3\)") as err:
        _run(step, log, "building llama-server")
    assert "error: no such flag -mavx9" in err.value.message
    kept = llamacpp.cache_root() / "last-build.log"
    assert kept.is_file() and str(kept) in str(err.value.hint) and "apt-get install cmake g++" in str(err.value.hint)
