"""`lf-wrap eval`: the base model's and the tuned model's answers to the same rows, side by side.

Both answer through vLLM, greedily (temperature 0), the way the tuned model will be deployed:
for a LoRA run, ONE server with the base model and the run's adapter (`--enable-lora
--lora-modules <run>=runs/<run>/output`), so both sides share an engine, its kernels and its
chat template, and a request names the side (`<run>-base` or `<run>`). vLLM's CPU build
serves LoRA adapters: vllm/platforms/cpu.py's `get_punica_wrapper` gives the CPU kernels
(vllm/lora/punica_wrapper/punica_cpu.py), and its log says "Using PunicaWrapperCPU" / "Loaded new
LoRA adapter" (tests/test_eval_served.py); a full fine-tune has no adapter, so the base model and
the trained model get a server each, one after the other. `--base-url/--tuned-url` compare any
two OpenAI-compatible endpoints instead, with `check`'s client (`lf_wrap.steps.check.Checker`: the
same api-key handling and error messages).

Rows: `--dataset` (a registered name or a file) when given; else the run's held-out rows
(LLaMA-Factory's `val_size` split, recomputed with the training environment's own
`datasets.train_test_split` and the run's seed, or its `eval_dataset`); else the training
data, which then measures memorisation, and the output says so. `--rows N` spreads N rows
evenly over them.

Per row: exact match, chrF, ROUGE-L (lf_wrap/steps/evaluate_scores.py), the latency of each answer. The
summary compares the means; rows where the tuned model got worse come first. The result is
written to runs/<name>/eval.json (atomically) and summarised in the manifest.
"""

from __future__ import annotations

import contextlib
import json
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from lf_wrap.data.convert import iter_conversations
from lf_wrap.data.registry import DatasetInvalid, entry_file, lookup, read_info, validate_entry
from lf_wrap.data.validate import Report, validate_file
from lf_wrap.project.runs import RunFolder, now
from lf_wrap.steps.check import Checker, api_errors, reasoning
from lf_wrap.steps.evaluate_scores import LABELS, METRICS, score
from lf_wrap.util.errors import ExternalError, LfWrapError
from lf_wrap.util.files import atomic_write
from lf_wrap.util.percentiles import percentile

EVAL_FILE = "eval.json"
START_TIMEOUT_S = 600.0
HF_DEFAULT_SEED = 42  # transformers' TrainingArguments.seed, what LLaMA-Factory splits with when no seed is set
_ROLES = {"user": "user", "assistant": "assistant", "observation": "user", "function": "assistant"}


@dataclass
class Row:
    index: int  # position in the dataset(s), in file order (LLaMA-Factory's order)
    messages: list[dict[str, str]]
    expected: str

    @property
    def prompt(self) -> str:
        return self.messages[-1]["content"] if self.messages else ""


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
    servers: list[Any] = field(default_factory=list)  # ServePlans lf-wrap starts (none with --base-url/--tuned-url)
    notes: list[str] = field(default_factory=list)


# -- rows -------------------------------------------------------------------------------
def read_rows(path: Path, report: Report, start: int = 0) -> tuple[list[Row], int]:
    """(rows with an answer, how many rows the file has): the last assistant turn is the answer."""
    out: list[Row] = []
    count = 0
    for i, conv in enumerate(iter_conversations(path, report)):
        count = i + 1
        if conv.ranking or not conv.turns or conv.turns[-1][0] != "assistant":
            continue
        msgs = [{"role": "system", "content": conv.system}] if conv.system else []
        msgs += [{"role": _ROLES[r], "content": c} for r, c in conv.turns[:-1]]
        out.append(Row(start + i, msgs, conv.turns[-1][1]))
    return out, count


def _registered_rows(dataset_dir: Path, names: list[str], cap: int | None = None) -> tuple[list[Row], int]:
    rows: list[Row] = []
    total = 0
    for name in names:
        info = read_info(dataset_dir)
        path = entry_file(dataset_dir, name, lookup(info, dataset_dir, name))
        report = validate_entry(dataset_dir, name)
        if not report.ok:
            raise LfWrapError(
                f"dataset {name!r} has errors",
                hint=f"run `lf-wrap data validate --dataset-dir {dataset_dir} --name {name}`",
            )
        found, count = read_rows(path, report, total)
        if cap is not None:  # LLaMA-Factory's max_samples keeps the first rows of each dataset
            found, count = [r for r in found if r.index - total < cap], min(count, cap)
        rows += found
        total += count
    return rows, total


