"""`lf-wrap check`: prove with the `openai` client that a served model answers, answers
like its training data, and how fast.

Checks, in order: /v1/models lists the name; a chat completion; a streamed one; with an
API key, that a request without it is refused (GET /v1/models, and POST /invocations and
/tokenize, which vLLM's own key check leaves open); that a short answer ends by itself
(finish_reason "stop", not "length"); golden answers from a dataset when one is known or
given (exact and similarity; skipped otherwise, so any OpenAI-compatible server can be
checked); optionally a bounded concurrent load with latency percentiles. A thinking
model's reasoning (vLLM's reasoning parser) is reported apart; only the answer is compared.
"""

from __future__ import annotations

import difflib
import functools
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from lf_wrap.data.convert import iter_conversations
from lf_wrap.data.registry import DatasetInvalid, entry_file, lookup, read_info, validate_entry
from lf_wrap.data.validate import Report, validate_file
from lf_wrap.util.errors import ExternalError, LfWrapError
from lf_wrap.util.percentiles import percentile


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Golden:
    messages: list[dict[str, str]]
    expected: str


def golden_from_dataset(dataset_dir: Path, name: str, samples: int) -> list[Golden]:
    """Prompts and expected answers from a dataset registered in `dataset_dir`/dataset_info.json."""
    info = read_info(dataset_dir)
    path = entry_file(dataset_dir, name, lookup(info, dataset_dir, name))
    report = validate_entry(dataset_dir, name)
    if not report.ok:
        raise LfWrapError(
            f"golden dataset {name!r} has errors; run `lf-wrap data validate --dataset-dir {dataset_dir} --name {name}`"
        )
    return _golden_rows(path, report, name, samples)


def golden_from_file(path: Path, samples: int) -> list[Golden]:
    """Prompts and expected answers from a dataset file (alpaca, sharegpt or openai rows), unregistered."""
    report = validate_file(path, "auto")
    if not report.ok:
        raise DatasetInvalid(report, "no golden answers read")
    return _golden_rows(path, report, str(path), samples)


def registered(dataset_dir: Path, name: str) -> str | None:
    """Why `name` is not a usable registered dataset in `dataset_dir` (None: it is registered, its file exists)."""
    try:
        entry_file(dataset_dir, name, lookup(read_info(dataset_dir), dataset_dir, name))
    except LfWrapError as err:
        return err.message
    return None


def _golden_rows(path: Path, report: Report, name: str, samples: int) -> list[Golden]:
    out: list[Golden] = []
    for conv in iter_conversations(path, report):
        if conv.ranking or not conv.turns or conv.turns[-1][0] != "assistant":
            continue
        out.append(Golden(conv.chat_messages(conv.turns[:-1]), conv.turns[-1][1]))
    if not out:
        raise LfWrapError(f"golden dataset {name!r} has no prompt/answer rows")
    if samples and len(out) > samples:  # spread evenly, deterministic
        step = len(out) / samples
        out = [out[int(i * step)] for i in range(samples)]
    return out


def reasoning(message: Any) -> str | None:
    """The think block vLLM's reasoning parser took out of an answer (or a streamed delta):
    `reasoning_content`, or `reasoning` in newer vLLM; None without a parser."""
    for name in ("reasoning_content", "reasoning"):
        value = getattr(message, name, None)
        if isinstance(value, str):
            return value
    return None


_Check = TypeVar("_Check", bound=Callable[..., Any])  # a method of a class with `explain(err)` (Checker's, eval's)


def api_errors(check: _Check) -> _Check:
    """Every request a check sends goes through here: an SDK error becomes one clear ExternalError
    (`Checker.explain`), never a traceback."""

    @functools.wraps(check)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        import openai

        try:
            return check(self, *args, **kwargs)
        except openai.OpenAIError as err:
            raise self.explain(err) from err

    return guarded  # type: ignore[return-value]


def _server_message(err: Any) -> str:
    """The error text the server sent (OpenAI style {"error": {"message": …}}, or the SDK's)."""
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        if isinstance(message, str) and message:
            return message
    return str(getattr(err, "message", "") or err)


