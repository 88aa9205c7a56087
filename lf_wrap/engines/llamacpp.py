"""llama.cpp as an engine: where its build is, and the exact command lines for its converter
(`convert_hf_to_gguf.py`, run in the training environment: it needs torch and transformers),
`llama-quantize` and `llama-server` (OpenAI-compatible, with /tokenize and /apply-template).

llama.cpp has no Linux binaries on PyPI and no Debian package, so `make setup-llamacpp`
(engines/llamacpp_build.py) builds it from the source pinned in requirements/llamacpp.lock
(llama-cpp-python's sdist, which vendors llama.cpp at one commit) into

    ~/.cache/lf-wrap/llama.cpp/<version>-<cpu>/   bin/llama-server, bin/llama-quantize,
                                                  src/ (convert_hf_to_gguf.py, gguf-py), build.json

keyed by the CPU's instruction-set flags: the build uses this CPU's instructions (GGML_NATIVE),
so a cache carried to another kind of CPU is rebuilt rather than crash there. A clean clone on
the same machine finds the build; a fresh machine builds it once. `LF_WRAP_LLAMACPP` points at a
llama.cpp of your own instead (a folder with bin/llama-server or build/bin/llama-server).

With an API key, the key reaches llama-server in LLAMA_API_KEY (it reads it like `--api-key`,
but the environment is not visible in `ps`); llama-server then refuses every route but /health
without it.
"""

from __future__ import annotations

import hashlib
import os
import platform
from dataclasses import dataclass
from pathlib import Path

from lf_wrap.util.errors import LfWrapError

VERSION = "0.3.36"  # llama-cpp-python's sdist (requirements/llamacpp.lock): its vendor/llama.cpp is what runs
ENV_VAR = "LF_WRAP_LLAMACPP"
KEY_ENV = "LLAMA_API_KEY"
LOCK = "requirements/llamacpp.lock"
BUILD_HINT = (
    f"build it with `make setup-llamacpp` (llama.cpp from {LOCK}, for this CPU: about 9 min on 2 cores, once per "
    f"machine), or point {ENV_VAR} at a llama.cpp build of your own (a folder with bin/llama-server)"
)
# What the converter writes itself, and what llama-quantize makes from its f16 output.
CONVERTER_TYPES = ("f32", "f16", "bf16", "q8_0")
QUANTIZE_TYPES = ("q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s", "q4_k_m", "q5_k_s",
                  "q5_k_m", "q6_k")  # fmt: skip
QUANTS = CONVERTER_TYPES + QUANTIZE_TYPES


def cache_root() -> Path:
    """Where builds live: $XDG_CACHE_HOME/lf-wrap/llama.cpp, else ~/.cache/lf-wrap/llama.cpp. Not under
    $LF_WRAP_CACHE_DIR (a test session's own cache): a build is kept per machine, not per session."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lf-wrap" / "llama.cpp"


def cpu_key(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The machine and a short hash of the CPU's instruction-set flags: a native build runs on CPUs
    with the same flags (an AVX-512 build on an AVX2-only CPU would die with SIGILL)."""
    flags = ""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith(("flags", "Features")):  # x86, arm
                flags = " ".join(sorted(set(line.partition(":")[2].split())))
                break
    except OSError:
        pass
    return f"{platform.machine() or 'cpu'}-{hashlib.sha256(flags.encode()).hexdigest()[:10]}"


def build_dir() -> Path:
    return cache_root() / f"{VERSION}-{cpu_key()}"


@dataclass(frozen=True)
class LlamaCpp:
    root: Path  # the build (or a checkout of your own)
    bin: Path  # where llama-server and llama-quantize are
    src: Path  # the llama.cpp source: convert_hf_to_gguf.py, gguf-py

    @classmethod
    def find(cls) -> LlamaCpp:
        """$LF_WRAP_LLAMACPP, else this machine's build from `make setup-llamacpp`."""
        explicit = os.environ.get(ENV_VAR)
        root = Path(explicit).expanduser().absolute() if explicit else build_dir()
        found = cls.at(root)
        if found is None:
            where = f"{root} (from {ENV_VAR})" if explicit else f"no build for this CPU in {root}"
            raise LfWrapError(f"llama.cpp not found: {where}", hint=BUILD_HINT)
        return found

    @classmethod
    def at(cls, root: Path) -> LlamaCpp | None:
        """The llama.cpp in `root`: lf-wrap's build layout (bin/, src/) or a source checkout built with
        CMake (build/bin/, the converter at the top)."""
        bins = [b for b in (root / "bin", root / "build" / "bin") if (b / "llama-server").is_file()]
        srcs = [s for s in (root / "src", root) if (s / "convert_hf_to_gguf.py").is_file()]
        if not bins or not srcs:
            return None
        return cls(root, bins[0], srcs[0])

    @property
    def server(self) -> Path:
        return self.bin / "llama-server"

    @property
    def quantize(self) -> Path:
        return self.bin / "llama-quantize"

    @property
    def converter(self) -> Path:
        return self.src / "convert_hf_to_gguf.py"

    @property
    def gguf_py(self) -> Path:
        """llama.cpp's own `gguf` package at the converter's commit (PyPI's may be older)."""
        return self.src / "gguf-py"

    def server_command(self, gguf: Path, flags: list[str]) -> list[str]:
        return [str(self.server), "--model", str(gguf), *flags]

    def env(self, *, api_key: str | None = None) -> tuple[dict[str, str], dict[str, str]]:
        """(full environment, the variables lf-wrap set) for llama-server; with `api_key` the changes
        hold the key itself: redact them before printing."""
        env = dict(os.environ)
        changes: dict[str, str] = {}
        if api_key:
            env[KEY_ENV] = changes[KEY_ENV] = api_key
        return env, changes