def _no_answers(where: str) -> LfWrapError:
    return LfWrapError(
        f"{where}: no rows with an answer to compare (every row needs a prompt and the expected answer)",
        hint="eval compares answers: give a dataset whose rows end with the assistant's answer (alpaca `output`, "
        "sharegpt `gpt`, openai `assistant`); preference rows (chosen/rejected) are not answers",
    )


def spread(rows: list[Row], n: int) -> list[Row]:
    """`n` rows spread evenly over `rows`, deterministic (0: all)."""
    if not n or len(rows) <= n:
        return rows
    step = len(rows) / n
    return [rows[int(i * step)] for i in range(n)]


def rows_from_dataset(ref: str, dataset_dir: Path, n: int) -> Rows:
    """`--dataset`: a dataset file, or a name registered in `dataset_dir`."""
    file = Path(ref).expanduser()
    if file.is_file():
        report = validate_file(file, "auto")
        if not report.ok:
            raise DatasetInvalid(report, "nothing evaluated")
        found, _ = read_rows(file, report)
        detail = f"{file} ({report.format})"
    elif "/" in ref or file.suffix.lower() in (".json", ".jsonl"):
        raise LfWrapError(f"--dataset {ref}: no such file", hint="pass a dataset file or a registered dataset name")
    else:
        found, _ = _registered_rows(dataset_dir, [ref])
        detail = f"{ref!r}, registered in {dataset_dir}"
    if not found:
        raise _no_answers(f"--dataset {ref}")
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
    return [int(i) for i in json.loads(done.stdout.strip().splitlines()[-1])]


def rows_for_run(project: Any, manifest: dict[str, Any], n: int) -> Rows:
    """The run's held-out rows (val_size split or eval_dataset), else its training data."""
    train = manifest.get("train") or {}
    config = train.get("config") or {}
    dataset_dir = project.path(project.config.dataset_dir)
    names = [d.strip() for d in str(config.get("dataset") or ",".join(project.config.datasets)).split(",") if d]
    cap = config.get("max_samples")
    eval_names = [d.strip() for d in str(config.get("eval_dataset") or "").split(",") if d.strip()]
    if eval_names:
        found, _ = _registered_rows(dataset_dir, eval_names)
        if not found:
            raise _no_answers(f"eval_dataset {','.join(eval_names)}")
        detail = f"eval_dataset {','.join(eval_names)} (LLaMA-Factory's eval loss was measured on it)"
        return Rows(spread(found, n), "eval dataset", detail, len(found))
    rows, total = _registered_rows(dataset_dir, names, cap if isinstance(cap, int) else None)
    val_size = float(config.get("val_size") or 0.0)
    if val_size > 1e-6:
        from lf_wrap.engines.llamafactory import LlamaFactory

        seed = int(config.get("seed", HF_DEFAULT_SEED))
        engine = LlamaFactory.find(project.config.llamafactory_cli, project.root)
        held = set(held_out_indices(engine.python, total, val_size, seed))
        found = [r for r in rows if r.index in held]
        if not found:
            raise _no_answers(f"the held-out rows of {','.join(names)}")
        detail = (
            f"val_size {val_size:g} of {','.join(names)}: {len(held)} rows held out (seed {seed}), never trained on"
        )
        return Rows(spread(found, n), "held-out split", detail, len(found))
    if not rows:
        raise _no_answers(f"dataset {','.join(names)}")
    detail = f"{','.join(names)}: no held-out split (val_size), so this measures memorisation, not generalisation"
    return Rows(spread(rows, n), "training data", detail, len(rows))


# -- does the adapter fit the base model? ------------------------------------------------------
def _tensor_shapes(folder: Path) -> dict[str, list[int]]:
    shapes: dict[str, list[int]] = {}
    for file in sorted(folder.glob("*.safetensors")):
        try:
            with file.open("rb") as f:
                (length,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(min(length, 100 * 1024 * 1024)))
        except (OSError, struct.error, ValueError) as err:
            raise LfWrapError(f"{file}: not a readable safetensors file ({err})") from None
        for name, info in header.items():
            if name != "__metadata__" and isinstance(info, dict):
                shapes[name] = list(info.get("shape") or [])
    return shapes


