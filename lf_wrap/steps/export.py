"""`lf-wrap export`: merge the run's LoRA adapter into its base model with
`llamafactory-cli export`, then check the result before calling it a success."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lf_wrap.engines.llamafactory import LlamaFactory
from lf_wrap.model.eos import ensure_agreement
from lf_wrap.model.folder import check_model_dir, has_chat_template, missing_parts
from lf_wrap.model.template_agreement import install_chat_template
from lf_wrap.project.chat_template import chat_template_text, served_template
from lf_wrap.project.config import Project
from lf_wrap.project.recipe import render_export
from lf_wrap.project.run_step import RunStep
from lf_wrap.project.runs import RunFolder
from lf_wrap.util import console
from lf_wrap.util.errors import ExternalError, LfWrapError
from lf_wrap.util.files import atomic_write, read_json_object, sha256_file
from lf_wrap.util.process import shell_line
from lf_wrap.util.render import Rendered


@dataclass
class ExportPlan:
    project: Project
    run: RunFolder
    rendered: Rendered | None
    command: list[str]
    engine: LlamaFactory | None
    overwrite: bool
    full: bool  # a full fine-tune: nothing to merge, only verify
    chat_template: str | None = None  # --chat-template (or the project's `chat_template: training`)
    jinja: str | None = None  # ... its text, made (and checked) before the merge

    def dry_run_lines(self) -> list[str]:
        """What `export --dry-run` says (stderr) after the YAML: what it would run and write."""
        lines = [f"# would run: {shell_line(self.command)}"] if self.rendered is not None else []
        if self.jinja is not None:
            lines.append(
                f"# would write the {self.chat_template} chat template into {self.run.merged}/chat_template.jinja"
            )
        return lines


def plan(project: Project, *, overwrite: bool = False, chat_template: str | None = None) -> ExportPlan:
    """Every pre-flight check of `lf-wrap export`; `--dry-run` stops after this. A chat template to
    give the merged model is made first: one that cannot be made fails before the merge."""
    p = _plan(project, overwrite)
    p.chat_template = served_template(project, chat_template)
    if p.chat_template is not None:
        p.jinja = chat_template_text(project, p.chat_template)
    return p


def _plan(project: Project, overwrite: bool) -> ExportPlan:
    run = RunFolder(project.run_dir.resolve())
    if project.config.method == "full":
        check_model_dir(run.output, "trained model (full fine-tune)")
        return ExportPlan(project, run, None, [], None, overwrite, full=True)
    project.model_dir()
    if not (run.output / "adapter_config.json").exists():
        raise LfWrapError(
            f"{run.output}: no LoRA adapter (adapter_config.json) to merge",
            hint="train first: lf-wrap train  (or pick the run with --set run_name=NAME)",
        )
    if run.merged.exists() and any(run.merged.iterdir()) and not overwrite:
        raise LfWrapError(f"{run.merged}: already holds an exported model", hint="pass --overwrite to export again")
    engine = LlamaFactory.find(project.config.llamafactory_cli, project.root)
    rendered = render_export(project, command=f"lf-wrap export  (llamafactory-cli export {run.export_yaml})")
    command = engine.command("export", run.export_yaml)
    return ExportPlan(project, run, rendered, command, engine, overwrite, full=False)


def verify(path: Any) -> dict[str, Any]:
    """What a served model needs: weights, config, tokenizer, chat template."""
    missing = missing_parts(path)
    if not has_chat_template(path):
        missing.append("chat template")
    if missing:
        raise ExternalError(f"the exported model in {path} is incomplete: missing {', '.join(missing)}")
    config = read_json_object(path / "config.json", error=ExternalError)
    weights = sorted(path.glob("*.safetensors"))
    return {
        "path": str(path),
        "model_type": config.get("model_type"),
        "architectures": config.get("architectures"),
        "weights": [{"file": w.name, "bytes": w.stat().st_size, "sha256": sha256_file(w)} for w in weights],
        "chat_template": True,
    }


def check_eos(path: Path, template: str) -> dict[str, Any]:
    """The stop token of the trained answers is an EOS everywhere (lf_wrap/model/eos.py); repairs are said."""
    report = ensure_agreement(path, template)
    for change in report.repairs:
        console.note(
            f"export: repaired {change}: the answers end with {report.stop_token!r} (id {report.stop_id}), and "
            "vLLM and transformers stop only on the ids listed there"
        )
    return report.to_dict()


def done_lines(result: dict[str, Any]) -> list[str]:
    """What `export` prints when done (a full fine-tune, with nothing merged, has said so already)."""
    return [f"exported {result['model']} in {result['duration_s']:.0f} s"] if result["merged"] else []


def execute(p: ExportPlan) -> dict[str, Any]:
    run = p.run
    if p.full:
        facts = verify(run.output)
        try:
            facts["eos"] = check_eos(run.output, p.project.config.template)
        except ExternalError:
            run.record("export", {"status": "failed", "reason": "EOS disagreement"})
            raise
        run.record("export", {"status": "succeeded", "kind": "full fine-tune: verified, nothing to merge", **facts})
        console.note(f"method full: nothing to merge; verified the trained model in {run.output}")
        return _with_chat_template(p, {"model": str(run.output), "merged": False, **facts})
    assert p.engine is not None and p.rendered is not None
    if p.overwrite and run.merged.exists():
        shutil.rmtree(run.merged)
    atomic_write(run.export_yaml, p.rendered.text)
    step = RunStep(run, "export", p.command, run.export_log)
    step.start({"config_file": str(run.export_yaml), "config": p.rendered.values})
    console.note("export: merging the adapter into the base model ...")
    base = step.finish(step.run(p.engine.env(offline=True)), what="export")
    try:
        facts = verify(run.merged)
    except ExternalError:
        run.record("export", {**base, "status": "failed", "reason": "incomplete export"})
        raise
    try:
        facts["eos"] = check_eos(run.merged, p.project.config.template)
    except ExternalError:
        run.record("export", {**base, "status": "failed", "reason": "EOS disagreement"})
        raise
    run.record("export", {**base, "status": "succeeded", **facts})
    timings = {key: base[key] for key in ("ended", "duration_s", "exit_code")}
    return _with_chat_template(p, {"model": str(run.merged), "merged": True, **timings, **facts})


def _with_chat_template(p: ExportPlan, result: dict[str, Any]) -> dict[str, Any]:
    """Give the exported model the planned chat template (chat_template.jinja, and tokenizer_config.json's)."""
    if p.jinja is None:
        return result
    written = install_chat_template(Path(result["model"]), p.jinja)
    p.run.record("export", {"chat_template": p.chat_template, "chat_template_files": [str(w) for w in written]})
    console.note(f"chat template: {p.chat_template} ({', '.join(w.name for w in written)})")
    return {**result, "chat_template": p.chat_template}
