"""`lf-wrap check`: prove with the `openai` client that a served model answers, answers
like its training data, and how fast.

Checks, in order: /v1/models lists the name; a chat completion; a streamed one; with an
API key, that a request without it is refused; golden answers from a dataset (exact and
similarity); optionally a bounded concurrent load with latency percentiles.
"""

from __future__ import annotations

import difflib
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lf_wrap.data.convert import iter_conversations
from lf_wrap.data.registry import entry_file, lookup, read_info, validate_entry
from lf_wrap.errors import ExternalError, LfWrapError


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
    info = read_info(dataset_dir)
    path = entry_file(dataset_dir, name, lookup(info, dataset_dir, name))
    report = validate_entry(dataset_dir, name)
    if not report.ok:
        raise LfWrapError(
            f"golden dataset {name!r} has errors; run `lf-wrap data validate --dataset-dir … --name {name}`"
        )
    out: list[Golden] = []
    for conv in iter_conversations(path, report):
        if conv.ranking or not conv.turns or conv.turns[-1][0] != "assistant":
            continue
        roles = {"user": "user", "assistant": "assistant", "observation": "user", "function": "assistant"}
        msgs = [{"role": "system", "content": conv.system}] if conv.system else []
        msgs += [{"role": roles[r], "content": c} for r, c in conv.turns[:-1]]
        out.append(Golden(msgs, conv.turns[-1][1]))
    if not out:
        raise LfWrapError(f"golden dataset {name!r} has no prompt/answer rows")
    if samples and len(out) > samples:  # spread evenly, deterministic
        step = len(out) / samples
        out = [out[int(i * step)] for i in range(samples)]
    return out


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


class Checker:
    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str | None,
        timeout_s: float,
        no_thinking: bool,
        max_tokens: int,
    ) -> None:
        from openai import OpenAI

        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.client = OpenAI(base_url=self.base_url, api_key=api_key or "EMPTY", max_retries=0, timeout=timeout_s)
        self.model = model
        self.max_tokens = max_tokens
        self.extra_body = {"chat_template_kwargs": {"enable_thinking": False}} if no_thinking else None

    def _chat(self, messages: list[dict[str, str]], **kw: Any) -> Any:
        return self.client.chat.completions.create(
            model=self.model or "",
            messages=messages,  # type: ignore[arg-type]
            temperature=0,
            max_tokens=kw.pop("max_tokens", self.max_tokens),
            extra_body=self.extra_body,
            **kw,
        )

    def models(self) -> CheckResult:
        import openai

        try:
            ids = [m.id for m in self.client.models.list().data]
        except openai.AuthenticationError as err:
            raise ExternalError(
                f"{self.base_url}: the API key was refused (401)", hint="pass the right --api-key"
            ) from err
        except openai.APIConnectionError as err:
            raise ExternalError(
                f"cannot connect to {self.base_url} ({err.__cause__ or err})",
                hint="is the server running? start it with `lf-wrap serve`, or pass --base-url",
            ) from err
        except openai.APIStatusError as err:
            raise ExternalError(
                f"{self.base_url}/models answered HTTP {err.status_code}: is this an OpenAI-compatible API?"
            ) from err
        if self.model is None:
            if not ids:
                return CheckResult("models", False, "the server lists no models")
            self.model = ids[0]
        ok = self.model in ids
        return CheckResult(
            "models", ok, f"serves {ids}" + ("" if ok else f"; {self.model!r} is not among them"), {"ids": ids}
        )

    def chat(self) -> CheckResult:
        start = time.monotonic()
        resp = self._chat([{"role": "user", "content": "Hello!"}], max_tokens=16)
        text = resp.choices[0].message.content or ""
        return CheckResult(
            "chat", bool(text.strip()), f"{len(text)} chars in {time.monotonic() - start:.2f} s", {"text": text}
        )

    def stream(self) -> CheckResult:
        chunks, text = 0, ""
        first: float | None = None
        start = time.monotonic()
        for chunk in self._chat([{"role": "user", "content": "Hello!"}], max_tokens=16, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                first = first or time.monotonic() - start
                chunks += 1
                text += chunk.choices[0].delta.content
        ok = chunks > 0
        detail = f"{chunks} chunks, first after {first:.2f} s" if ok and first is not None else "no streamed content"
        return CheckResult("stream", ok, detail, {"chunks": chunks})

    def auth(self) -> CheckResult:
        import httpx

        resp = httpx.get(f"{self.base_url}/models", timeout=self.timeout_s)
        ok = resp.status_code == 401
        return CheckResult(
            "auth", ok, f"request without the key got HTTP {resp.status_code}" + ("" if ok else " (expected 401)")
        )

    def golden(self, items: list[Golden], min_match: float) -> CheckResult:
        exact, sims, misses = 0, [], []
        for g in items:
            resp = self._chat(g.messages)
            got = (resp.choices[0].message.content or "").strip()
            sim = difflib.SequenceMatcher(None, got, g.expected).ratio()
            sims.append(sim)
            if got == g.expected.strip():
                exact += 1
            elif len(misses) < 3:
                misses.append({"prompt": g.messages[-1]["content"], "expected": g.expected, "got": got})
        rate = exact / len(items)
        ok = rate >= min_match
        return CheckResult(
            "golden",
            ok,
            f"{exact}/{len(items)} exact ({rate:.0%}, need {min_match:.0%}), "
            f"mean similarity {statistics.mean(sims):.2f}",
            {"exact": exact, "total": len(items), "rate": rate, "similarity": statistics.mean(sims), "misses": misses},
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
            "latency_p50_s": round(percentile(latencies, 0.5), 3),
            "latency_p95_s": round(percentile(latencies, 0.95), 3),
        }
        detail = (
            f"{requests} requests at concurrency {concurrency}: {data['output_tokens_per_s']} output tok/s, "
            f"p50 {data['latency_p50_s']} s, p95 {data['latency_p95_s']} s, {len(errors)} errors"
        )
        return CheckResult("load", not errors, detail, data)
