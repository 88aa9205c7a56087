"""`lf-wrap export`: merge the run's LoRA adapter into its base model with
`llamafactory-cli export`, then check the result before calling it a success."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from lf_wrap.engines.llamafactory import LlamaFactory
from lf_wrap.model.eos import ensure_agreement
from lf_wrap.model.folder import check_model_dir, has_chat_template, missing_parts
from lf_wrap.project.config import Project, render_export
from lf_wrap.project.run_step import RunStep
from lf_wrap.project.runs import RunFolder, sha256_file
from lf_wrap.steps.train import resolve_model
from lf_wrap.util.errors import ExternalError, LfWrapError
from lf_wrap.util.files import atomic_write
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


def plan(project: Project, *, overwrite: bool = False) -> ExportPlan:
    """Every pre-flight check of `lf-wrap export`; `--dry-run` stops after this."""
    run = RunFolder(project.run_dir.resolve())
    if project.config.method == "full":
        check_model_dir(run.output, "trained model (full fine-tune)")
        return ExportPlan(project, run, None, [], None, overwrite, full=True)
    resolve_model(project)
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
    config = json.loads((path / "config.json").read_text())
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
        click.echo(
            f"export: repaired {change}: the answers end with {report.stop_token!r} (id {report.stop_id}), and "
            "vLLM and transformers stop only on the ids listed there",
            err=True,
        )
    return report.to_dict()


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
        click.echo(f"method full: nothing to merge; verified the trained model in {run.output}", err=True)
        return {"model": str(run.output), "merged": False, **facts}
    assert p.engine is not None and p.rendered is not None
    if p.overwrite and run.merged.exists():
        shutil.rmtree(run.merged)
    atomic_write(run.export_yaml, p.rendered.text)
    step = RunStep(run, "export", p.command, run.export_log)
    step.start({"config_file": str(run.export_yaml), "config": p.rendered.values})
    click.echo("export: merging the adapter into the base model ...", err=True)
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
    return {"model": str(run.merged), "merged": True, **timings, **facts}
