"""`lf-wrap eval --preference`: did preference training move the model toward the chosen answers?

For each held-out pair (a prompt, a chosen and a rejected answer) it measures the
log-probability margin, log p(chosen | prompt) - log p(rejected | prompt), under the model the
run started from ("before": the --from-run model, else the base model) and under the run's
result ("after": its merged model, else the start plus the run's adapter). DPO's own objective
is this margin measured against the reference model, so a margin that grows on pairs the run
never saw is the direct sign that it learned the preference and not the pairs.

The margin is computed in the training environment by LLaMA-Factory's own data pipeline and
the run's settings (lf_wrap/engines/inside/preference_logprobs.py): the same chat template, system prompt,
cutoff and tokens the run trained on. Each model also answers every prompt greedily, and each
answer is compared (character similarity, difflib) with the chosen and the rejected one.
Results: runs/<name>/preference_eval.json and the manifest's `preference_eval` section.
"""

from __future__ import annotations

import difflib
import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lf_wrap.data.convert import to_conversation
from lf_wrap.data.formats import spec_from_entry
from lf_wrap.data.reader import DatasetFile, Row
from lf_wrap.data.registry import entry_file, lookup, read_info, register
from lf_wrap.engines.llamafactory import LlamaFactory
from lf_wrap.project.config import Project, load_project
from lf_wrap.project.runs import RunFolder, now
from lf_wrap.project.stages import dataset_kind
from lf_wrap.project.start import recorded_start
from lf_wrap.util import console
from lf_wrap.util.errors import ExternalError, LfWrapError
from lf_wrap.util.files import atomic_write

SCRIPT = Path(__file__).resolve().parents[1] / "engines" / "inside" / "preference_logprobs.py"
# LLaMA-Factory data arguments that change which tokens a pair becomes (besides template/cutoff_len).
DATA_KEYS = ("default_system", "enable_thinking", "mask_history", "tool_format")
RESULT_FILE = "preference_eval.json"


@dataclass
class ModelSide:
    label: str
    path: str  # a model folder
    adapters: list[str] = field(default_factory=list)  # LoRA adapters merged into it, in order
    why: str = ""

    def job(self) -> dict[str, Any]:
        return {"label": self.label, "path": self.path, "adapters": self.adapters}

    def describe(self) -> str:
        return self.path + "".join(f" + adapter {a}" for a in self.adapters)


def sides(project: Project, run: RunFolder) -> tuple[ModelSide, ModelSide]:
    """(before, after): what the run started from, and what it produced."""
    start = recorded_start(run.root)
    if start is None:
        before = ModelSide("before", project.model_ref(), [], "the base model (the run did not start from another run)")
    elif start.kind == "adapter":
        assert start.adapter is not None
        before = ModelSide("before", start.model, [start.adapter], f"run {start.run!r}: base model + its adapter")
    else:
        before = ModelSide("before", start.model, [], f"run {start.run!r}: its {start.kind} model")
    if (run.merged / "config.json").is_file():
        after = ModelSide("after", str(run.merged), [], "the run's merged model")
    elif (run.output / "adapter_config.json").is_file():
        after = ModelSide("after", before.path, [*before.adapters, str(run.output)], "the start + the run's adapter")
    elif (run.output / "config.json").is_file():
        after = ModelSide("after", str(run.output), [], "the run's fully fine-tuned model")
    else:
        raise LfWrapError(
            f"{run.root}: no trained model to measure (no merged/, no adapter in output/)",
            hint="train it first (lf-wrap train), then lf-wrap export",
        )
    return before, after


def pairs_source(project: Project, run: RunFolder, dataset_ref: str | None, dataset_dir: Path) -> tuple[Path, str, str]:
    """(dataset_dir, name, what) of the pairs to measure: --dataset, else the run's eval_dataset,
    else its training pairs (which show what it learned, not whether it generalises)."""
    config = ((run.manifest().get("train") or {}).get("config")) or {}
    if dataset_ref is None:
        held_out = config.get("eval_dataset")
        if held_out:
            dataset_ref, what = str(held_out).split(",")[0], "the run's eval_dataset (held out from training)"
        else:
            dataset_ref = project.config.datasets[0]
            what = "the run's TRAINING pairs (they show what it learned; pass --dataset HELD_OUT for generalisation)"
    else:
        what = f"--dataset {dataset_ref}"
    path = Path(dataset_ref)
    if path.suffix in (".json", ".jsonl") and path.is_file():
        return _register_file(path), path.stem.replace("-", "_") or "pairs", what
    if not (dataset_dir / "dataset_info.json").is_file():
        raise LfWrapError(
            f"--dataset {dataset_ref}: no such file, and {dataset_dir / 'dataset_info.json'} does not exist",
            hint="pass a preference file (prompt + chosen + rejected rows) or a name registered in --dataset-dir",
        )
    if dataset_kind(dataset_dir, dataset_ref) != "pairs":
        raise LfWrapError(
            f'dataset {dataset_ref!r} is not preference pairs (its entry has no "ranking": true)',
            hint="--preference measures chosen vs rejected answers: pass a file or dataset of prompt + chosen + "
            "rejected rows (lf-wrap eval without --preference compares answers to references)",
        )
    return dataset_dir, dataset_ref, what


