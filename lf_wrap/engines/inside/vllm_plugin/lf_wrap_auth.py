"""ASGI middleware that puts every route of a vLLM server behind its API key.

vLLM's own `--api-key` check only covers paths under /v1, /v2, /inference and /cohere:
/invocations (the same chat and completion engine), /tokenize, /detokenize, /metrics,
/generative_scoring, /scale_elastic_ep and others answer anyone.  This middleware refuses
every HTTP request and WebSocket that lacks `Authorization: Bearer <key>` (the only form
vLLM itself accepts), on every path and method but `GET /health`, the readiness probe.

`lf-wrap serve --api-key` puts this folder on the server's PYTHONPATH, passes the key in
the VLLM_API_KEY environment variable (never on the command line, which every user can
read with `ps`; vLLM's own /v1 check reads the same variable) and adds
`--middleware lf_wrap_auth.ApiKeyMiddleware` to the vLLM command.  The same works by hand
with any vLLM that has `--middleware` (CPU or GPU builds):

    PYTHONPATH=<this folder> VLLM_API_KEY=<key> vllm serve MODEL --middleware lf_wrap_auth.ApiKeyMiddleware

It runs inside the serving environment, where lf-wrap is not installed: standard library
only, a pure ASGI app wrapper (no Starlette import).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

KEY_ENV = "VLLM_API_KEY"
OPEN = frozenset({("GET", "/health")})  # (method, path) answered without the key

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()  # fixed length: the comparison leaks no length either


def _error(message: str) -> bytes:
    """A body in the shape OpenAI's API uses for a refused key."""
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}
    return json.dumps({"error": error}).encode()


class ApiKeyMiddleware:
    """Refuse (HTTP 401, or a closed WebSocket) every request without the right bearer key."""

    def __init__(self, app: ASGIApp, key: str | None = None) -> None:
        key = os.environ.get(KEY_ENV, "") if key is None else key
        if not key:  # fail closed: never start an open server that was meant to be locked
            raise RuntimeError(f"lf_wrap_auth.ApiKeyMiddleware: {KEY_ENV} is not set or empty")
        self.app = app
        self._key = _digest(key.encode())

    def _route(self, scope: Scope) -> str:
        """The path the router matches (without --root-path, the way Starlette strips it)."""
        path: str = scope.get("path", "")
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        return path

    def authorized(self, scope: Scope) -> bool:
        ok = False
        for name, value in scope.get("headers") or ():
            if name.lower() != b"authorization":
                continue
            scheme, _, token = bytes(value).strip().partition(b" ")
            if scheme.lower() == b"bearer":
                ok |= hmac.compare_digest(_digest(token.strip()), self._key)
        return ok

    def _missing(self, scope: Scope) -> bool:
        return not any(name.lower() == b"authorization" for name, _ in scope.get("headers") or ())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, receive, send)
        elif kind == "http":
            if (scope.get("method"), self._route(scope)) in OPEN or self.authorized(scope):
                await self.app(scope, receive, send)
            else:
                await self._refuse_http(scope, send)
        elif kind == "websocket":
            if self.authorized(scope):
                await self.app(scope, receive, send)
            else:
                message = await receive()  # websocket.connect; closing before accept refuses the handshake
                if message.get("type") == "websocket.connect":
                    await send({"type": "websocket.close", "code": 1008, "reason": "invalid API key"})
        else:  # an ASGI scope type this middleware does not know: refuse rather than guess
            raise RuntimeError(f"lf_wrap_auth.ApiKeyMiddleware: unsupported ASGI scope type {kind!r}")

    async def _refuse_http(self, scope: Scope, send: Send) -> None:
        if self._missing(scope):
            body = _error("Missing API key: send it in the header 'Authorization: Bearer <key>'.")
        else:
            body = _error("Incorrect API key provided.")
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b'Bearer realm="vllm"'),
        ]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else body})
