"""LLaMA-Factory as an engine: where it is, how to call it, and the template check that
runs inside it (engines/inside/llamafactory_probe.py). What a training run writes is read by
engines/training_log.py.

lf-wrap never imports LLaMA-Factory: training needs its own Python environment (its
transformers pin differs from vLLM's), so lf-wrap finds `llamafactory-cli` and runs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lf_wrap.engines.locate import locate
from lf_wrap.util.errors import ExternalError, LfWrapError
from lf_wrap.util.files import atomic_write, read_json_object, sha256_file
from lf_wrap.util.paths import cache_dir

ENV_VAR = "LF_WRAP_LLAMAFACTORY_CLI"
DEFAULT_VENV = Path(".venvs") / "train"
PROBE = Path(__file__).resolve().parent / "inside" / "llamafactory_probe.py"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt", ".h5", ".msgpack")
INSTALL_HINT = (
    "install it with `make setup-train` (a .venvs/train environment), or `pip install llamafactory==0.9.5` "
    f"in its own virtual environment and point {ENV_VAR} (or `llamafactory_cli:` in lf-wrap.yaml) "
    "at its llamafactory-cli"
)


def probe_cache_path(key: str) -> Path:
    return cache_dir() / "template-check" / f"{key}.json"


@dataclass(frozen=True)
class LlamaFactory:
    cli: Path

    @property
    def python(self) -> Path:
        return self.cli.parent / "python"

    @classmethod
    def find(cls, configured: str | None = None, project_root: Path | None = None) -> LlamaFactory:
        """Config/env setting, then the project's .venvs/train, then PATH."""
        return cls(
            locate(
                "llamafactory-cli",
                env_var=ENV_VAR,
                setting="llamafactory_cli",
                configured=configured,
                venv=DEFAULT_VENV,
                project_root=project_root,
                hint=INSTALL_HINT,
            )
        )

    def has_module(self, name: str) -> bool:
        """Is `name` importable in the training environment (without importing it)?"""
        code = f"import importlib.util, sys; sys.exit(0 if importlib.util.find_spec({name!r}) else 1)"
        done = subprocess.run([str(self.python), "-I", "-c", code], capture_output=True, check=False)
        return done.returncode == 0

    def command(self, action: str, config: Path) -> list[str]:
        return [str(self.cli), action, str(config)]

    def env(self, *, offline: bool) -> dict[str, str]:
        """The child's environment: the user's, plus quiet/offline-safe defaults."""
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.setdefault("DISABLE_VERSION_CHECK", "1")
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        env.setdefault("WANDB_DISABLED", "true")
        if offline:
            env.setdefault("HF_HUB_OFFLINE", "1")
            env.setdefault("TRANSFORMERS_OFFLINE", "1")
        # The engine's own bin/ first, so its torchrun is the one LLaMA-Factory launches.
        env["PATH"] = f"{self.cli.parent}{os.pathsep}{env.get('PATH', '')}"
        return env

    def probe(
        self,
        model_dir: Path,
        template: str,
        timeout_s: float = 300.0,
        options: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Versions + the template check (see inside/llamafactory_probe.py), computed by LLaMA-Factory's own code.

        `options` are the LLaMA-Factory data arguments that change what is trained on
        (default_system, enable_thinking, mask_history, preserve_thinking). The check imports
        LLaMA-Factory (~6 s on 2 CPUs, a third of a short training run), so a harmless result is
        remembered under cache_dir(), keyed by everything its answer depends on: the probe's
        code, the template name and options, every non-weight file of the model folder and the
        list of packages installed in the training environment. A harmful one is never cached:
        the user is about to change something, so it is checked again each time.
        `data` is the dataset's shape ({"with_system", "multi_turn"}, lf_wrap/data/shape.py): a
        difference in a kind of conversation the data never trains is shown but not counted.
        """
        job = {"model_dir": str(model_dir), "template": template, "options": dict(options or {}), "data": data or {}}
        out = self._cached_jobs([job], timeout_s, remember=lambda check: not check.get("harmful", True))
        return {"versions": out.get("versions"), "template_check": out["results"][0]}

    def probe_jobs(self, jobs: list[dict[str, Any]], timeout_s: float = 600.0, cache: bool = False) -> dict[str, Any]:
        """Several template checks in one LLaMA-Factory import: {"versions", "results": [...]}.

        A job: {"model_dir", "template", "options": {}, "fixes": bool, "chat_template": str | None,
        "data": {"with_system": bool, "multi_turn": bool}}. With `cache`, answers are remembered
        under the same keys as `probe`'s, harmful ones too (not those holding today's date): only
        the jobs not remembered run."""
        if not cache:
            return self._run_probe(jobs, timeout_s)
        return self._cached_jobs(jobs, timeout_s, remember=lambda check: not check.get("dated_system"))

    def training_prompts(
        self,
        model_dir: Path,
        template: str,
        options: dict[str, Any],
        conversations: list[list[dict[str, str]]],
        timeout_s: float = 300.0,
    ) -> list[dict[str, Any]]:
        """LLaMA-Factory's prompt ids (and each token's text) for each conversation, as it trains them
        with `template` and `options`: {"ids", "pieces"} per conversation. Remembered like the template
        check, keyed by the conversations too, so checking the same run again costs no LLaMA-Factory import."""
        job = {"model_dir": str(model_dir), "template": template, "options": dict(options), "prompts": conversations}
        key = self._probe_key(model_dir, template, {**options, "__prompts__": conversations})
        path = probe_cache_path(f"prompts-{key}") if key else None
        if path is not None and path.exists():
            with contextlib.suppress(LfWrapError, KeyError, TypeError):
                stored = read_json_object(path)["prompts"]
                if isinstance(stored, list) and len(stored) == len(conversations):
                    return stored
        result = self._run_probe([job], timeout_s)["results"][0]
        if result.get("status") != "prompts":
            raise LfWrapError(
                f"LLaMA-Factory could not encode the rows with template {template!r}: "
                f"{result.get('error') or result.get('status')}",
                hint="`lf-wrap template check` shows what is wrong with the template or the tokenizer",
            )
        if path is not None:
            with contextlib.suppress(OSError):
                atomic_write(path, json.dumps({"prompts": result["prompts"]}, ensure_ascii=False))
        return list(result["prompts"])

    def _cached_jobs(
        self, jobs: list[dict[str, Any]], timeout_s: float, remember: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any]:
        """The jobs' answers from the cache where remembered; the others in one probe run, kept if `remember`."""
        paths = [self._job_cache_path(job) for job in jobs]
        results: list[dict[str, Any] | None] = [None] * len(jobs)
        versions = None
        for i, path in enumerate(paths):
            if path is not None and path.exists():
                with contextlib.suppress(LfWrapError, KeyError, TypeError):  # unreadable or damaged: check again
                    stored = read_json_object(path)
                    results[i], versions = {**stored["template_check"], "cached": True}, stored.get("versions")
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            out = self._run_probe([jobs[i] for i in missing], timeout_s)
            versions = out.get("versions")
            for i, result in zip(missing, out["results"], strict=True):
                results[i] = result
                path = paths[i]
                if path is not None and result.get("verdict") and remember(result):
                    with contextlib.suppress(OSError):
                        stored_text = json.dumps({"versions": versions, "template_check": result}, ensure_ascii=False)
                        atomic_write(path, stored_text)
        return {"versions": versions, "results": results}

    def _job_cache_path(self, job: dict[str, Any]) -> Path | None:
        """Where a job's answer is remembered; None for one that is not (a given chat template, no fixes)."""
        if not job.get("fixes", True) or job.get("chat_template"):
            return None
        options, data = dict(job.get("options") or {}), job.get("data") or None
        keyed = {**options, "__data__": data} if data else options
        key = self._probe_key(Path(job["model_dir"]), job["template"], keyed)
        return probe_cache_path(key) if key else None

    def _probe_key(self, model_dir: Path, template: str, options: dict[str, Any] | None = None) -> str | None:
        packages = sorted(p.name for p in self.python.parent.parent.glob("lib/python*/site-packages/*.dist-info"))
        if not packages:
            return None  # an environment lf-wrap cannot fingerprint: always run the check
        h = hashlib.sha256()
        parts = (PROBE.read_bytes(), template.encode(), json.dumps(options or {}, sort_keys=True).encode())
        for part in (*parts, "\n".join(packages).encode()):
            h.update(hashlib.sha256(part).digest())
        for path in sorted(model_dir.iterdir()):
            if path.is_file() and not path.name.endswith(WEIGHT_SUFFIXES):
                h.update(path.name.encode() + b"\0" + bytes.fromhex(sha256_file(path)))
        return h.hexdigest()

    def _run_probe(self, jobs: list[dict[str, Any]], timeout_s: float) -> dict[str, Any]:
        if not self.python.exists():
            raise LfWrapError(
                f"{self.python}: no Python beside {self.cli}",
                hint="pass --no-template-check, or install with make setup-train",
            )
        # -I and -c: nothing of lf-wrap's on sys.path; the program runs on the training environment's own.
        cmd = [str(self.python), "-I", "-c", PROBE.read_text(encoding="utf-8"), "--jobs"]
        try:
            done = subprocess.run(
                cmd,
                input=json.dumps(jobs),
                capture_output=True,
                text=True,
                timeout=timeout_s,
                env=self.env(offline=True),
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            raise ExternalError(f"the LLaMA-Factory template check took over {timeout_s:.0f} s") from err
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            last = "\n".join(done.stderr.strip().splitlines()[-8:])
            raise ExternalError(
                f"the LLaMA-Factory template check failed:\n{last}", hint="pass --no-template-check to skip it"
            )
        try:
            return json.loads(lines[-1])
        except ValueError:
            raise ExternalError(
                f"the LLaMA-Factory template check printed no result (its last line: {lines[-1][:200]!r})",
                hint="pass --no-template-check to skip it",
            ) from None
