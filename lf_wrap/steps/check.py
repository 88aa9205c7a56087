"""`lf-wrap check`: prove with the `openai` client that a served model answers, answers
like its training data, and how fast.

Checks, in order: /v1/models lists the name; a chat completion; a streamed one; with an
API key, that a request without it is refused (GET /v1/models, and POST /invocations and
/tokenize, which vLLM's own key check leaves open); parity (the prompt ids the server feeds
the model against LLaMA-Factory's training prompts: vLLM's /tokenize of the messages, or
llama.cpp's /apply-template and /tokenize of its text); that the answers to the same rows end
by themselves (finish_reason "stop", not "length"), and that the served folder's EOS ids hold
the template's stop word; golden answers from a dataset when one is known or
given (exact and similarity; skipped otherwise, so any OpenAI-compatible server can be
checked); optionally a bounded concurrent load with latency percentiles. A thinking
model's reasoning (vLLM's reasoning parser) is reported apart; only the answer is compared.
The server, the run and the kwargs come from project/target.py; the client is
engines/openai_api.py.
"""

from __future__ import annotations

import difflib
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lf_wrap.data.answers import Row, from_file, from_registered, no_answers, spread
from lf_wrap.data.registry import entry_file, lookup, read_info
from lf_wrap.engines.openai_api import Client, api_errors, reasoning
from lf_wrap.model.thinking import request_kwargs
from lf_wrap.project.target import Target
from lf_wrap.steps.report import record_check
from lf_wrap.util.errors import ExternalError, LfWrapError
from lf_wrap.util.percentiles import percentile

HELLO = [{"role": "user", "content": "Hello!"}]


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, **self.data}


def golden_from_dataset(dataset_dir: Path, name: str, samples: int) -> list[Row]:
    """Prompts and expected answers from a dataset registered in `dataset_dir`/dataset_info.json."""
    rows, _ = from_registered(dataset_dir, [name])
    if not rows:
        raise no_answers(f"golden dataset {name!r}")
    return spread(rows, samples)


def golden_from_file(path: Path, samples: int) -> list[Row]:
    """Prompts and expected answers from a dataset file (alpaca, sharegpt or openai rows), unregistered."""
    rows, _ = from_file(path, "no golden answers read")
    if not rows:
        raise no_answers(f"golden file {path}")
    return spread(rows, samples)


def registered(dataset_dir: Path, name: str) -> str | None:
    """Why `name` is not a usable registered dataset in `dataset_dir` (None: it is registered, its file exists)."""
    try:
        entry_file(dataset_dir, name, lookup(read_info(dataset_dir), dataset_dir, name))
    except LfWrapError as err:
        return err.message
    return None


