"""`lf-wrap eval`: the base model's and the tuned model's answers to the same rows, side by side.

Both answer through vLLM, greedily (temperature 0), the way the tuned model will be deployed:
for a LoRA run, ONE server with the base model and the run's adapter (`--enable-lora
--lora-modules <run>=runs/<run>/output`), so both sides share an engine, its kernels and its
chat template, and a request names the side (`<run>-base` or `<run>`). vLLM's CPU build
serves LoRA adapters: vllm/platforms/cpu.py's `get_punica_wrapper` gives the CPU kernels
(vllm/lora/punica_wrapper/punica_cpu.py), and its log says "Using PunicaWrapperCPU" / "Loaded new
LoRA adapter" (tests/test_eval_served.py); a full fine-tune has no adapter, so the base model and
the trained model get a server each, one after the other (started as `lf-wrap serve` starts
them: steps/serve.py). `--base-url/--tuned-url` compare any two OpenAI-compatible endpoints
instead, with the one client (engines/openai_api.py: the same api-key handling and error
messages as `check` and `chat`).

Rows: `--dataset` (a registered name or a file) when given; else the run's held-out rows
(LLaMA-Factory's `val_size` split, recomputed with the training environment's own
`datasets.train_test_split` and the run's seed, or its `eval_dataset`); else the training
data, which then measures memorisation, and the output says so. `--rows N` spreads N rows
evenly over them.

Rows with answers are read by data/answers.py, as `check` reads its golden answers. Per row:
exact match, chrF, ROUGE-L (lf_wrap/steps/evaluate_scores.py), the latency of each answer. The
summary compares the means; rows where the tuned model got worse come first. The result is
written to runs/<name>/eval.json (atomically) and summarised in the manifest.
"""

from __future__ import annotations

import contextlib
import copy
import json
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lf_wrap.data.answers import Row, from_file, from_registered, no_answers, spread
from lf_wrap.engines.llamafactory import LlamaFactory
from lf_wrap.engines.openai_api import Client
from lf_wrap.model.folder import tensor_shapes
from lf_wrap.model.thinking import request_kwargs
from lf_wrap.project.config import Project
from lf_wrap.project.runs import RunFolder, now
from lf_wrap.project.small_data import REPLAY_SUFFIX
from lf_wrap.project.target import in_a_project, locate
from lf_wrap.steps import evaluate_canary as canary
from lf_wrap.steps import evaluate_gate as gate
from lf_wrap.steps.evaluate_scores import LABELS, METRICS, score
from lf_wrap.steps.report import try_write
from lf_wrap.steps.serve import ServePlan, plan_to_compare, running
from lf_wrap.util import console
from lf_wrap.util.errors import ExternalError, LfWrapError
from lf_wrap.util.files import atomic_write
from lf_wrap.util.percentiles import percentile
from lf_wrap.util.progress import Ticker

EVAL_FILE = "eval.json"
START_TIMEOUT_S = 600.0
HF_DEFAULT_SEED = 42  # transformers' TrainingArguments.seed, what LLaMA-Factory splits with when no seed is set


@dataclass
class Rows:
    rows: list[Row]
    kind: str  # "held-out split" | "eval dataset" | "dataset" | "training data"
    detail: str  # where from, for people
    of: int  # how many rows the source had (before --rows)

    def describe(self) -> str:
        picked = f"{len(self.rows)} rows" + (f" of {self.of}" if self.of != len(self.rows) else "")
        return f"{picked} from the {self.kind}: {self.detail}"


@dataclass
class Side:
    label: str  # "base" | "tuned"
    url: str
    model: str | None
    what: str  # the model folder / adapter / endpoint, for people


@dataclass
class Plan:
    rows: Rows
    how: str  # how the two sides are served, for people
    base: Side
    tuned: Side
    run: RunFolder | None
    servers: list[ServePlan] = field(default_factory=list)  # what lf-wrap starts (none with --base-url/--tuned-url)
    notes: list[str] = field(default_factory=list)
    vocabulary: list[str] = field(default_factory=list)  # names of the training answers, for the canary's drift
    replayed: bool = False  # the run trained on replay rows already (its verdict's advice then differs)