def adapter_misfits(adapter: Path, base: Path) -> list[str]:
    """Where a LoRA adapter's matrices do not fit the base model's layers (empty: it fits).

    lora_A is [rank, in_features] and lora_B [out_features, rank] of the layer they adapt
    (PEFT's layout); the base's weight is [out_features, in_features]. Read from the
    safetensors headers only: no weights loaded, no torch."""
    lora = _tensor_shapes(adapter)
    weights = _tensor_shapes(base)
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


# -- serving ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve_plan(project: Any, model: Path | None, adapter: Path | None, served_name: str | None) -> Any:
    """The server `lf-wrap serve` would start for this model (its flags, environment, chat template)."""
    from lf_wrap.steps.serve import plan

    template = None
    if getattr(project.config, "chat_template", "model") == "training":  # served as deployed: the training template
        from lf_wrap.model.template_agreement import chat_template_file

        template = chat_template_file(project, "training")
    return plan(
        project, model=model, adapter=adapter, adapter_name=None, served_name=served_name, tokenizer=None,
        max_model_len=None, host="127.0.0.1", port=free_port(), api_key=None, tensor_parallel_size=None,
        dtype=None, extra=(), chat_template=template,
    )  # fmt: skip


@contextlib.contextmanager
def running(server: Any) -> Iterator[None]:
    """A vLLM server for the length of the block: started in its own process group, logged to the
    run's serve.log, stopped (the whole group) when the block ends, also on Ctrl-C or an error."""
    from lf_wrap.steps.serve import stop_group, wait_healthy

    server.run.root.mkdir(parents=True, exist_ok=True)
    click.echo(f"$ {server.printable()}", err=True)
    with server.log.open("ab") as log:
        log.write(f"# {now()} lf-wrap eval $ {server.printable()}\n".encode())
        log.flush()
        proc = subprocess.Popen(  # an argument list, never a shell
            server.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=server.run.root, env=server.env, start_new_session=True,
        )  # fmt: skip
    try:
        seconds = wait_healthy(server, lambda: proc.poll() is None, START_TIMEOUT_S)
        click.echo(f"eval: server ready in {seconds:.0f} s ({server.base_url}/v1)", err=True)
        yield
    finally:
        stop_group(proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def shown(path: Path) -> str:
    """A path as people read it: relative to the current folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def plan_run(project: Any, rows: Rows, run: RunFolder) -> Plan:
    """How lf-wrap serves the run's base and tuned models: one server with the LoRA adapter, or
    (a full fine-tune) two servers, base then tuned."""
    base_dir = project.path(project.config.model)
    if project.config.method == "full":
        if not (run.output / "config.json").is_file():
            raise LfWrapError(f"{run.output}: no trained model there", hint="train the run first: `lf-wrap train`")
        base = _serve_plan(project, base_dir, None, "base")
        tuned = _serve_plan(project, run.output, None, run.name)
        how = "two vLLM servers, one after the other: the base model, then the fully fine-tuned model"
        return Plan(rows, how, Side("base", base.base_url, "base", shown(base_dir)),
                    Side("tuned", tuned.base_url, run.name, shown(run.output)), run, [base, tuned])  # fmt: skip
    check_adapter(run.output, base_dir)
    server = _serve_plan(project, None, run.output, None)
    how = "one vLLM server: the base model with the run's LoRA adapter (--enable-lora), both answered by one engine"
    return Plan(
        rows, how,
        Side("base", server.base_url, server.served_name, shown(base_dir)),
        Side("tuned", server.base_url, run.name, f"{shown(run.output)} (LoRA adapter)"),
        run, [server],
    )  # fmt: skip


# -- asking -----------------------------------------------------------------------------
class Answerer(Checker):
    """`check`'s client (base URL, api key, timeouts, error messages) asking for one answer."""

    @api_errors
    def answer(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        start = time.monotonic()
        resp = self._chat(messages)
        choice = resp.choices[0]
        out = {
            "answer": (choice.message.content or "").strip(),
            "latency_s": round(time.monotonic() - start, 4),
            "finish_reason": choice.finish_reason,
            "tokens": resp.usage.completion_tokens if resp.usage else None,
        }
        thought = reasoning(choice.message)
        if thought is not None:
            out["reasoning"] = thought
        return out


def connect(side: Side, api_key: str | None, opts: dict[str, Any]) -> Answerer:
    client = Answerer(side.url, api_key, side.model, opts["timeout_s"], opts["no_thinking"], opts["max_tokens"],
                      chat_template_kwargs=opts.get("chat_template_kwargs"))  # fmt: skip
    listed = client.models()  # an unreachable URL or a refused key: ExternalError, exit 1
    if not listed.ok:
        raise LfWrapError(
            f"{client.base_url}: {listed.detail}",
            hint=f"pass --{side.label}-model with one of {client.ids}" if client.ids else "is this the right server?",
        )
    side.model = client.model
    return client


def ask_all(client: Answerer, rows: list[Row], concurrency: int, tick: Callable[[], None]) -> list[dict[str, Any]]:
    def one(row: Row) -> dict[str, Any]:
        result = client.answer(row.messages)
        tick()
        return result

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, rows))