class Checker(Client):
    """The checks, each one request (or a few) through the one client."""

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
        kwargs = request_kwargs(chat_template_kwargs or {}, False if no_thinking else None)
        super().__init__(base_url, api_key, model, timeout_s, max_tokens, kwargs)

    def models(self) -> CheckResult:
        named = self.model is not None
        ids = self.list_models()
        if not named and not ids:
            return CheckResult("models", False, "the server lists no models")
        ok = self.model in ids
        return CheckResult(
            "models", ok, f"serves {ids}" + ("" if ok else f"; {self.model!r} is not among them"), {"ids": ids}
        )

    @api_errors
    def chat(self) -> CheckResult:
        start = time.monotonic()
        resp = self._chat(HELLO, max_tokens=16)
        message = resp.choices[0].message
        text, thought = message.content or "", reasoning(message)
        detail = f"{len(text)} chars in {time.monotonic() - start:.2f} s"
        if thought is not None:
            detail += f", reasoning apart ({len(thought)} chars)"
        return CheckResult("chat", bool(text.strip()), detail, {"text": text, "reasoning": thought})

    @api_errors
    def stops(self, conversations: list[list[dict[str, str]]], served_eos: str | None = None) -> CheckResult:
        """Each row's answer ends because the model wrote its end token (finish_reason "stop"), not
        because it ran into max_tokens ("length"), for the same rows parity compares (asked at once):
        the ids the server stops on include what training ended answers with. `served_eos`: why the
        served folder's own files say it will not (model/eos.py's reading of them), a FAIL by itself."""
        with ThreadPoolExecutor(max_workers=min(8, len(conversations))) as pool:
            answers = list(pool.map(self._chat, conversations))
        ended = [(m[-1]["content"], a.choices[0].finish_reason, a.usage.completion_tokens if a.usage else None)
                 for m, a in zip(conversations, answers, strict=True)]  # fmt: skip
        cut = [{"prompt": prompt, "finish_reason": reason, "completion_tokens": tokens}
               for prompt, reason, tokens in ended if reason != "stop"]  # fmt: skip
        longest = max((t for _, _, t in ended if t is not None), default=None)
        n = len(ended)
        data = {"rows": n, "stopped": n - len(cut), "cut": cut, "completion_tokens": longest,
                "finish_reason": cut[0]["finish_reason"] if cut else "stop"}  # fmt: skip
        if served_eos:
            return CheckResult("stop", False, served_eos, {**data, "served_eos": served_eos})
        if not cut:
            return CheckResult("stop", True, f"{n} of {n} rows ended by themselves (finish_reason 'stop'), "
                                             f"the longest in {longest} tokens", data)  # fmt: skip
        first = cut[0]
        detail = (
            f"{len(cut)} of {n} rows did not stop by themselves: {first['prompt'][:30]!r} ran "
            f"{first['completion_tokens']} tokens to finish_reason {first['finish_reason']!r} (max_tokens "
            f"{self.max_tokens}); check that the token the answers end with is an eos_token_id in the model's "
            "generation_config.json (`lf-wrap export` writes it there for a merged model)"
        )
        return CheckResult("stop", False, detail, data)

    @api_errors
    def stream(self) -> CheckResult:
        chunks, text = 0, ""
        first: float | None = None
        start = time.monotonic()
        thought_chunks = 0
        for chunk in self._chat(HELLO, max_tokens=16, stream=True):
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

        root = self.root
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

    def no_tokenize(self) -> str | None:
        """Why the server cannot say what it feeds the model (no /tokenize route), or None."""
        import httpx

        root, headers = self.root, self.auth_headers
        try:
            resp = httpx.post(f"{root}/tokenize", json={"model": self.model or "", "prompt": "Hi"}, headers=headers,
                              timeout=self.timeout_s)  # fmt: skip
        except httpx.HTTPError as err:
            raise ExternalError(f"POST {root}/tokenize failed: {err}") from err
        if resp.status_code in (404, 405):
            return f"the server has no /tokenize route (HTTP {resp.status_code}): it cannot say what it feeds the model"
        return None

    def parity(self, conversations: list[list[dict[str, str]]], trained: list[dict[str, Any]]) -> CheckResult:
        """The token ids the server will feed the model for each row (vLLM's POST /tokenize with the
        messages and the generation prompt, or llama.cpp's /apply-template then /tokenize; the run's
        chat-template kwargs) against the ids LLaMA-Factory trained on before each answer."""
        differs: list[dict[str, Any]] = []
        templated = self._applies_template()
        for messages, want in zip(conversations, trained, strict=True):
            tokens = self._served_ids(messages, templated)
            if tokens != want["ids"]:
                differs.append(_difference(messages, want, tokens, self._detokenize))
        n = len(conversations)
        if not differs:
            return CheckResult("parity", True, f"{n} of {n} rows: the server feeds the model the token ids "
                                               "LLaMA-Factory trained on", {"rows": n, "same": n})  # fmt: skip
        first = differs[0]
        detail = (f"{len(differs)} of {n} rows differ from what LLaMA-Factory trained on; first at token "
                  f"{first['at']} of {first['prompt'][:40]!r}: trained {first['trained']!r}, "
                  f"served {first['served']!r}; "
                  "serve what training rendered: `lf-wrap serve --chat-template training` (or `chat_template: "
                  "training` in lf-wrap.yaml), or fix the template the server is given")  # fmt: skip
        return CheckResult("parity", False, detail, {"rows": n, "same": n - len(differs), "differs": differs})

    def _post(self, route: str, body: dict[str, Any]) -> Any:
        import httpx

        try:
            return httpx.post(f"{self.root}{route}", json=body, headers=self.auth_headers, timeout=self.timeout_s)
        except httpx.HTTPError as err:
            raise ExternalError(f"POST {self.root}{route} failed: {err}") from err

    def _applies_template(self) -> bool:
        """Does the server render chat prompts on request (llama.cpp's POST /apply-template)? Then its
        /tokenize takes that text; vLLM's /tokenize takes the messages themselves."""
        resp = self._post("/apply-template", {"messages": [{"role": "user", "content": "Hi"}]})
        try:
            return resp.status_code == 200 and isinstance(resp.json().get("prompt"), str)
        except (ValueError, AttributeError):
            return False

    def _served_ids(self, messages: list[dict[str, str]], templated: bool) -> list[int]:
        """The ids the server feeds the model for `messages` and the generation prompt: vLLM's /tokenize
        with the messages; llama.cpp's /apply-template, then /tokenize of that text as its chat
        completions tokenize it (special tokens added and parsed)."""
        kwargs = {"chat_template_kwargs": self.chat_template_kwargs} if self.chat_template_kwargs else {}
        if templated:
            resp = self._post("/apply-template", {"messages": messages, **kwargs})
            prompt = resp.json().get("prompt") if resp.status_code == 200 else None
            if not isinstance(prompt, str):
                raise ExternalError(f"POST {self.root}/apply-template answered HTTP {resp.status_code} with no prompt: "
                                    f"{resp.text[:200]!r}")  # fmt: skip
            resp = self._post("/tokenize", {"content": prompt, "add_special": True, "parse_special": True})
        else:
            body = {"model": self.model or "", "messages": messages, "add_generation_prompt": True, **kwargs}
            resp = self._post("/tokenize", body)
        tokens = _tokens(resp)
        if tokens is None:
            raise ExternalError(
                f"POST {self.root}/tokenize answered HTTP {resp.status_code} with no token list: {resp.text[:200]!r}",
                hint='a vLLM- or llama.cpp-compatible /tokenize answers {"tokens": [ids...]}; pass --no-parity for a '
                "server that does not",
            )
        return tokens

    @property
    def root(self) -> str:
        """The server's root: vLLM's /tokenize, /detokenize and /invocations sit beside /v1."""
        return self.base_url.removesuffix("/v1")

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _detokenize(self, ids: list[int]) -> str:
        """The server's own text for `ids` (its /detokenize), or the ids when it cannot say."""
        import httpx

        try:
            resp = httpx.post(f"{self.root}/detokenize", json={"model": self.model or "", "tokens": ids},
                              headers=self.auth_headers, timeout=self.timeout_s)  # fmt: skip
            said = resp.json() if resp.status_code == 200 else {}
            prompt = said.get("prompt", said.get("content"))  # vLLM's key, llama.cpp's
        except (httpx.HTTPError, ValueError, AttributeError):
            prompt = None
        return prompt if isinstance(prompt, str) else f"ids {ids}"

    @api_errors
    def golden(self, items: list[Row], min_match: float) -> CheckResult:
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