def rows_from_dataset(ref: str, dataset_dir: Path, n: int) -> Rows:
    """`--dataset`: a dataset file, or a name registered in `dataset_dir`."""
    file = Path(ref).expanduser()
    if file.is_file():
        found, report = from_file(file, "nothing evaluated")
        detail = f"{file} ({report.format})"
    elif "/" in ref or file.suffix.lower() in (".json", ".jsonl"):
        raise LfWrapError(f"--dataset {ref}: no such file", hint="pass a dataset file or a registered dataset name")
    else:
        found, _ = from_registered(dataset_dir, [ref])
        detail = f"{ref!r}, registered in {dataset_dir}"
    if not found:
        raise no_answers(f"--dataset {ref}")
    return Rows(spread(found, n), "dataset", detail, len(found))


def held_out_indices(python: Path, rows: int, val_size: float, seed: int) -> list[int]:
    """The rows LLaMA-Factory held out with `val_size`: its split_dataset calls
    `datasets.Dataset.train_test_split(test_size=val_size, seed=seed)` (an int count when
    val_size > 1) on the merged rows; the same call in the training environment gives the
    same indices, for any datasets version it has."""
    code = (
        "import json, sys\n"
        "from datasets import Dataset\n"
        "n, v, s = json.loads(sys.argv[1])\n"
        "d = Dataset.from_dict({'i': list(range(n))}).train_test_split(test_size=int(v) if v > 1 else v, seed=s)\n"
        "print(json.dumps(sorted(d['test']['i'])))\n"
    )
    cmd = [str(python), "-c", code, json.dumps([rows, val_size, seed])]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ExternalError(f"could not recompute the held-out rows with {python}: {err}") from err
    if done.returncode != 0:
        raise ExternalError(
            f"could not recompute the held-out rows with {python} (exit {done.returncode}):\n{done.stderr[-1500:]}",
            hint="pass the rows to compare with --dataset",
        )
    try:
        return [int(i) for i in json.loads(done.stdout.strip().splitlines()[-1])]
    except (ValueError, TypeError, IndexError):
        raise ExternalError(
            f"could not recompute the held-out rows with {python}: it printed {done.stdout[-300:]!r}"
        ) from None


def rows_for_run(project: Project, manifest: dict[str, Any], n: int) -> Rows:
    """The run's held-out rows (val_size split or eval_dataset), else its training data."""
    train = manifest.get("train") or {}
    config = train.get("config") or {}
    dataset_dir = project.path(project.config.dataset_dir)
    names = [d.strip() for d in str(config.get("dataset") or ",".join(project.config.datasets)).split(",") if d]
    cap = config.get("max_samples")
    eval_names = [d.strip() for d in str(config.get("eval_dataset") or "").split(",") if d.strip()]
    if eval_names:
        found, _ = from_registered(dataset_dir, eval_names)
        if not found:
            raise no_answers(f"eval_dataset {','.join(eval_names)}")
        detail = f"eval_dataset {','.join(eval_names)} (LLaMA-Factory's eval loss was measured on it)"
        return Rows(spread(found, n), "eval dataset", detail, len(found))
    rows, total = from_registered(dataset_dir, names, cap if isinstance(cap, int) else None)
    val_size = float(config.get("val_size") or 0.0)
    if val_size > 1e-6:
        seed = int(config.get("seed", HF_DEFAULT_SEED))
        engine = LlamaFactory.find(project.config.llamafactory_cli, project.root)
        held = set(held_out_indices(engine.python, total, val_size, seed))
        found = [r for r in rows if r.index in held]
        if not found:
            raise no_answers(f"the held-out rows of {','.join(names)}")
        detail = (
            f"val_size {val_size:g} of {','.join(names)}: {len(held)} rows held out (seed {seed}), never trained on"
        )
        return Rows(spread(found, n), "held-out split", detail, len(found))
    if not rows:
        raise no_answers(f"dataset {','.join(names)}")
    detail = f"{','.join(names)}: no held-out split (val_size), so this measures memorisation, not generalisation"
    return Rows(spread(rows, n), "training data", detail, len(rows))