class Ticker:
    """Progress over all answers: a tqdm bar on a terminal, a line every ~10% otherwise."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.bar, self.next_line = total, 0, None, 0
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="eval", unit="answer", file=sys.stderr, dynamic_ncols=True)

    def __call__(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.done >= self.next_line or self.done == self.total:
            click.echo(f"eval: {self.done}/{self.total} answers", err=True)
            self.next_line = self.done + max(1, self.total // 10)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def execute(p: Plan, api_key: str | None, opts: dict[str, Any]) -> dict[str, Any]:
    """Both sides' answers to every row, scored. Timings: the whole command, server start-up, and
    the answering alone for each side (what `bench/bench_eval.py` compares with HF generate)."""
    started, t0 = now(), time.monotonic()
    rows = p.rows.rows
    answers: dict[str, list[dict[str, Any]]] = {}
    timings: dict[str, float] = {"server_start_s": 0.0}
    ticker = Ticker(2 * len(rows))

    def answer(side: Side, client: Answerer) -> None:
        t = time.monotonic()
        answers[side.label] = ask_all(client, rows, opts["concurrency"], ticker)
        timings[f"{side.label}_answers_s"] = round(time.monotonic() - t, 3)

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
                with _timed(timings, "server_start_s", running(server)):
                    for side in sides:
                        answer(side, connect(side, None, opts))
    finally:
        ticker.close()
    result = summarise(p, answers)
    result |= {"started": started, "duration_s": round(time.monotonic() - t0, 2), "timings": timings,
               "max_tokens": opts["max_tokens"], "concurrency": opts["concurrency"]}  # fmt: skip
    return result


@contextlib.contextmanager
def _timed(timings: dict[str, float], key: str, cm: contextlib.AbstractContextManager[None]) -> Iterator[None]:
    """Enter `cm`, adding the seconds that took to timings[key]."""
    t = time.monotonic()
    with cm:
        timings[key] = round(timings.get(key, 0.0) + time.monotonic() - t, 3)
        yield


# -- scoring ----------------------------------------------------------------------------
def summarise(p: Plan, answers: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    scored: list[dict[str, Any]] = []
    for i, row in enumerate(p.rows.rows):
        entry: dict[str, Any] = {"index": row.index, "prompt": row.prompt, "expected": row.expected}
        if len(row.messages) > 1:
            entry["messages"] = row.messages
        for label in ("base", "tuned"):
            got = answers[label][i]
            entry[label] = {**got, **score(got["answer"], row.expected).as_dict()}
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
    return {
        "run": p.run.name if p.run else None,
        "rows_from": {"kind": p.rows.kind, "detail": p.rows.detail, "rows": len(scored), "of": p.rows.of},
        "how": p.how,
        "base": {"url": p.base.url, "model": p.base.model, "what": p.base.what},
        "tuned": {"url": p.tuned.url, "model": p.tuned.model, "what": p.tuned.what},
        "summary": {"rows": len(scored), "metrics": metrics, "latency_s": latency, **counts},
        "rows": scored,
    }


def record(run: RunFolder, result: dict[str, Any]) -> Path:
    """runs/<name>/eval.json (atomic) and the summary in the manifest."""
    path = run.root / EVAL_FILE
    atomic_write(path, json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    run.record("eval", {"file": str(path), "ended": now(), "rows_from": result["rows_from"], "how": result["how"],
                        "base": result["base"], "tuned": result["tuned"], "summary": result["summary"]})  # fmt: skip
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
    return lines


def _clip(text: str, width: int = 70) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= width else flat[: width - 1] + "…")
