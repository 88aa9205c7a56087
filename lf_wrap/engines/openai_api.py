"""The one client lf-wrap speaks to a served model with: the `openai` SDK, the way users do,
against any OpenAI-compatible server (vLLM's, or another).

`check`, `chat` and `eval` all talk through `Client`: the base URL made the API root (`/v1`),
the key, a timeout, one retry only for a connection the server dropped before answering (see
`_chat`), the chat-template kwargs a run
was trained with, and `explain`, the one place an SDK error becomes a message that says what
happened, where, and what to do. A thinking model's reasoning (vLLM's reasoning parser) comes
apart from the answer.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from lf_wrap.util.errors import ExternalError


@dataclass
class Piece:
    """A piece of a streamed answer: kind "reasoning", "answer", "note" (said, not part of it), or
    "finish" (last: the server's finish_reason, "stop" or "length")."""

    kind: str
    text: str


def reasoning(message: Any) -> str | None:
    """The think block vLLM's reasoning parser took out of an answer (or a streamed delta):
    `reasoning_content`, or `reasoning` in newer vLLM; None without a parser."""
    for name in ("reasoning_content", "reasoning"):
        value = getattr(message, name, None)
        if isinstance(value, str):
            return value
    return None


_Check = TypeVar("_Check", bound=Callable[..., Any])  # a method of Client (or of a subclass: check's checks)


def api_errors(check: _Check) -> _Check:
    """Every request a client method sends goes through here: an SDK error becomes one clear
    ExternalError (`Client.explain`), and so does a stream whose connection broke; never a traceback."""

    @functools.wraps(check)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        import openai

        try:
            return check(self, *args, **kwargs)
        except openai.OpenAIError as err:
            raise self.explain(err) from err
        except _transport_errors() as err:  # a streamed answer whose connection broke
            raise ExternalError(
                f"{self.base_url}: the connection broke off ({type(err).__name__}: {err})",
                hint="the server stopped or dropped the connection: see its log (runs/<name>/serve.log)",
            ) from err

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


def _transport_errors() -> tuple[type[Exception], ...]:
    """The HTTP library's own errors, which the SDK lets through while a stream is read: httpx's
    for openai 1.x and 2.x, httpx2's for openai 3.x (which moved to it); both where both are installed."""
    import importlib

    found: list[type[Exception]] = []
    for name in ("httpx", "httpx2"):
        try:
            found.append(importlib.import_module(name).HTTPError)
        except ImportError:
            continue
    return tuple(found)


def _broke_off(err: Exception) -> bool:
    """A connection that was made and then broke (the server closed it mid-answer, or a body that
    stopped short), as opposed to one never made (refused, unknown host): told apart by the HTTP
    library's error the SDK wraps. The same request sent again may well work; the server is up."""
    cause = err.__cause__
    return cause is not None and type(cause).__name__ in {"RemoteProtocolError", "ReadError", "WriteError"}


class Client:
    """One OpenAI-compatible server and the model asked there (None: the first it lists)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str | None,
        timeout_s: float,
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
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.extra_body = {"chat_template_kwargs": self.chat_template_kwargs} if self.chat_template_kwargs else None

    def _chat(self, messages: list[dict[str, str]], **kw: Any) -> Any:
        """One greedy chat completion (the SDK's response; errors unexplained: wrap the caller in api_errors).

        A connection the server closed before answering is tried once more on a fresh one: vLLM's
        HTTP server closes a keep-alive connection after 5 s idle (VLLM_HTTP_TIMEOUT_KEEP_ALIVE), the
        pool can hand out that connection in the same instant, and the request then meets "Server
        disconnected without sending a response" (CI: eval of 144 answers lost at answer ~120). A
        greedy completion asked twice is the same answer; a timeout is never retried (it would
        double a wait the user chose), nor is anything the server answered."""
        import openai

        options = {
            "model": self.model or "",
            "messages": messages,
            "temperature": 0,
            "max_tokens": kw.pop("max_tokens", self.max_tokens),
            "extra_body": self.extra_body,
            **kw,
        }
        try:
            return self.client.chat.completions.create(**options)
        except openai.APITimeoutError:
            raise
        except openai.APIConnectionError:
            return self.client.chat.completions.create(**options)

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
        if isinstance(err, openai.APIConnectionError) and _broke_off(err):
            return ExternalError(
                f"{url}: the connection broke off ({type(err.__cause__).__name__}: {err.__cause__})",
                hint="the server stopped or dropped the connection: see its log (runs/<name>/serve.log)",
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
    def list_models(self) -> list[str]:
        """What /v1/models lists; the model to ask becomes the first of them when none was named."""
        self.ids = [m.id for m in self.client.models.list().data]
        if self.model is None and self.ids:
            self.model = self.ids[0]
        return self.ids

    @api_errors
    def answer(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        """One greedy answer, with its latency, finish reason, token count and reasoning (if any)."""
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

    def stream_answer(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        temperature: float | None = None,
        extra_body: dict[str, Any] | None = None,
    ) -> Generator[Piece, None, None]:
        """Stream one answer as Pieces (a "note" when it was cut at `max_tokens`, then its "finish"). Raises
        ExternalError (with a hint) when the request fails or the stream ends before the server says it is complete."""
        import openai

        options: dict[str, Any] = {} if temperature is None else {"temperature": temperature}
        try:
            response: Any = self.client.chat.completions.create(  # a Stream: stream=True
                model=self.model or "",
                messages=messages,  # type: ignore[arg-type]
                max_tokens=max_tokens,
                stream=True,
                extra_body=extra_body,
                **options,
            )
        except openai.OpenAIError as err:
            raise self.explain(err) from None
        finish: str | None = None
        try:
            for chunk in response:
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                thought = reasoning(choice.delta)
                if thought:
                    yield Piece("reasoning", thought)
                if choice.delta.content:
                    yield Piece("answer", choice.delta.content)
                finish = choice.finish_reason or finish
        except openai.OpenAIError as err:
            raise self.explain(err) from None
        except _transport_errors() as err:  # the connection broke while the answer streamed
            raise ExternalError(
                f"{self.base_url}: the answer stream broke off ({type(err).__name__}: {err})",
                hint="the server stopped or dropped the connection: see its log (runs/<name>/serve.log)",
            ) from None
        finally:
            response.close()
        if finish is None:
            raise ExternalError(
                f"{self.base_url}: the answer stream ended before the answer was complete (no finish_reason)",
                hint="the server stopped or dropped the connection: see its log (runs/<name>/serve.log)",
            )
        if finish == "length":
            yield Piece("note", f"[cut at --max-tokens {max_tokens}]")
        yield Piece("finish", finish)