# -- does the adapter fit the base model? ------------------------------------------------------
def adapter_misfits(adapter: Path, base: Path) -> list[str]:
    """Where a LoRA adapter's matrices do not fit the base model's layers (empty: it fits).

    lora_A is [rank, in_features] and lora_B [out_features, rank] of the layer they adapt
    (PEFT's layout); the base's weight is [out_features, in_features]. Read from the
    safetensors headers only: no weights loaded, no torch."""
    lora = tensor_shapes(adapter)
    weights = tensor_shapes(base)
    if not lora or not weights:
        return []  # nothing to compare (e.g. .bin weights): vLLM will say
    problems: list[str] = []
    for name, shape in sorted(lora.items()):
        for part, dim in ((".lora_A.weight", 1), (".lora_B.weight", 0)):
            if not name.endswith(part):
                continue
            layer = name.removeprefix("base_model.model.").removesuffix(part) + ".weight"
            target = weights.get(layer)
            if target is None:
                problems.append(f"{layer}: the base model has no such layer")
            elif len(target) == 2 and len(shape) == 2 and shape[dim] != target[dim]:
                side = "in" if dim == 1 else "out"
                problems.append(
                    f"{layer}: the adapter expects {side}_features {shape[dim]}, the base has {target[dim]}"
                )
    return problems


def check_adapter(adapter: Path, base: Path) -> None:
    if not (adapter / "adapter_config.json").is_file():
        raise LfWrapError(
            f"{adapter}: no LoRA adapter (adapter_config.json) there",
            hint="train the run first (`lf-wrap train`), or compare two endpoints with --base-url/--tuned-url",
        )
    problems = adapter_misfits(adapter, base)
    if problems:
        listed = "\n".join(f"  {p}" for p in problems[:5]) + (
            f"\n  … {len(problems) - 5} more" if len(problems) > 5 else ""
        )
        raise LfWrapError(
            f"the adapter in {adapter} does not fit the base model {base} ({len(problems)} layers):\n{listed}",
            hint="the run was trained on another base model: set `model:` to the one it was trained on "
            "(adapter_config.json's base_model_name_or_path says which)",
        )