@dataclass
class Checked:
    """What `lf-wrap check` found: each check's result, the ones skipped and why, and the report line."""

    checker: Checker
    results: list[CheckResult]
    skipped: list[dict[str, str]]
    report_line: str | None = None

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "base_url": self.checker.base_url, "model": self.checker.model,
                "checks": [r.to_dict() for r in self.results], "skipped": self.skipped,
                "exit_code": 0 if self.ok else 1}  # fmt: skip

    def failure(self) -> tuple[str, str, str]:
        """(error, hint, location) of a failed check, for --json."""
        failed = ", ".join(r.name for r in self.results if not r.ok)
        return f"failed checks: {failed}", "see each check's detail", self.checker.base_url

    def lines(self) -> list[str]:
        out = []
        for r in self.results:
            out.append(f"{'PASS' if r.ok else 'FAIL'}  {r.name:<7} {r.detail}")
            for miss in r.data.get("misses", []) if not r.ok else []:
                out.append(f"      expected {miss['expected']!r}\n      got      {miss['got']!r}")
                if miss.get("reasoning"):
                    out.append(f"      reasoning {miss['reasoning']!r}")
            for diff in r.data.get("differs", [])[:3]:
                out.append(f"      {diff['prompt'][:50]!r}: token {diff['at']} of {diff['trained_tokens']} trained, "
                           f"{diff['served_tokens']} served\n      trained {diff['trained']!r}\n"
                           f"      served  {diff['served']!r}")  # fmt: skip
        out += [f"SKIP  {skip['name']:<7} {skip['reason']}" for skip in self.skipped]
        verdict = "all checks passed" if self.ok else "FAILED"
        return [*out, f"{self.checker.base_url} ({self.checker.model}): {verdict}"]