_TEMP_DIRS: list[tempfile.TemporaryDirectory[str]] = []


def _register_file(path: Path) -> Path:
    """A preference file, validated and registered into a temporary dataset dir."""
    tmp = tempfile.TemporaryDirectory(prefix="lf-wrap-pairs-")
    _TEMP_DIRS.append(tmp)
    reg = register(path, path.stem.replace("-", "_") or "pairs", Path(tmp.name))
    if not reg.entry.get("ranking"):
        raise LfWrapError(
            f"{path}: not preference pairs (format {reg.report.format})",
            hint="--preference needs rows of prompt + chosen + rejected (lf-wrap data validate shows the format)",
        )
    return Path(tmp.name)


def measure(
    project: Project,
    run: RunFolder,
    dataset_dir: Path,
    name: str,
    before: ModelSide,
    after: ModelSide,
    max_new_tokens: int,
    timeout_s: float = 1800.0,
) -> dict[str, Any]:
    """Run preference_logprobs.py in the training environment; its raw result."""
    config = ((run.manifest().get("train") or {}).get("config")) or {}
    engine = LlamaFactory.find(project.config.llamafactory_cli, project.root)
    job = {
        "dataset_dir": str(dataset_dir.resolve()),
        "dataset": name,
        "template": config.get("template", project.config.template),
        "cutoff_len": config.get("cutoff_len", 2048),
        "data_args": {k: config[k] for k in DATA_KEYS if k in config},
        "models": [before.job(), after.job()],
        "max_new_tokens": max_new_tokens,
    }
    cmd = [str(engine.python), "-I", "-c", SCRIPT.read_text(encoding="utf-8")]
    console.note(f"eval: measuring in the training environment ({engine.python})")
    try:
        done = subprocess.run(
            cmd, input=json.dumps(job), capture_output=True, text=True, timeout=timeout_s,
            env=engine.env(offline=True), check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as err:
        raise ExternalError(f"the preference measurement took over {timeout_s:.0f} s") from err
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = "\n".join(done.stderr.strip().splitlines()[-12:])
        raise ExternalError(f"the preference measurement failed in the training environment:\n{last}")
    try:
        return json.loads(lines[-1])
    except ValueError:
        raise ExternalError(
            f"the preference measurement printed no result (its last line: {lines[-1][:200]!r})"
        ) from None


def _lean(answer: str, chosen: str, rejected: str) -> float:
    """How much closer `answer` is to the chosen than to the rejected answer (-1 .. 1)."""
    sim = difflib.SequenceMatcher
    return sim(None, answer, chosen).ratio() - sim(None, answer, rejected).ratio()


def compare(raw: dict[str, Any], rows: list[dict[str, str]]) -> dict[str, Any]:
    """Per pair and overall: margin before -> after, and where the greedy answers lean."""
    before, after = raw["models"]
    pairs = []
    for i, pair in enumerate(raw["pairs"]):
        m_before = before["chosen"][i] - before["rejected"][i]
        m_after = after["chosen"][i] - after["rejected"][i]
        item: dict[str, Any] = {
            "prompt": rows[i]["prompt"] if i < len(rows) else pair["prompt"],
            "chosen": rows[i]["chosen"] if i < len(rows) else None,
            "rejected": rows[i]["rejected"] if i < len(rows) else None,
            "logp_before": {"chosen": before["chosen"][i], "rejected": before["rejected"][i]},
            "logp_after": {"chosen": after["chosen"][i], "rejected": after["rejected"][i]},
            "margin_before": m_before,
            "margin_after": m_after,
            "margin_up": m_after > m_before,
        }
        if "answers" in before and i < len(rows):
            a_b, a_a = before["answers"][i], after["answers"][i]
            item["answer_before"], item["answer_after"] = a_b, a_a
            item["lean_before"] = _lean(a_b, rows[i]["chosen"], rows[i]["rejected"])
            item["lean_after"] = _lean(a_a, rows[i]["chosen"], rows[i]["rejected"])
        pairs.append(item)
    n = len(pairs)
    summary: dict[str, Any] = {
        "pairs": n,
        "margin_up": sum(p["margin_up"] for p in pairs),
        "mean_margin_before": sum(p["margin_before"] for p in pairs) / n if n else None,
        "mean_margin_after": sum(p["margin_after"] for p in pairs) / n if n else None,
        "chosen_preferred_before": sum(p["margin_before"] > 0 for p in pairs),
        "chosen_preferred_after": sum(p["margin_after"] > 0 for p in pairs),
    }
    leaning = [p for p in pairs if "lean_after" in p]
    if leaning:
        summary["mean_lean_before"] = sum(p["lean_before"] for p in leaning) / len(leaning)
        summary["mean_lean_after"] = sum(p["lean_after"] for p in leaning) / len(leaning)
        summary["answers_closer_to_chosen"] = sum(p["lean_after"] > p["lean_before"] for p in leaning)
        summary["answers_exactly_chosen_before"] = sum(p["answer_before"] == p["chosen"] for p in leaning)
        summary["answers_exactly_chosen_after"] = sum(p["answer_after"] == p["chosen"] for p in leaning)
    return {"summary": summary, "pairs": pairs}


def pair_texts(dataset_dir: Path, name: str) -> list[dict[str, str]]:
    """The pairs as text (prompt, chosen, rejected), in file order, for the report."""
    info = read_info(dataset_dir)
    entry = lookup(info, dataset_dir, name)
    spec = spec_from_entry(entry, where=name)
    out = []
    for row in DatasetFile(entry_file(dataset_dir, name, entry)).rows():
        if isinstance(row, Row) and isinstance(row.value, dict):
            conv = to_conversation(row.value, spec)
            prompt = conv.turns[-1][1] if conv.turns else ""
            out.append({"prompt": prompt, "chosen": _text(conv.chosen, spec), "rejected": _text(conv.rejected, spec)})
    return out


def _text(answer: Any, spec: Any) -> str:
    """An answer as text: a string (alpaca style) or a message object (sharegpt / OpenAI style)."""
    if isinstance(answer, dict):
        return str(answer.get(spec.tag("content_tag") or "", ""))
    return answer or ""


def summary_lines(result: dict[str, Any]) -> list[str]:
    s = result["summary"]
    lines = [
        f"pairs     {s['pairs']} from {result['pairs_from']}",
        f"before    {result['before']['describe']}",
        f"after     {result['after']['describe']}",
        "",
        f"{'margin before':>13} {'after':>9} {'change':>8}  prompt",
    ]
    for p in result["pairs"]:
        prompt = p["prompt"].replace("\n", " ")
        prompt = prompt if len(prompt) <= 40 else prompt[:39] + "…"
        change = p["margin_after"] - p["margin_before"]
        lines.append(f"{p['margin_before']:13.2f} {p['margin_after']:9.2f} {change:+8.2f}  {prompt}")
    lines += [
        "",
        f"margin    log p(chosen) - log p(rejected), summed over answer tokens: larger after on "
        f"{s['margin_up']} of {s['pairs']} pairs; mean {s['mean_margin_before']:.2f} -> {s['mean_margin_after']:.2f}",
        f"prefers   the chosen answer on {s['chosen_preferred_before']} of {s['pairs']} pairs before, "
        f"{s['chosen_preferred_after']} after",
    ]
    if "mean_lean_after" in s:
        lines.append(
            f"answers   greedy answers closer to the chosen one than before on {s['answers_closer_to_chosen']} of "
            f"{s['pairs']} pairs (similarity to chosen minus to rejected, mean {s['mean_lean_before']:+.3f} -> "
            f"{s['mean_lean_after']:+.3f}); exactly the chosen answer: {s['answers_exactly_chosen_before']} -> "
            f"{s['answers_exactly_chosen_after']}"
        )
    return lines


def record(run: RunFolder, result: dict[str, Any]) -> Path:
    path = run.root / RESULT_FILE
    atomic_write(path, json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    run.record("preference_eval", {"file": str(path), "ended": result["ended"], **result["summary"]})
    return path


def run_eval(project: Project, dataset_ref: str | None, dataset_dir: Path, max_tokens: int) -> dict[str, Any]:
    """Measure, compare and record; the result (also written to the run folder)."""
    run = RunFolder(project.run_dir.resolve())
    if not run.root.is_dir():
        raise LfWrapError(f"{run.root}: no such run", hint="train it first: lf-wrap train")
    before, after = sides(project, run)
    pairs_dir, name, what = pairs_source(project, run, dataset_ref, dataset_dir)
    rows = pair_texts(pairs_dir, name)
    console.note(f"eval: {len(rows)} pairs from {what}")
    console.note(f"eval: before = {before.why}; after = {after.why}")
    started = now()
    raw = measure(project, run, pairs_dir, name, before, after, max_tokens)
    if len(raw["pairs"]) != len(rows):
        raise ExternalError(
            f"LLaMA-Factory encoded {len(raw['pairs'])} of the {len(rows)} pairs",
            hint="check the pairs with `lf-wrap data validate`",
        )
    result = compare(raw, rows)
    result.update(
        started=started, ended=now(), pairs_from=what, dataset=name,
        before={"describe": before.describe(), "why": before.why},
        after={"describe": after.describe(), "why": after.why},
        versions=raw.get("versions"),
    )  # fmt: skip
    result["file"] = str(record(run, result))
    return result


def from_command(
    config_file: Path | None, sets: tuple[str, ...], dataset_ref: str | None, dataset_dir: Path | None, max_tokens: int
) -> dict[str, Any]:
    """`lf-wrap eval --preference`: the project's run, its pairs (--dataset, else held out, else trained on)."""
    project = load_project(config_file, sets)
    return run_eval(project, dataset_ref, dataset_dir or project.path(project.config.dataset_dir), max_tokens)
