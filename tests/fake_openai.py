"""A small OpenAI-compatible server for fast tests of `lf-wrap check` (stdlib only, one thread).

Serves GET /health, GET /v1/models, POST /v1/chat/completions (plain and streamed as SSE)
on a free 127.0.0.1 port. Answers come from `answers` (last user message -> answer; else
`default_answer`); an unknown model gets vLLM's 404; with `api_key` every route but
/health needs `Authorization: Bearer KEY` (401 otherwise). `requests` records what came in.
For streams: `reasoning` is sent first as vLLM's reasoning parser sends it (delta
`reasoning`), `chunk_delay_s` paces the chunks, and `drop_after` N chunks ends the response
there, as a server that dies mid-answer does (no finish_reason, no [DONE]). `hang_up` N: the
next N chat completions get their connection closed without a response, as a keep-alive
connection the server closed in the same instant does ("Server disconnected without sending a
response"); `cut_stream_after` N chunks: a streamed answer whose body breaks off mid-transfer.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeOpenAI:
    models: list[str] = field(default_factory=lambda: ["fake-model"])
    answers: dict[str, str] = field(default_factory=dict)
    default_answer: str = "Hello there."
    api_key: str | None = None
    finish_reason: str = "stop"
    finish_reasons: dict[str, str] = field(default_factory=dict)  # last user message -> its finish_reason
    reasoning: str | None = None
    chunk_delay_s: float = 0.0
    drop_after: int | None = None
    hang_up: int = 0
    cut_stream_after: int | None = None
    # POST /tokenize answers {"tokens": tokenize(body)} (a non-list: that object as it is); None: no such route
    tokenize: Any = None
    # POST /apply-template answers {"prompt": apply_template(messages)}, as llama.cpp's server; None: no such route
    apply_template: Any = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""  # http://127.0.0.1:PORT, set once started

    def answer(self, messages: list[dict[str, Any]]) -> str:
        return self.answers.get(last_user(messages), self.default_answer)


def last_user(messages: list[dict[str, Any]]) -> str:
    """The last user message's text (what `answers` and `finish_reasons` are keyed by)."""
    return next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")


def _handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:  # quiet
            pass

        def _send(self, code: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, code: int, message: str, kind: str) -> None:
            self._send(code, {"error": {"message": message, "type": kind, "code": code}})

        def _authorized(self) -> bool:
            if fake.api_key is None or self.path == "/health":
                return True
            if self.headers.get("Authorization") == f"Bearer {fake.api_key}":
                return True
            self._error(401, "Unauthorized", "AuthenticationError")
            return False

        def do_GET(self) -> None:
            fake.requests.append({"method": "GET", "path": self.path})
            if not self._authorized():
                return
            if self.path == "/health":
                self._send(200, {})
            elif self.path == "/v1/models":
                data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in fake.models]
                self._send(200, {"object": "list", "data": data})
            else:
                self._error(404, f"{self.path} not found", "NotFoundError")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            fake.requests.append({"method": "POST", "path": self.path, "body": body})
            if not self._authorized():
                return
            if self.path == "/apply-template" and fake.apply_template is not None:
                self._send(200, {"prompt": fake.apply_template(body.get("messages") or [])})
                return
            if self.path in ("/tokenize", "/detokenize") and fake.tokenize is not None:
                if self.path == "/detokenize":
                    self._send(200, {"prompt": "".join(f"<{t}>" for t in body.get("tokens", []))})
                    return
                tokens = fake.tokenize(body)
                self._send(200, {"tokens": tokens, "count": len(tokens)} if isinstance(tokens, list) else tokens)
                return
            if self.path != "/v1/chat/completions":
                self._error(404, f"{self.path} not found", "NotFoundError")
                return
            if fake.hang_up > 0:
                fake.hang_up -= 1
                self.close_connection = True
                return  # no status line, nothing: the client's pool meets a closed connection
            model = body.get("model")
            if model not in fake.models:
                self._error(404, f"The model `{model}` does not exist.", "NotFoundError")
                return
            text = fake.answer(body.get("messages") or [])
            base = {"id": "chatcmpl-fake", "created": int(time.time()), "model": model}
            words = text.split(" ")
            usage = {"prompt_tokens": 5, "completion_tokens": len(words), "total_tokens": 5 + len(words)}
            if not body.get("stream"):
                message = {"role": "assistant", "content": text}
                if fake.reasoning is not None:
                    message["reasoning"] = fake.reasoning
                reason = fake.finish_reasons.get(last_user(body["messages"]), fake.finish_reason)
                choice = {"index": 0, "message": message, "finish_reason": reason}
                self._send(200, {**base, "object": "chat.completion", "choices": [choice], "usage": usage})
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            if fake.cut_stream_after is not None:  # chunked: a body that stops without its last chunk is broken
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
            deltas = [{"reasoning": w if i == 0 else " " + w} for i, w in enumerate((fake.reasoning or "").split())]
            deltas += [{"content": piece} for piece in pieces]
            self.close_connection = True
            try:
                for i, delta in enumerate(deltas):
                    if fake.drop_after is not None and i >= fake.drop_after:
                        return  # the connection closes here: no finish_reason, no [DONE]
                    last = i == len(deltas) - 1
                    finish = fake.finish_reasons.get(last_user(body["messages"]), fake.finish_reason) if last else None
                    chunk = {**base, "object": "chat.completion.chunk",
                             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
                    event = f"data: {json.dumps(chunk)}\n\n".encode()
                    if fake.cut_stream_after is not None:
                        if i >= fake.cut_stream_after:
                            return  # the connection closes inside a chunked body
                        event = f"{len(event):x}\r\n".encode() + event + b"\r\n"
                    self.wfile.write(event)
                    self.wfile.flush()
                    time.sleep(fake.chunk_delay_s)
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):  # the client went away mid-answer
                pass

    return Handler


@contextmanager
def serve_fake(fake: FakeOpenAI | None = None) -> Iterator[FakeOpenAI]:
    """Run `fake` on a free 127.0.0.1 port in a thread for the duration of the block."""
    fake = fake or FakeOpenAI()
    # a listen backlog for eval's bursts (rows + the canary, several at a time): the default of 5
    # had the kernel reset connections
    server_class = type("FakeServer", (ThreadingHTTPServer,), {"request_queue_size": 128})
    server = server_class(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