WINDOW = 6  # tokens shown on each side of the first difference


def _tokens(resp: Any) -> list[int] | None:
    try:
        data = resp.json()
    except ValueError:
        return None
    tokens = data.get("tokens") if isinstance(data, dict) else None
    if resp.status_code != 200 or not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
        return None
    return tokens


def _difference(
    messages: list[dict[str, str]], want: dict[str, Any], served: list[int], detokenize: Callable[[list[int]], str]
) -> dict[str, Any]:
    """Where the served ids first leave the trained ones, each side's text around it."""
    ids, pieces = want["ids"], want["pieces"]
    at = next((i for i, (a, b) in enumerate(zip(ids, served, strict=False)) if a != b), min(len(ids), len(served)))
    lo = max(0, at - WINDOW)
    trained = "".join(pieces[lo:at]) + "⟨" + "".join(pieces[at : at + WINDOW]) + "⟩"
    served_text = detokenize(served[lo:at]) + "⟨" + detokenize(served[at : at + WINDOW]) + "⟩"
    return {"prompt": messages[-1]["content"], "at": at, "trained_tokens": len(ids), "served_tokens": len(served),
            "trained": trained, "served": served_text}  # fmt: skip


def parity_check(checker: Checker, target: Target, items: list[Row], rows: int) -> CheckResult | str:
    """The parity check, or why it is skipped: no project or rows (the training side is unknown), a model
    that is not a local folder, a server without /tokenize. The training side is computed only when the
    server can answer (LLaMA-Factory's import costs seconds; remembered per model, template and rows)."""
    project = target.project
    if project is None or target.run is None:
        return "no project: what training fed the model is unknown (run it in the project, or --no-parity)"
    if not items:
        return "no golden rows to compare (the project's dataset, --golden or --golden-file)"
    model_dir = project.path(project.config.model)
    if not (model_dir / "config.json").is_file():
        return f"the base model is not a local folder ({project.config.model}): training's side cannot be computed"
    missing = checker.no_tokenize()
    if missing:
        return missing
    from lf_wrap.engines.llamafactory import LlamaFactory
    from lf_wrap.project.chat_template import training_options

    engine = LlamaFactory.find(project.config.llamafactory_cli, project.root)
    conversations = [row.messages for row in spread(items, rows)]
    trained = engine.training_prompts(model_dir.resolve(), project.config.template, training_options(project),
                                      conversations)  # fmt: skip
    return checker.parity(conversations, trained)


def served_eos(target: Target) -> str | None:
    """Why the folder the run's server serves will not stop where training ended answers (None: it
    will, or the folder is not known): vLLM stops on the tokenizer's EOS and on generation_config.json's
    eos_token_id, and the template's stop word must be among them. Read from the files, no request."""
    from lf_wrap.model.eos import inspect

    folder, project = target.model_dir, target.project
    if folder is None or project is None or not (folder / "config.json").is_file():
        return None
    try:
        report = inspect(folder, project.config.template)
    except LfWrapError:
        return None  # files it cannot read: the answers themselves still say whether it stops
    if report.stop_id is None:
        return None
    stops_on = {*(report.generation_eos or []), *([report.tokenizer_eos_id] if report.tokenizer_eos_id is not None
                                                  else [])}  # fmt: skip
    if report.stop_id in stops_on:
        return None
    return (
        f"the server stops on ids {sorted(stops_on)} (the tokenizer's EOS {report.tokenizer_eos!r} and "
        f"{folder / 'generation_config.json'}), not on {report.stop_id} ({report.stop_token!r}, what every trained "
        f"answer ends with): add {report.stop_id} to eos_token_id in {folder / 'generation_config.json'} "
        "(`lf-wrap export` does for the merged model)"
    )