class Checker:
    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str | None,
        timeout_s: float,
        no_thinking: bool,
        max_tokens: int,
        chat_template_kwargs: dict[str, Any] | None = None,
    ) -> None:
        from openai import OpenAI

        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.client = OpenAI(base_url=self.base_url, api_key=api_key or "EMPTY", max_retries=0, timeout=timeout_s)
        self.model = model
        self.ids: list[str] = []  # what /v1/models listed
        self.max_tokens = max_tokens
        kwargs = {**(chat_template_kwargs or {}), **({"enable_thinking": False} if no_thinking else {})}
        self.chat_template_kwargs = kwargs
        self.extra_body = {"chat_template_kwargs": kwargs} if kwargs else None

    def _chat(self, messages: list[dict[str, str]], **kw: Any) -> Any:
        return self.client.chat.completions.create(
            model=self.model or "",
            messages=messages,  # type: ignore[arg-type]
            temperature=0,
            max_tokens=kw.pop("max_tokens", self.max_tokens),
            extra_body=self.extra_body,
            **kw,
        )

    def explain(self, err: Exception) -> ExternalError:
        """The one place an `openai` SDK error becomes a message: what happened, where, what to do."""
        import openai

        url, said = self.base_url, _server_message(err)
        served = f"the server serves {self.ids}: pass one with --model" if self.ids else None
        if isinstance(err, openai.APITimeoutError):
            return ExternalError(
                f"{url}: no answer within {self.timeout_s:g} s",
                hint="raise --timeout (a big model on CPU is slow), or lower --max-tokens",
            )
        if isinstance(err, openai.APIConnectionError):
            return ExternalError(
                f"cannot connect to {url} ({err.__cause__ or err})",
                hint="is the server running? start it with `lf-wrap serve`, or pass --base-url",
            )
        if isinstance(err, openai.NotFoundError):
            return ExternalError(
                f"{url}: HTTP 404 for model {self.model!r}: {said}",
                hint=served or "check --model, and that --base-url is the API root (e.g. http://HOST:8000/v1)",
            )
        refusals: tuple[tuple[type[Exception], str, str], ...] = (
            (
                openai.AuthenticationError,
                "the API key was refused (401)",
                "pass the key the server was started with: --api-key KEY (or LF_WRAP_API_KEY)",
            ),
            (openai.PermissionDeniedError, "access denied (403)", "check --api-key and the server's rules"),
            (
                openai.BadRequestError,
                "the server refused the request (400)",
                "a prompt + --max-tokens longer than the server's max model length? lower --max-tokens",
            ),
        )
        for kind, what, hint in refusals:
            if isinstance(err, kind):
                return ExternalError(f"{url}: {what}: {said}", hint=hint)
        if isinstance(err, openai.APIStatusError):
            return ExternalError(
                f"{url}: HTTP {err.status_code}: {said}", hint="is this an OpenAI-compatible API? see the server's log"
            )
        return ExternalError(f"{url}: unexpected answer ({type(err).__name__}: {said})", hint="see the server's log")

    @api_errors
    def models(self) -> CheckResult:
        ids = [m.id for m in self.client.models.list().data]
        self.ids = ids
        if self.model is None:
            if not ids:
                return CheckResult("models", False, "the server lists no models")
            self.model = ids[0]
        ok = self.model in ids
        return CheckResult(
            "models", ok, f"serves {ids}" + ("" if ok else f"; {self.model!r} is not among them"), {"ids": ids}
        )

    @api_errors
    def chat(self) -> CheckResult:
        start = time.monotonic()
        resp = self._chat([{"role": "user", "content": "Hello!"}], max_tokens=16)
        message = resp.choices[0].message
        text, thought = message.content or "", reasoning(message)
        detail = f"{len(text)} chars in {time.monotonic() - start:.2f} s"
        if thought is not None:
            detail += f", reasoning apart ({len(thought)} chars)"
        return CheckResult("chat", bool(text.strip()), detail, {"text": text, "reasoning": thought})

    @api_errors
    def stops(self, messages: list[dict[str, str]]) -> CheckResult:
        """A short answer ends because the model wrote its end token (finish_reason "stop"),
        not because it ran into max_tokens ("length"): the EOS ids the server stops on
        (generation_config.json, checked by `lf-wrap export`) include what training ended answers with."""
        resp = self._chat(messages)
        reason = resp.choices[0].finish_reason
        tokens = resp.usage.completion_tokens if resp.usage else None
        ok = reason == "stop"
        detail = f"{messages[-1]['content'][:30]!r} answered in {tokens} tokens, finish_reason {reason!r}"
        if not ok:
            detail += (
                f" (max_tokens {self.max_tokens}): the model did not stop by itself; check that the token its "
                "answers end with is an eos_token_id in the model's generation_config.json"
            )
        return CheckResult("stop", ok, detail, {"finish_reason": reason, "completion_tokens": tokens})

    @api_errors
    def stream(self) -> CheckResult:
        chunks, text = 0, ""
        first: float | None = None
        start = time.monotonic()
        thought_chunks = 0
        for chunk in self._chat([{"role": "user", "content": "Hello!"}], max_tokens=16, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                first = first or time.monotonic() - start
                chunks += 1
                text += chunk.choices[0].delta.content
            elif chunk.choices and reasoning(chunk.choices[0].delta):
                first = first or time.monotonic() - start
                thought_chunks += 1
        ok = chunks + thought_chunks > 0
        detail = f"{chunks} chunks, first after {first:.2f} s" if ok and first is not None else "no streamed content"
        if thought_chunks:
            detail += f" (+{thought_chunks} of reasoning)"
        return CheckResult("stream", ok, detail, {"chunks": chunks, "reasoning_chunks": thought_chunks})

    def auth(self) -> CheckResult:
        """Requests without the key are refused: /v1/models (401), and vLLM's routes outside /v1
        that answer anyone unless something else guards them (no 2xx)."""
        import httpx

        root = self.base_url.removesuffix("/v1")
        model = self.model or ""
        probes = [
            ("GET", f"{self.base_url}/models", None),
            ("POST", f"{root}/invocations", {"model": model, "messages": [{"role": "user", "content": "Hi"}],
                                             "max_tokens": 1}),
            ("POST", f"{root}/tokenize", {"model": model, "prompt": "Hi"}),
        ]  # fmt: skip
        statuses: dict[str, int] = {}
        for method, url, body in probes:
            try:
                code = httpx.request(method, url, json=body, timeout=self.timeout_s).status_code
            except httpx.HTTPError as err:
                raise ExternalError(f"{method} {url} without the key failed: {err}") from err
            statuses[f"{method} {url.removeprefix(root)}"] = code
        models = statuses.pop("GET /v1/models")
        leaks = [f"{name} got HTTP {code}" for name, code in statuses.items() if 200 <= code < 300]
        ok = models == 401 and not leaks
        detail = f"request without the key got HTTP {models}" + ("" if models == 401 else " (expected 401)")
        if leaks:
            detail += f"; answered without the key: {', '.join(leaks)} (serve with `lf-wrap serve --api-key`)"
        else:
            detail += f"; {', '.join(f'{k} {v}' for k, v in statuses.items())}"
        return CheckResult("auth", ok, detail, {"statuses": {"GET /v1/models": models, **statuses}})

    @api_errors
    def golden(self, items: list[Golden], min_match: float) -> CheckResult:
        exact, thoughts = 0, 0
        sims: list[float] = []
        misses: list[dict[str, Any]] = []
        for g in items:
            resp = self._chat(g.messages)
            message = resp.choices[0].message
            got = (message.content or "").strip()  # the answer; a think block is reasoning, apart
            thought = reasoning(message)
            thoughts += thought is not None
            sim = difflib.SequenceMatcher(None, got, g.expected).ratio()
            sims.append(sim)
            if got == g.expected.strip():
                exact += 1
            elif len(misses) < 3:
                miss = {"prompt": g.messages[-1]["content"], "expected": g.expected, "got": got}
                misses.append({**miss, "reasoning": thought} if thought else miss)
        rate = exact / len(items)
        ok = rate >= min_match
        return CheckResult(
            "golden",
            ok,
            f"{exact}/{len(items)} exact ({rate:.0%}, need {min_match:.0%}), "
            f"mean similarity {statistics.mean(sims):.2f}",
            {
                "exact": exact,
                "total": len(items),
                "rate": rate,
                "similarity": statistics.mean(sims),
                "misses": misses,
                "with_reasoning": thoughts,
            },
        )

    def load(self, prompts: list[list[dict[str, str]]], concurrency: int, requests: int) -> CheckResult:
        def one(i: int) -> tuple[float, int, str | None]:
            start = time.monotonic()
            try:
                resp = self._chat(prompts[i % len(prompts)])
            except Exception as err:  # counted and reported, not raised
                return time.monotonic() - start, 0, type(err).__name__
            return time.monotonic() - start, (resp.usage.completion_tokens if resp.usage else 0), None

        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            results = list(pool.map(one, range(requests)))
        wall = time.monotonic() - start
        latencies = [r[0] for r in results if r[2] is None]
        errors = [r[2] for r in results if r[2] is not None]
        tokens = sum(r[1] for r in results)
        data = {
            "concurrency": concurrency,
            "requests": requests,
            "errors": len(errors),
            "wall_s": round(wall, 3),
            "output_tokens": tokens,
            "output_tokens_per_s": round(tokens / wall, 1) if wall else 0.0,
            "latency_p50_s": round(float(percentile(latencies, 0.5)), 3),
            "latency_p95_s": round(float(percentile(latencies, 0.95)), 3),
        }
        detail = (
            f"{requests} requests at concurrency {concurrency}: {data['output_tokens_per_s']} output tok/s, "
            f"p50 {data['latency_p50_s']} s, p95 {data['latency_p95_s']} s, {len(errors)} errors"
        )
        return CheckResult("load", not errors, detail, data)
