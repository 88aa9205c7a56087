"""`lf-wrap export --format gguf`: the run's merged model as one GGUF file for llama.cpp and Ollama,
written by llama.cpp's own converter (and `llama-quantize` for the k-quants), then checked.

    runs/<name>/gguf/<name>.<quant>.gguf     the model, its chat template and stop tokens inside
    runs/<name>/gguf/Modelfile               for `ollama create` (steps/modelfile.py)
    runs/<name>/gguf.log                     what the converter and llama-quantize printed

The merged model is made first when the run has none (`lf-wrap export`). The file is written
under a `.partial` name and renamed when it is complete and checked: the chat template it carries
is the one the run serves (the merged model's: the model's own, or `--chat-template training`),
and the stop token every trained answer ends with is one llama.cpp ends a generation on.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lf_wrap.data.answers import from_registered, spread
from lf_wrap.engines.llamacpp import CONVERTER_TYPES, QUANTS, VERSION, LlamaCpp
from lf_wrap.engines.llamafactory import LlamaFactory
from lf_wrap.model.eos import inspect
from lf_wrap.model.folder import check_model_dir
from lf_wrap.model.pretokenizer import llamacpp_pre
from lf_wrap.model.sampling import sampling_defaults
from lf_wrap.model.template_agreement import install_chat_template
from lf_wrap.project.chat_template import chat_template_text, served_template
from lf_wrap.project.config import Project
from lf_wrap.project.run_step import RunStep
from lf_wrap.project.runs import RunFolder
from lf_wrap.steps import export, modelfile
from lf_wrap.steps.modelfile import Modelfile
from lf_wrap.util import console
from lf_wrap.util.errors import ExternalError, LfWrapError
from lf_wrap.util.files import atomic_write, read_json_object, sha256_file
from lf_wrap.util.process import shell_line

INSIDE = Path(__file__).resolve().parents[1] / "engines" / "inside"
DEFAULT_QUANT = "q8_0"
PRE_MARK = "lf-wrap: tokenizer.ggml.pre"  # what inside/gguf_convert.py prints when lf-wrap named the pre-tokenizer
# Tokens llama.cpp ends a generation on by their text, besides the GGUF's eos/eot/eom ids
# (llama.cpp src/llama-vocab.cpp, the special_eog_ids loop; the ones lf-wrap's templates use).
EOG_TEXTS = ("<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<|end_of_text|>",
             "<eos>", "</s>", "<｜end▁of▁sentence｜>")  # fmt: skip


@dataclass
class GgufPlan:
    project: Project
    run: RunFolder
    quant: str
    overwrite: bool
    llamacpp: LlamaCpp
    trainer: LlamaFactory  # the training environment: the converter needs its torch and transformers
    merge: export.ExportPlan | None  # the merge to run first (the run has no merged model yet)
    chat_template: str | None  # --chat-template (or the project's): given to the merged model first

    @property
    def folder(self) -> Path:
        return self.run.root / "gguf"

    @property
    def out(self) -> Path:
        return self.folder / f"{self.run.name}.{self.quant}.gguf"

    @property
    def log(self) -> Path:
        return self.run.root / "gguf.log"

    @property
    def source(self) -> Path:
        """The Hugging Face folder to convert: the merged model (a full fine-tune's output)."""
        return self.run.output if self.project.config.method == "full" else self.run.merged

    def commands(self, pre: str | None) -> list[list[str]]:
        """The converter (into a .partial file: f16 first for a k-quant), then llama-quantize."""
        first = self.quant if self.quant in CONVERTER_TYPES else "f16"
        converted = self.partial(first)
        convert = [str(self.trainer.python), str(INSIDE / "gguf_convert.py"), str(self.llamacpp.src),
                   *(["--pre", pre] if pre else []), "--", str(self.source), "--outfile", str(converted),
                   "--outtype", first]  # fmt: skip
        if first == self.quant:
            return [convert]
        quantize = [str(self.llamacpp.quantize), str(converted), str(self.partial(self.quant)), self.quant.upper()]
        return [convert, quantize]

    def partial(self, quant: str) -> Path:
        return self.folder / f".{self.run.name}.{quant}.gguf.partial"

    def dry_run_lines(self) -> list[str]:
        lines = [f"# would merge first: {shell_line(self.merge.command)}"] if self.merge and self.merge.command else []
        pre = "<the converter's, or the tokenizer.json's pre-tokenizer>"
        lines += [f"# would run: {shell_line(c)}" for c in self.commands(pre)]
        return [*lines, f"# would write {self.out} and {self.folder / 'Modelfile'}"]


def plan(project: Project, *, quant: str = DEFAULT_QUANT, overwrite: bool = False,
         chat_template: str | None = None) -> GgufPlan:  # fmt: skip
    """Every pre-flight check of `export --format gguf`: the quantisation, llama.cpp's build, the
    training environment (the converter runs there), a merged model or one to make, the output."""
    if quant not in QUANTS:
        raise LfWrapError(f"--quant {quant}: not a GGUF type lf-wrap writes", hint=f"one of {', '.join(QUANTS)}")
    run = RunFolder(project.run_dir.resolve())
    llamacpp = LlamaCpp.find()
    trainer = LlamaFactory.find(project.config.llamafactory_cli, project.root)
    merged = run.output if project.config.method == "full" else run.merged
    merge = None
    if not (merged / "config.json").is_file():
        if project.config.method == "full":
            check_model_dir(merged, "trained model (full fine-tune)")
        merge = export.plan(project, overwrite=False, chat_template=chat_template)  # says "train first" if no adapter
    p = GgufPlan(project, run, quant, overwrite, llamacpp, trainer, merge, served_template(project, chat_template))
    if p.out.exists() and not overwrite:
        raise LfWrapError(f"{p.out}: already exported", hint="pass --overwrite to write it again")
    return p


def done_lines(written: dict[str, Any]) -> list[str]:
    """What `export --format gguf` prints when done."""
    size = f"{written['bytes'] / 1e6:.1f} MB, {written['quant']}"
    return [f"exported {written['file']} ({size}) in {written['seconds']:.0f} s"]


def execute(p: GgufPlan) -> dict[str, Any]:
    if p.merge is not None:
        console.note(f"export: run {p.run.name!r} has no merged model yet: merging first")
        export.execute(p.merge)
    elif p.chat_template is not None:  # the served template goes into the merged model, then into the GGUF
        install_chat_template(p.source, chat_template_text(p.project, p.chat_template))
    served_template = folder_template(p.source)
    tokenizer = p.source / "tokenizer.json"
    pre = llamacpp_pre(read_json_object(tokenizer)) if tokenizer.is_file() else None
    p.folder.mkdir(parents=True, exist_ok=True)
    for stale in p.folder.glob(".*.partial"):
        stale.unlink()
    started = time.monotonic()
    log_start = p.log.stat().st_size if p.log.exists() else 0
    try:
        for i, command in enumerate(p.commands(pre)):
            what = "llama-quantize" if i else "llama.cpp's converter"
            step = RunStep(p.run, "export_gguf", command, p.log)
            step.start({"quant": p.quant, "llama_cpp": VERSION})
            outcome = step.run(p.llamacpp.env()[0] if i else p.trainer.env(offline=True))
            if outcome.returncode != 0 and not outcome.interrupted and not i:
                _explain_converter_failure(p, _log_since(p.log, log_start))
            step.finish(outcome, what=what)
        facts = read_facts(p.llamacpp, p.partial(p.quant), p.trainer.python)
        problems = _problems(p, facts, served_template)
        if problems:
            p.run.record("export_gguf", {"status": "failed", "reason": "; ".join(problems)})
            raise ExternalError(f"the GGUF written for run {p.run.name!r} is wrong: " + "; ".join(problems),
                                hint=f"the converter's log: {p.log}")  # fmt: skip
        p.partial(p.quant).replace(p.out)
        modelfile = _modelfile(p, facts, served_template)
    finally:
        for path in (p.partial("f16"), p.partial(p.quant)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    seconds = round(time.monotonic() - started, 1)
    result = {
        "status": "succeeded", "file": str(p.out), "quant": p.quant, "bytes": p.out.stat().st_size,
        "sha256": sha256_file(p.out), "seconds": seconds, "converter": f"llama.cpp (llama-cpp-python {VERSION} sdist)",
        "architecture": facts["architecture"], "tensors": facts["tensors"], "pre_tokenizer": facts["pre"],
        "pre_tokenizer_from": "tokenizer.json's rules (lf-wrap)" if PRE_MARK in _log_since(p.log, log_start)
        else "the converter",
        "stop": {k: facts[k] for k in ("eos_id", "eos_token", "eot_id", "eot_token")},
        "chat_template": "embedded (the merged model's)",
        "modelfile": {"path": str(p.folder / "Modelfile"), **modelfile.facts},
    }  # fmt: skip
    p.run.record("export_gguf", result)
    return result


def _modelfile(p: GgufPlan, facts: dict[str, Any], served_template: str | None) -> Modelfile:
    """The Ollama Modelfile beside the GGUF (steps/modelfile.py), its TEMPLATE proven on the check
    conversations and the run's own rows."""
    report = inspect(p.source, p.project.config.template)
    stops = [t for t in (report.stop_token, facts["eos_token"], facts["eot_token"]) if isinstance(t, str) and t]
    rows: list[list[dict[str, str]]] = []
    with contextlib.suppress(LfWrapError):  # no registered dataset here: the check conversations still prove it
        found, _ = from_registered(p.project.path(p.project.config.dataset_dir), p.project.config.datasets)
        rows = [row.messages for row in spread(found, 8)]
    kwargs = p.run.thinking().get("chat_template_kwargs") or {}  # as the run was trained (e.g. no thinking)
    scope = None if p.chat_template == "training" else p.run.template_scope()
    caveat = (f"The run's template check: the model's chat template {scope['line']}; `lf-wrap export --format gguf "
              "--chat-template training` writes the training template instead.") if scope else None  # fmt: skip
    written = modelfile.write(p.out, served_template, stops=stops, sampling=sampling_defaults(p.source), rows=rows,
                              kwargs=kwargs, caveat=caveat)  # fmt: skip
    atomic_write(p.folder / "Modelfile", written.text)
    if not written.template_proven:
        console.note(f"export: the Modelfile has no TEMPLATE ({written.why_not}): Ollama would pick one itself")
    return written


def folder_template(folder: Path) -> str | None:
    """The chat template a model folder serves: chat_template.jinja, else tokenizer_config.json's."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    config = folder / "tokenizer_config.json"
    template = read_json_object(config).get("chat_template") if config.is_file() else None
    return template if isinstance(template, str) else None


def read_facts(llamacpp: LlamaCpp, gguf: Path, python: Path) -> dict[str, Any]:
    """What the GGUF says about itself (engines/inside/gguf_facts.py, with llama.cpp's gguf-py)."""
    cmd = [str(python), str(INSIDE / "gguf_facts.py"), str(llamacpp.src), str(gguf)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ExternalError(f"{gguf}: not a GGUF file llama.cpp's gguf-py can read:\n{done.stderr.strip()[-1500:]}")
    facts: dict[str, Any] = json.loads(done.stdout)
    return facts


def _problems(p: GgufPlan, facts: dict[str, Any], served_template: str | None) -> list[str]:
    problems = []
    if served_template is not None and facts["chat_template"] != served_template:
        problems.append(f"its chat template is not the merged model's ({p.source}/chat_template.jinja)")
    report = inspect(p.source, p.project.config.template)
    if report.stop_id is not None:
        ids = {facts[k] for k in ("eos_id", "eot_id", "eom_id") if facts[k] is not None}
        if report.stop_id not in ids and report.stop_token not in EOG_TEXTS:
            problems.append(
                f"llama.cpp would not stop on {report.stop_token!r} (id {report.stop_id}), what every trained "
                f"answer ends with: the GGUF's eos is {facts['eos_token']!r} (id {facts['eos_id']})"
            )
    return problems


def _log_since(log: Path, offset: int) -> str:
    with log.open("rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace")


def _explain_converter_failure(p: GgufPlan, text: str) -> None:
    """The converter's known refusals as one message each (else RunStep says it failed, with the log)."""
    config = read_json_object(p.source / "config.json")
    if "is not supported" in text or "Model architecture not supported" in text:
        p.run.record("export_gguf", {"status": "failed", "reason": "architecture not supported"})
        raise ExternalError(
            f"llama.cpp's converter ({VERSION}) does not know architecture {config.get('architectures')} "
            f"({p.source / 'config.json'}): no GGUF can be written for this model",
            hint="serve it with vLLM instead (`lf-wrap serve`), or point LF_WRAP_LLAMACPP at a newer llama.cpp",
        )
    if "BPE pre-tokenizer was not recognized" in text:
        p.run.record("export_gguf", {"status": "failed", "reason": "tokenizer not recognised"})
        raise ExternalError(
            f"llama.cpp's converter does not recognise the tokenizer of {p.source} (its pre-tokenizer), and its "
            "tokenizer.json's rules are not exactly one llama.cpp implements: a GGUF would split text differently",
            hint="serve this model with vLLM (`lf-wrap serve`); see the converter's log: " + str(p.log),
        )