def golden_rows(
    target: Target,
    golden: str | None,
    golden_file: Path | None,
    dataset_dir: Path | None,
    no_golden: bool,
    samples: int,
) -> tuple[list[Row], list[dict[str, str]]]:
    """The golden rows to ask (--golden-file, --golden, else the project's datasets), and the skip
    note when there are none."""
    project = target.project
    known_dir = dataset_dir or (project.path(project.config.dataset_dir) if project else Path("data"))
    if golden_file is not None:
        return golden_from_file(golden_file, samples), []
    if golden:
        return golden_from_dataset(known_dir, golden, samples), []
    if no_golden:
        return [], []
    names = project.config.datasets if project else []
    missing = next((why for name in names if (why := registered(known_dir, name))), None)
    if not names or missing:
        why = f"the project's dataset is not there ({missing})" if missing else "no dataset known"
        return [], [{"name": "golden", "reason": f"{why}: pass --golden NAME or --golden-file FILE"}]
    return [row for name in names for row in golden_from_dataset(known_dir, name, samples)], []


def run(
    target: Target,
    *,
    golden: str | None,
    golden_file: Path | None,
    dataset_dir: Path | None,
    no_golden: bool,
    samples: int,
    min_match: float,
    no_thinking: bool,
    concurrency: int | None,
    n_requests: int,
    max_tokens: int,
    timeout_s: float,
    parity: bool = True,
    parity_rows: int = 8,
) -> Checked:
    """Every check, in order, against the target; recorded in the run's manifest and report."""
    checker = Checker(target.base_url, target.api_key, target.model, timeout_s, no_thinking, max_tokens,
                      chat_template_kwargs=target.chat_template_kwargs())  # fmt: skip
    items, skipped = golden_rows(target, golden, golden_file, dataset_dir, no_golden, samples)
    prompts = [g.messages for g in items] or [HELLO]
    results = [checker.models()]
    if results[0].ok:
        results += [checker.chat(), checker.stream()]
        if target.api_key:
            results.append(checker.auth())
        # --no-golden leaves the answers unchecked, not the prompts: the project's rows still count
        rows = items or (golden_rows(target, golden, golden_file, dataset_dir, False, samples)[0] if no_golden
                         else [])  # fmt: skip
        if parity:
            same = parity_check(checker, target, rows, parity_rows)
            if isinstance(same, str):
                skipped = [{"name": "parity", "reason": same}, *skipped]
            else:
                results.append(same)
        asked = spread(rows, parity_rows)  # the rows parity compared: the answers to the prompts it proved
        results.append(checker.stops([g.messages for g in asked] or [HELLO], served_eos(target)))
        if items:
            results.append(checker.golden(items, min_match))
        if concurrency:
            results.append(checker.load(prompts, concurrency, n_requests))
    else:  # asking for a model the server does not serve would only repeat that
        later = ["chat", "stream", *(["auth"] if target.api_key else []),
                 *(["parity"] if parity else []), "stop"]  # fmt: skip
        later += [*(["golden"] if items else []), *(["load"] if concurrency else [])]
        skipped = [{"name": n, "reason": "the model is not served"} for n in later] + skipped
    done = Checked(checker, results, skipped)
    if target.project is not None and target.run is not None:  # the run's manifest keeps the last check
        checks = [r.to_dict() for r in results]
        done.report_line = record_check(target.run.root, checker.base_url, checker.model, done.ok, checks, skipped)
    return done