def shown(path: Path) -> str:
    """A path as people read it: relative to the current folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


# -- serving ----------------------------------------------------------------------------
def plan_run(project: Project, rows: Rows, run: RunFolder) -> Plan:
    """How lf-wrap serves the run's base and tuned models: one server with the LoRA adapter, or
    (a full fine-tune) two servers, base then tuned."""
    base_dir = project.path(project.config.model)
    if project.config.method == "full":
        if not (run.output / "config.json").is_file():
            raise LfWrapError(f"{run.output}: no trained model there", hint="train the run first: `lf-wrap train`")
        base = plan_to_compare(project, base_dir, None, "base")
        tuned = plan_to_compare(project, run.output, None, run.name)
        how = "two vLLM servers, one after the other: the base model, then the fully fine-tuned model"
        return Plan(rows, how, Side("base", base.base_url, "base", shown(base_dir)),
                    Side("tuned", tuned.base_url, run.name, shown(run.output)), run, [base, tuned])  # fmt: skip
    check_adapter(run.output, base_dir)
    server = plan_to_compare(project, None, run.output, None)
    how = "one vLLM server: the base model with the run's LoRA adapter (--enable-lora), both answered by one engine"
    return Plan(
        rows, how,
        Side("base", server.base_url, server.served_name, shown(base_dir)),
        Side("tuned", server.base_url, run.name, f"{shown(run.output)} (LoRA adapter)"),
        run, [server],
    )  # fmt: skip


# -- asking -----------------------------------------------------------------------------
def connect(side: Side, api_key: str | None, opts: dict[str, Any]) -> Client:
    kwargs = request_kwargs(opts.get("chat_template_kwargs") or {}, False if opts["no_thinking"] else None)
    client = Client(side.url, api_key, side.model, opts["timeout_s"], opts["max_tokens"], kwargs)
    named = side.model is not None
    ids = client.list_models()  # an unreachable URL or a refused key: ExternalError, exit 1
    if not ids or (named and side.model not in ids):
        detail = "the server lists no models" if not ids else f"serves {ids}; {side.model!r} is not among them"
        raise LfWrapError(
            f"{client.base_url}: {detail}",
            hint=f"pass --{side.label}-model with one of {client.ids}" if client.ids else "is this the right server?",
        )
    side.model = client.model
    return client


def ask_all(client: Client, rows: list[Row], concurrency: int, tick: Callable[[], None]) -> list[dict[str, Any]]:
    def one(row: Row) -> dict[str, Any]:
        result = client.answer(row.messages)
        tick()
        return result

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, rows))


def execute(p: Plan, api_key: str | None, opts: dict[str, Any]) -> dict[str, Any]:
    """Both sides' answers to every row, scored. Timings: the whole command, server start-up, and
    the answering alone for each side (what `bench/bench_eval.py` compares with HF generate)."""
    started, t0 = now(), time.monotonic()
    rows = p.rows.rows
    answers: dict[str, list[dict[str, Any]]] = {}
    timings: dict[str, float] = {"server_start_s": 0.0}
    canary_rows = canary_questions() if opts.get("canary") else []
    ticker = Ticker(2 * (len(rows) + len(canary_rows)), "eval", "answer")

    def answer(side: Side, client: Client) -> None:
        t = time.monotonic()
        answers[side.label] = ask_all(client, rows, opts["concurrency"], ticker)
        timings[f"{side.label}_answers_s"] = round(time.monotonic() - t, 3)
        if canary_rows:
            t = time.monotonic()
            limited = copy.copy(client)
            limited.max_tokens = min(opts["max_tokens"], CANARY_MAX_TOKENS)
            answers[f"{side.label}_canary"] = ask_all(limited, canary_rows, opts["concurrency"], ticker)
            timings[f"{side.label}_canary_s"] = round(time.monotonic() - t, 3)

    try:
        if not p.servers:  # two endpoints given
            clients = {s.label: connect(s, api_key, opts) for s in (p.base, p.tuned)}
            for side in (p.base, p.tuned):
                answer(side, clients[side.label])
        else:  # one server for both sides (LoRA), or one per side (full fine-tune), one after the other
            pairs = (
                [(p.servers[0], (p.base, p.tuned))]
                if len(p.servers) == 1
                else list(zip(p.servers, [(p.base,), (p.tuned,)], strict=True))
            )
            for server, sides in pairs:
                with _timed(timings, "server_start_s", running(server, START_TIMEOUT_S, "lf-wrap eval ")) as seconds:
                    console.note(f"eval: server ready in {seconds:.0f} s ({server.base_url}/v1)")
                    for side in sides:
                        answer(side, connect(side, None, opts))
    finally:
        ticker.close()
    result = summarise(p, answers)
    result |= {"started": started, "duration_s": round(time.monotonic() - t0, 2), "timings": timings,
               "max_tokens": opts["max_tokens"], "concurrency": opts["concurrency"]}  # fmt: skip
    return result


CANARY_MAX_TOKENS = 64  # a right answer says its fact early; the canary costs ~1 min per side on a 135M model on CPU


def canary_questions() -> list[Row]:
    return [Row(-1 - i, [{"role": "user", "content": q.question}], "", q.expect)
            for i, q in enumerate(canary.questions())]  # fmt: skip


@contextlib.contextmanager
def _timed(timings: dict[str, float], key: str, cm: contextlib.AbstractContextManager[float]) -> Iterator[float]:
    """Enter `cm`, adding the seconds that took to timings[key]."""
    t = time.monotonic()
    with cm as value:
        timings[key] = round(timings.get(key, 0.0) + time.monotonic() - t, 3)
        yield value


def compare(
    config_file: Path | None,
    sets: tuple[str, ...],
    *,
    dataset_ref: str | None,
    dataset_dir: Path | None,
    n_rows: int,
    base_url: str | None,
    tuned_url: str | None,
    base_model: str | None,
    tuned_model: str | None,
    api_key: str | None,
    max_tokens: int,
    concurrency: int,
    timeout_s: float,
    no_thinking: bool,
    no_report: bool,
    canary_on: bool = True,
    fail_on: tuple[str, ...] = (),
    no_fail_on: bool = False,
) -> tuple[dict[str, Any], str | None]:
    """`lf-wrap eval`: the rows, how both sides are served, their answers scored; recorded in the
    run folder (eval.json, the manifest, the report) when there is one. (The result, the report line.)
    With rules (--fail-on, else the project's eval.fail_on), result["gate"] says which failed."""
    rules = gate.parse_all(fail_on)  # a bad rule is refused before any server starts
    project, run = None, None
    if not base_url or in_a_project(config_file, sets):  # two endpoints need no project; a run's eval does
        project, run = locate(config_file, sets, settings=True)
        if not base_url and not run.root.is_dir():
            raise LfWrapError(
                f"{run.root}: no such run",
                hint="train it first (`lf-wrap train`), name another with --run NAME, or compare two endpoints "
                "with --base-url/--tuned-url",
            )
    if not rules and project is not None and not no_fail_on:
        where = project.origins.get("eval.fail_on") or project.origins.get("eval") or project.source
        rules = [gate.parse(r, f"{where}: eval.fail_on[{i}]") for i, r in enumerate(project.config.eval.fail_on)]
    manifest = run.manifest() if run else {}
    dataset_dir = dataset_dir or (project.path(project.config.dataset_dir) if project else Path("data"))
    if dataset_ref:
        rows = rows_from_dataset(dataset_ref, dataset_dir, n_rows)
    else:
        assert project is not None  # the command line asks for --dataset where there is no project
        rows = rows_for_run(project, manifest, n_rows)
    opts = {"timeout_s": timeout_s, "no_thinking": no_thinking, "max_tokens": max_tokens, "concurrency": concurrency,
            "chat_template_kwargs": (run.thinking() if run else {}).get("chat_template_kwargs") or None,
            "canary": canary_on}  # fmt: skip
    if base_url and tuned_url:
        sides = Side("base", base_url, base_model, base_url), Side("tuned", tuned_url, tuned_model, tuned_url)
        p = Plan(rows, "two endpoints given with --base-url/--tuned-url", *sides, run)
    else:
        assert project is not None and run is not None
        p = plan_run(project, rows, run)
    if canary_on:
        p.vocabulary = training_vocabulary(project, manifest, rows)
        p.replayed = any(n.endswith(REPLAY_SUFFIX) for n in trained_on(project, manifest))
    console.note(f"eval: {rows.describe()}")
    console.note(f"eval: {p.how}")
    result = execute(p, api_key, opts)
    if rules:
        result["gate"] = gate.judge(rules, result)
    report_line = None
    if run is not None and run.root.is_dir():
        result["file"] = str(record(run, result))
        if not no_report:
            report_line = try_write(run.root)
    return result, report_line


class GateFailed(ExternalError):
    """`eval --fail-on`: the tuned model failed a rule (exit 1, like a failed check)."""


def gate_failure(result: dict[str, Any]) -> GateFailed | None:
    """The error to exit with when a --fail-on rule failed (None when every rule passed)."""
    failed = gate.failed(result.get("gate", []))
    if failed:
        worse = sorted(e["index"] for e in result["rows"] if e["verdict"] == "worse")
        rows = f"; rows that got worse: {', '.join(map(str, worse[:20]))}" + (" …" if len(worse) > 20 else "")
        return GateFailed(
            "eval: the gate failed: "
            + "; ".join(f"{j['rule']} ({j['why']})" for j in failed)
            + (rows if worse else ""),
            hint=f"each row's answers are in {result['file']}" if result.get("file") else "--json shows every row",
        )
    return None


def trained_on(project: Project | None, manifest: dict[str, Any]) -> list[str]:
    """The dataset names the run trained on: its training config's, else the project file's."""
    config = (manifest.get("train") or {}).get("config") or {}
    listed = config.get("dataset") or (",".join(project.config.datasets) if project is not None else "")
    return [d.strip() for d in str(listed).split(",") if d.strip()]


def training_vocabulary(project: Project | None, manifest: dict[str, Any], rows: Rows) -> list[str]:
    """The names the training answers use (the canary's drift looks for them in general answers):
    from the run's datasets (not its replay rows: those are the base model's own answers), else
    from the compared rows' expected answers."""
    answers = [r.expected for r in rows.rows]
    if project is not None:
        names = [n for n in trained_on(project, manifest) if not n.endswith(REPLAY_SUFFIX)]
        with contextlib.suppress(LfWrapError):
            answers = [r.expected for r in from_registered(project.path(project.config.dataset_dir), names)[0]]
    return canary.names(answers)


# -- scoring ----------------------------------------------------------------------------
def summarise(p: Plan, answers: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    scored: list[dict[str, Any]] = []
    for i, row in enumerate(p.rows.rows):
        entry: dict[str, Any] = {"index": row.index, "prompt": row.prompt, "expected": row.expected}
        if row.expect:
            entry["expect"] = list(row.expect)
        if len(row.messages) > 1:
            entry["messages"] = row.messages
        for label in ("base", "tuned"):
            got = answers[label][i]
            entry[label] = {**got, **score(got["answer"], row.expected).as_dict()}
            if row.expect:
                entry[label]["hit"] = canary.contains(got["answer"], row.expect)
        entry["change"] = {m: round(entry["tuned"][m] - entry["base"][m], 2) for m in METRICS}
        scored.append(entry)

    def verdict(e: dict[str, Any]) -> str:
        c = e["change"]
        if c["exact"] < 0 or c["chrf"] < -0.005:
            return "worse"
        return "better" if c["exact"] > 0 or c["chrf"] > 0.005 else "same"

    for e in scored:
        e["verdict"] = verdict(e)
    order = {"worse": 0, "same": 1, "better": 2}
    scored.sort(key=lambda e: (order[e["verdict"]], e["change"]["exact"], e["change"]["chrf"], e["index"]))
    metrics = {}
    for m in METRICS:
        b = statistics.fmean(e["base"][m] for e in scored)
        t = statistics.fmean(e["tuned"][m] for e in scored)
        metrics[m] = {"label": LABELS[m], "base": round(b, 2), "tuned": round(t, 2), "change": round(t - b, 2)}
    latency = {}
    for label in ("base", "tuned"):
        values = [e[label]["latency_s"] for e in scored]
        latency[label] = {
            "p50": round(float(percentile(values, 0.5)), 4),
            "p95": round(float(percentile(values, 0.95)), 4),
            "mean": round(statistics.fmean(values), 4),
        }
    counts = {v: sum(1 for e in scored if e["verdict"] == v) for v in ("worse", "same", "better")}
    in_order = sorted(scored, key=lambda e: e["index"])
    judged: dict[str, Any] = {
        "chrf_change": canary.paired_change([e["base"]["chrf"] for e in in_order],
                                            [e["tuned"]["chrf"] for e in in_order]),
        "hits": canary.judge_hits([e["base"]["answer"] for e in in_order], [e["tuned"]["answer"] for e in in_order],
                                  [e.get("expect", []) for e in in_order]),
    }  # fmt: skip
    if "base_canary" in answers:
        judged["canary"] = canary.judge_canary(
            [a["answer"] for a in answers["base_canary"]], [a["answer"] for a in answers["tuned_canary"]], p.vocabulary
        )
    judged["verdicts"] = canary.verdicts(judged, replayed=p.replayed)
    return {
        "run": p.run.name if p.run else None,
        "rows_from": {"kind": p.rows.kind, "detail": p.rows.detail, "rows": len(scored), "of": p.rows.of},
        "how": p.how,
        "base": {"url": p.base.url, "model": p.base.model, "what": p.base.what},
        "tuned": {"url": p.tuned.url, "model": p.tuned.model, "what": p.tuned.what},
        "summary": {"rows": len(scored), "metrics": metrics, "latency_s": latency, **counts},
        **judged,
        "rows": scored,
    }


def record(run: RunFolder, result: dict[str, Any]) -> Path:
    """runs/<name>/eval.json (atomic) and the summary in the manifest."""
    path = run.root / EVAL_FILE
    atomic_write(path, json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    run.record("eval", {"file": str(path), "ended": now(), "rows_from": result["rows_from"], "how": result["how"],
                        "base": result["base"], "tuned": result["tuned"], "summary": result["summary"],
                        "verdicts": result.get("verdicts", [])})  # fmt: skip
    return path


def summary_lines(result: dict[str, Any], shown: int = 3) -> list[str]:
    """The text `lf-wrap eval` prints: where the rows came from, regressions first, then the table."""
    s = result["summary"]
    src = result["rows_from"]
    lines = [f"rows    {src['rows']} from the {src['kind']}: {src['detail']}",
             f"served  {result['how']}",
             f"base    {result['base']['model']}  ({result['base']['what']})",
             f"tuned   {result['tuned']['model']}  ({result['tuned']['what']})"]  # fmt: skip
    worse = [e for e in result["rows"] if e["verdict"] == "worse"]
    if worse:
        lines.append(f"tuned got worse on {len(worse)} rows (worst first):")
        for e in worse[:shown]:
            lines += [f"  row {e['index']}: {_clip(e['prompt'])}",
                      f"    expected {_clip(e['expected'])}",
                      f"    base     {_clip(e['base']['answer'])}  (chrF {e['base']['chrf']:.1f})",
                      f"    tuned    {_clip(e['tuned']['answer'])}  (chrF {e['tuned']['chrf']:.1f})"]  # fmt: skip
        if len(worse) > shown:
            lines.append(f"  … {len(worse) - shown} more (--json, or the report)")
    else:
        lines.append("tuned got worse on no row")
    lines.append(f"{'metric':<13} {'base':>7} {'tuned':>7} {'change':>8}")
    for m in s["metrics"].values():
        unit = "%" if m["label"] == "exact match" else ""
        lines.append(
            f"{m['label']:<13} {m['base']:>6.1f}{unit or ' '} {m['tuned']:>6.1f}{unit or ' '} {m['change']:>+7.1f}"
        )
    lat = s["latency_s"]
    lines.append(f"{'latency p50':<13} {lat['base']['p50']:>6.2f}s {lat['tuned']['p50']:>6.2f}s")
    lines.append(
        f"tuned better on {s['better']} rows, worse on {s['worse']}, the same on {s['same']} (by chrF and exact match)"
    )
    hits = result.get("hits")
    if hits:
        lines.append(f"{'expected words':<13} {hits['base']:>4}/{hits['rows']:<2} {hits['tuned']:>4}/{hits['rows']:<2}"
                     f"  (rows whose answer has one of the row's `expect` words)")  # fmt: skip
    c = result.get("canary")
    if c:
        lines.append(f"{'canary':<13} {c['base_right']:>4}/{c['questions']:<2} "
                     f"{c['tuned_right']:>4}/{c['questions']:<2}"
                     f"  right answers to general questions: {c['broken']} broken, {c['fixed']} fixed, "
                     f"{c['drift']} in the training data's words")  # fmt: skip
        for item in [i for i in c["items"] if i["drift"] or (i["base_right"] and not i["tuned_right"])][:shown]:
            lines += [f"  {_clip(item['question'], 60)}",
                      f"    base  {_clip(item['base'])}", f"    tuned {_clip(item['tuned'])}"]  # fmt: skip
    lines += [f"verdict: {v}" for v in result.get("verdicts", [])]
    lines += gate.lines(result.get("gate", []))
    return lines


def _clip(text: str, width: int = 70) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= width else flat[: width - 1] + "…")
