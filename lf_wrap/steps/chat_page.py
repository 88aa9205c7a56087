"""`lf-wrap chat --web`: a chat page for the served model, on Starlette + Uvicorn.

One static page (templates/chat/index.html) and two JSON routes; the conversation lives in
the browser, each question is sent with its history and the answer streams back as NDJSON
lines (`{"reasoning": …}`, `{"answer": …}`, then `{"done": …}` or `{"error": …, "hint": …}`).
The model server is reached from here, through the same `Conversation` as the terminal chat:
the API key stays in this process and never reaches the browser.

Why not Gradio's ChatInterface: measured by bench/chat_web_choice.py (README, "Talk to it"),
Gradio adds ~320 MB to an environment and starts in ~2.3 s; Starlette + Uvicorn, the ASGI
stack vLLM itself serves with, add ~5 MB and start in ~0.2 s, and a page of our own shows
exactly what this needs (reasoning apart, the thinking switch, the endpoint and its state).

Only JSON POSTs are answered (a cross-site form cannot send one without a CORS preflight,
which is never granted), and on a loopback address only Host headers naming it are accepted
(DNS rebinding).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from lf_wrap.steps.chat import Conversation, describe
from lf_wrap.util import console
from lf_wrap.util.errors import LfWrapError
from lf_wrap.util.network import is_public, port_free
from lf_wrap.util.paths import templates_dir

MAX_BODY = 1 << 20  # one request: the history of a long chat fits many times over


def page() -> str:
    return (templates_dir() / "chat" / "index.html").read_text(encoding="utf-8")


def info(conv: Conversation) -> dict[str, Any]:
    """What the page shows: the model, the endpoint, the defaults, and whether the server answers."""
    server: dict[str, Any] = {"up": True, "error": None, "hint": None}
    try:
        server["models"] = conv.connect()
    except LfWrapError as err:
        server = {"up": False, "error": err.message, "hint": err.hint}
    return {
        "model": conv.model,
        "endpoint": conv.base_url,
        "summary": describe(conv),
        "thinking_mode": conv.thinking_mode,
        "template": conv.template,
        "thinking": conv.thinking if conv.thinking is not None else conv.thinking_mode != "no-think",
        "system": conv.system or "",
        # where the run's template check agreed only for its data ("... differs with a system prompt")
        "template_scope": conv.scope["line"] if conv.scope else None,
        "temperature": conv.temperature,
        "temperature_source": conv.temperature_source,
        "max_tokens": conv.max_tokens,
        "api_key": "set (kept on the server)" if conv.target.api_key else "none",
        "server": server,
    }


def _number(body: dict[str, Any], key: str, kind: type, low: float, high: float) -> Any:
    value = body.get(key)
    if value is None or value == "":
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise LfWrapError(f"{key} must be a number, not {value!r}") from None
    if not low <= number <= high:
        raise LfWrapError(f"{key} must be between {low:g} and {high:g}, not {number:g}")
    return number


def parse_request(body: Any) -> dict[str, Any]:
    """Check what the page sent: {messages: [{role, content}…] ending with the user's, system,
    temperature, max_tokens, thinking}. Raises LfWrapError naming the field."""
    if not isinstance(body, dict):
        raise LfWrapError("the request must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise LfWrapError("messages must be a non-empty list")
    for i, m in enumerate(messages):
        if not (isinstance(m, dict) and m.get("role") in ("user", "assistant") and isinstance(m.get("content"), str)):
            raise LfWrapError(f"messages[{i}] must be {{role: user|assistant, content: text}}")
    if messages[-1]["role"] != "user":
        raise LfWrapError("the last message must be the user's question")
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        raise LfWrapError("system must be text")
    thinking = body.get("thinking")
    if thinking is not None and not isinstance(thinking, bool):
        raise LfWrapError("thinking must be true or false")
    return {
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        "system": system.strip() if system else None,
        "temperature": _number(body, "temperature", float, 0, 2),
        "max_tokens": _number(body, "max_tokens", int, 1, 1 << 20),
        "thinking": thinking,
    }


def answer_lines(conv: Conversation, request: dict[str, Any]) -> Iterator[bytes]:
    """The NDJSON lines of one streamed answer; an error is the last line, never an exception."""

    def line(obj: dict[str, Any]) -> bytes:
        return (json.dumps(obj, ensure_ascii=False) + "\n").encode()

    system = [{"role": "system", "content": request["system"]}] if request["system"] else []
    pieces = conv.stream(
        system + request["messages"],
        temperature=request["temperature"],
        max_tokens=request["max_tokens"],
        thinking=request["thinking"],
    )
    notes = []
    finish = None
    try:
        for piece in pieces:
            if piece.kind == "note":
                notes.append(piece.text)
            elif piece.kind == "finish":
                finish = piece.text
            else:
                yield line({piece.kind: piece.text})
    except LfWrapError as err:
        yield line({"error": err.message, "hint": err.hint})
        return
    finally:
        pieces.close()
    yield line({"done": True, "notes": notes, "finish_reason": finish})


def create_app(conv: Conversation, host: str = "127.0.0.1") -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    async def index(_request: Request) -> Response:
        return HTMLResponse(page(), headers={"Cache-Control": "no-store"})

    async def api_info(_request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        return JSONResponse(await run_in_threadpool(info, conv))

    async def api_chat(request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return JSONResponse({"error": "send JSON (Content-Type: application/json)"}, status_code=415)
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return JSONResponse({"error": f"request too large (over {MAX_BODY} bytes)"}, status_code=413)
        try:
            parsed = parse_request(json.loads(raw or b"null"))
        except ValueError as err:
            return JSONResponse({"error": f"not JSON: {err}"}, status_code=400)
        except LfWrapError as err:
            return JSONResponse({"error": err.message}, status_code=400)
        # A sync iterator: Starlette runs it in a worker thread, and closing it closes the upstream stream.
        return StreamingResponse(
            answer_lines(conv, parsed), media_type="application/x-ndjson", headers={"Cache-Control": "no-store"}
        )

    middleware = []
    if not is_public(host):
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "[::1]", host]))
    routes = [
        Route("/", index),
        Route("/api/info", api_info),
        Route("/api/chat", api_chat, methods=["POST"]),
    ]
    return Starlette(routes=routes, middleware=middleware)


def serve_page(conv: Conversation, host: str, port: int) -> None:
    """Run the page until Ctrl-C. Checks the port first; says where the page is."""
    import uvicorn

    if not port_free(host, port):
        raise LfWrapError(f"port {port} on {host} is already in use", hint="pick another --port", location="--port")
    if is_public(host):
        console.note(
            f"warning: the chat page on {host} lets anyone who can reach this machine use the model"
            + (" with your API key" if conv.target.api_key else "")
        )
    shown = f"[{host}]" if ":" in host else ("127.0.0.1" if host in ("0.0.0.0", "") else host)
    console.note(f"chat page: http://{shown}:{port}/  (Ctrl-C stops it)")
    console.note(describe(conv))
    uvicorn.run(create_app(conv, host), host=host, port=port, log_level="warning", access_log=False)
