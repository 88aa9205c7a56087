"""`lf-wrap report`: one self-contained HTML page per run, runs/<name>/report.html.

What a person judging a fine-tune looks at, from what the run folder already holds: the
loss curve (train, and eval when there is a validation split) and the learning rate from
LLaMA-Factory's trainer_log.jsonl, the dataset's token lengths against cutoff_len, the
template check's verdict, every hyperparameter with where it came from, `lf-wrap eval`'s
table (tuned vs base, the worst regressions with both answers), the last `lf-wrap check`,
and the versions and hashes in the manifest. A part the run does not have yet is named
with the command that makes it.

No network: charts are inline SVG drawn here (plain numbers in `points`), no script, no
CDN. The page comes from templates/report/ through a SandboxedEnvironment with autoescape
on (answers and prompts are user data) and StrictUndefined, and is written atomically.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lf_wrap.engines.training_log import read_trainer_log
from lf_wrap.project.runs import RunFolder, now
from lf_wrap.util.errors import LfWrapError
from lf_wrap.util.files import atomic_write, read_json_object, sha256_file

REPORT_FILE = "report.html"
STATS_CACHE = "report_stats.json"
TEMPLATE = "report/report.html.j2"
# Plot area inside each SVG chart (viewBox units).
W, H, LEFT, RIGHT, TOP, BOTTOM = 500, 240, 56, 16, 14, 34


@dataclass
class Series:
    name: str
    css: str  # class: train | eval | lr
    points: list[tuple[float, float]]
    svg_points: str = ""


@dataclass
class Chart:
    title: str
    x_label: str
    y_label: str
    series: list[Series]
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    log: bool = False
    markers: list[tuple[float, str]] = field(default_factory=list)  # vertical lines: (x in px, label)
    bars: list[dict[str, float]] = field(default_factory=list)  # histogram bars in px
    width: int = W
    height: int = H


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000 or abs(v) < 0.01:
        return f"{v:.0e}" if abs(v) < 0.01 else f"{v:,.0f}"
    return f"{v:.3g}"


def line_chart(title: str, x_label: str, y_label: str, series: list[Series]) -> Chart | None:
    """Scale every series into one plot area; None when there is nothing to draw."""
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points if math.isfinite(y)]
    if not xs or not ys:
        return None
    x0, x1 = min(0.0, min(xs)), max(xs) or 1.0
    y0, y1 = min(0.0, min(ys)), max(ys)
    if y1 <= y0:
        y1 = y0 + (abs(y0) or 1.0)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x0) / ((x1 - x0) or 1.0) * pw

    def py(y: float) -> float:
        return TOP + (1 - (y - y0) / (y1 - y0)) * ph

    for s in series:
        s.svg_points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in s.points if math.isfinite(y))
    return Chart(
        title, x_label, y_label, series,
        x_ticks=[(px(t), _fmt(t)) for t in _nice_ticks(x0, x1)],
        y_ticks=[(py(t), _fmt(t)) for t in _nice_ticks(y0, y1)],
    )  # fmt: skip


def histogram(lengths: list[int], cutoff: int | None, bins: int = 24) -> Chart | None:
    if not lengths:
        return None
    top = max(max(lengths), cutoff or 0) + 1
    width = max(1, math.ceil(top / bins))
    counts = [0] * bins
    for n in lengths:
        counts[min(bins - 1, n // width)] += 1
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    span = width * bins
    peak = max(counts)
    bars = []
    for i, c in enumerate(counts):
        if c:
            h = c / peak * ph
            bars.append({"x": LEFT + i * width / span * pw + 1, "y": TOP + ph - h, "w": max(1.0, width / span * pw - 2),
                         "h": h, "count": c, "lo": i * width, "hi": (i + 1) * width - 1})  # fmt: skip
    chart = Chart(
        "Token length per row (chat template applied)", "tokens", "rows", [],
        x_ticks=[(LEFT + t / span * pw, _fmt(t)) for t in _nice_ticks(0, span)],
        y_ticks=[(TOP + ph - t / peak * ph, _fmt(t)) for t in _nice_ticks(0, peak) if t == int(t)],
        bars=bars,
    )  # fmt: skip
    if cutoff:
        chart.markers.append((LEFT + cutoff / span * pw, f"cutoff_len {cutoff}"))
    return chart


# -- the pieces -------------------------------------------------------------------------
def training_curves(run: RunFolder) -> tuple[list[Chart], list[dict[str, Any]]]:
    entries, _ = read_trainer_log(run.output / "trainer_log.jsonl")
    train = [(e["current_steps"], e["loss"]) for e in entries if e.get("loss") is not None and "current_steps" in e]
    evals = [(e["current_steps"], e["eval_loss"]) for e in entries if e.get("eval_loss") is not None]
    lrs = [(e["current_steps"], e["lr"]) for e in entries if e.get("lr") is not None and "current_steps" in e]
    charts = []
    loss = [Series("train loss", "train", train)] + ([Series("eval loss", "eval", evals)] if evals else [])
    if (c := line_chart("Loss", "step", "loss", loss)) is not None:
        charts.append(c)
    if (c := line_chart("Learning rate", "step", "learning rate", [Series("learning rate", "lr", lrs)])) is not None:
        charts.append(c)
    return charts, entries


def dataset_stats(run: RunFolder, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """Rows, token lengths (the model's tokenizer and chat template) and truncation at cutoff_len,
    cached in the run folder by dataset hash, model and cutoff_len."""
    train = manifest.get("train") or {}
    datasets = train.get("datasets") or []
    if not datasets:
        return None
    config = train.get("config") or {}
    cutoff = config.get("cutoff_len")
    model = Path((train.get("model") or {}).get("path") or config.get("model_name_or_path") or "")
    key = {"datasets": [d.get("sha256") for d in datasets], "model": str(model), "cutoff_len": cutoff}
    cache = run.root / STATS_CACHE
    with contextlib.suppress(LfWrapError, KeyError):  # no cache yet, or a damaged one: count again
        cached = read_json_object(cache)
        if cached.get("key") == key:
            return cached["stats"]
    from lf_wrap.data.registry import DatasetInvalid
    from lf_wrap.data.stats import load_tokenizer, token_lengths
    from lf_wrap.data.validate import validate_file

    lengths: list[int] = []
    unit, note = "tokens", None
    try:
        tokenizer: Any = load_tokenizer(model)
    except (LfWrapError, ImportError, OSError) as err:
        tokenizer, unit = None, "characters"
        note = f"token lengths not counted ({getattr(err, 'message', err)}); characters instead"
    for d in datasets:
        path = Path(d["file"])
        if not path.is_file():
            note = f"{path}: the dataset file is gone; lengths not counted"
            continue
        try:
            report = validate_file(path, "auto")
            if not report.ok:
                raise DatasetInvalid(report)
            if tokenizer is not None:
                lengths += token_lengths(path, report, tokenizer)
            else:
                from lf_wrap.data.stats import char_lengths

                lengths += char_lengths(path, report)
        except (LfWrapError, OSError, ValueError) as err:
            note = f"{path}: lengths not counted ({getattr(err, 'message', err)})"
    s = sorted(lengths)
    stats = {
        "rows": sum(int(d.get("rows") or 0) for d in datasets),
        "unit": unit,
        "lengths": lengths,
        "cutoff_len": cutoff,
        "truncated": sum(1 for n in lengths if cutoff and n > cutoff) if unit == "tokens" else None,
        "p50": s[len(s) // 2] if s else None,
        "max": s[-1] if s else None,
        "note": note,
    }
    if lengths:
        atomic_write(cache, json.dumps({"key": key, "stats": stats}) + "\n")
    return stats


def hyperparameters(run: RunFolder, manifest: dict[str, Any]) -> list[dict[str, str]]:
    """Every training value with its source: the manifest's origins, else train.yaml's comments."""
    train = manifest.get("train") or {}
    values: dict[str, Any] = train.get("config") or {}
    origins: dict[str, str] = dict(train.get("origins") or {})
    if not origins and run.train_yaml.is_file():
        for line in run.train_yaml.read_text(encoding="utf-8", errors="replace").splitlines():
            key, colon, rest = line.partition(":")
            if colon and not line.startswith(("#", " ")) and "  # " in rest:
                origins[key.strip()] = rest.rsplit("  # ", 1)[1].strip()
    return [
        {"key": k, "value": json.dumps(v, ensure_ascii=False), "source": origins.get(k, "")} for k, v in values.items()
    ]


def _template_verdict(train: dict[str, Any]) -> dict[str, Any] | None:
    check = train.get("template_check")
    if not isinstance(check, dict) or "verdict" not in check:
        return None
    from lf_wrap.model.template_agreement import progress_line

    try:
        line = progress_line(check)
    except (KeyError, TypeError):
        line = f"template check: {check.get('verdict')}"
    return {"verdict": check["verdict"], "harmful": bool(check.get("harmful")), "line": line}


def _versions(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    train = manifest.get("train") or {}
    out = [("lf-wrap", str(manifest.get("lf_wrap_version", "?")))]
    out += [(k, str(v)) for k, v in (train.get("engine") or {}).items() if k != "cli"]
    host = manifest.get("host") or {}
    out += [(f"host {k}", str(v)) for k, v in host.items()]
    if train.get("config_sha256"):
        out.append(("train.yaml sha256", train["config_sha256"]))
    model = train.get("model") or {}
    if model.get("config_sha256"):
        out.append((f"base model config.json sha256 ({model.get('path')})", model["config_sha256"]))
    for d in train.get("datasets") or []:
        out.append((f"dataset {d.get('name')} sha256 ({d.get('rows')} rows)", str(d.get("sha256"))))
    adapter = Path(train.get("adapter") or "") / "adapter_model.safetensors"
    if train.get("adapter") and adapter.is_file():
        out.append(("adapter_model.safetensors sha256", sha256_file(adapter)))
    return out


def context(run_dir: Path) -> dict[str, Any]:
    run = RunFolder(run_dir)
    manifest = run.manifest()
    train = manifest.get("train") or {}
    missing: list[str] = []
    log = run.output / "trainer_log.jsonl"
    charts, entries = training_curves(run)
    if not log.is_file():
        missing.append(f"{log.relative_to(run.root)}: no training log, so no loss or learning-rate curve "
                       "(train the run: `lf-wrap train`)")  # fmt: skip
    elif not charts:
        missing.append(f"{log.relative_to(run.root)} has no loss entries yet (logged every logging_steps)")
    if not train:
        missing.append("manifest.json has no training record: hyperparameters, dataset and versions are unknown")
    eval_path = run.root / "eval.json"
    evaluation = None
    if eval_path.is_file():
        try:
            evaluation = read_json_object(eval_path)
        except LfWrapError as err:
            missing.append(f"{err.message}: run `lf-wrap eval` again")
    else:
        missing.append("no eval yet: `lf-wrap eval` compares the tuned model's answers with the base model's")
    if not manifest.get("check"):
        missing.append("no check yet: `lf-wrap serve --detach` then `lf-wrap check`")
    stats = dataset_stats(run, manifest)
    hist = histogram(stats["lengths"], stats["cutoff_len"] if stats["unit"] == "tokens" else None) if stats else None
    last = entries[-1] if entries else {}
    final_eval = next((e["eval_loss"] for e in reversed(entries) if e.get("eval_loss") is not None), None)
    return {
        "run": run.name,
        "run_dir": str(run.root),
        "generated": now(),
        "manifest": manifest,
        "train": train,
        "status": train.get("status", "not trained"),
        "charts": charts,
        "last_entry": last,
        "final_eval_loss": final_eval,
        "stats": stats,
        "histogram": hist,
        "template": _template_verdict(train),
        "hyperparameters": hyperparameters(run, manifest),
        "eval": evaluation,
        "regressions": [e for e in (evaluation or {}).get("rows", []) if e.get("verdict") == "worse"][:10],
        "check": manifest.get("check"),
        "export": manifest.get("export"),
        "versions": _versions(manifest),
        "missing": missing,
    }


def render(ctx: dict[str, Any]) -> str:
    from jinja2 import FileSystemLoader, StrictUndefined, TemplateError
    from jinja2.sandbox import SandboxedEnvironment

    from lf_wrap.util.paths import templates_dir

    env = SandboxedEnvironment(
        loader=FileSystemLoader(str(templates_dir())), undefined=StrictUndefined, autoescape=True,
        trim_blocks=True, lstrip_blocks=True,
    )  # fmt: skip
    env.filters["num"] = lambda v, d=2: "–" if v is None else f"{v:.{d}f}"
    env.filters["json"] = lambda v: json.dumps(v, ensure_ascii=False)
    try:
        return env.get_template(TEMPLATE).render(**ctx)
    except TemplateError as err:
        raise LfWrapError(f"templates/{TEMPLATE}: {err}", hint="a bug in lf-wrap or in an edited template") from err


def write(run_dir: Path) -> tuple[Path, list[str]]:
    """Write runs/<name>/report.html atomically; (its path, the parts the run does not have yet)."""
    if not run_dir.is_dir():
        raise LfWrapError(
            f"{run_dir}: no such run folder",
            hint="train a run first (`lf-wrap train`), or name one with --run NAME (and --runs-dir DIR)",
        )
    if not (run_dir / "manifest.json").is_file() and not (run_dir / "output").is_dir():
        raise LfWrapError(
            f"{run_dir}: not a run folder (no manifest.json, no output/)",
            hint="pass the folder `lf-wrap train` made: runs/<run_name>",
        )
    ctx = context(run_dir)
    page = render(ctx)
    path = run_dir / REPORT_FILE
    atomic_write(path, page)
    return path, ctx["missing"]


def try_write(run_dir: Path) -> str:
    """For train/eval/check: write the report and say where it is; a failure is a note, never an error."""
    try:
        path, _ = write(run_dir)
    except Exception as err:  # the step itself succeeded: its report is a bonus
        return f"report: not written ({str(err).splitlines()[0]}); try `lf-wrap report`"
    return f"report: {_shown(path)}"


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def record_check(
    run_dir: Path, base_url: str, model: str | None, ok: bool, checks: list[dict[str, Any]], skipped: list[Any]
) -> str | None:
    """Keep `lf-wrap check`'s results in the run's manifest and rewrite the report (only for a run
    folder that exists: checking some other server never makes one). The line to print, or None."""
    if not (run_dir / "manifest.json").is_file():
        return None
    trimmed = [{k: v for k, v in c.items() if k in ("name", "ok", "detail")} for c in checks]
    RunFolder(run_dir).record(
        "check", {"ended": now(), "base_url": base_url, "model": model, "ok": ok, "checks": trimmed, "skipped": skipped}
    )
    return try_write(run_dir)
