"""`lf-wrap serve --api-key` on a real vLLM server: every route and method but GET /health
refuses a request without the key (or with a wrong one), and the key is never on a command line.

The routes walked are the server's own OpenAPI schema plus the route table vLLM builds
(`build_app`, run in the serving environment), which also holds what the schema leaves out
(/metrics, /docs, /redoc, /openapi.json, the render/derender and token-in-token-out routes),
plus a few paths no route matches.  vLLM's own `--api-key` covers only /v1, /v2,
/inference and /cohere: without lf-wrap's middleware POST /invocations answers a full chat
completion to anyone.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lf_wrap.engines.vllm import Vllm

from .helpers import Served, lfw

pytestmark = pytest.mark.slow
KEY = "auth-walk-key-Zq81xV"
NAME = "tiny"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD")
OPEN = {("GET", "/health")}  # the readiness probe lf-wrap polls
NO_ROUTE = ("/", "/health/", "/no/such/route", "/metrics/", "/v1/realtime", "/static/x", "/v1", "/v2/x")
LAST = ("/scale_elastic_ep", "/is_scaling_elastic_ep")  # walked last: without auth they would act

# vLLM's route table for a text-generation model, built the way `vllm serve` builds it.
ROUTE_TABLE = """
import json, sys
from vllm.entrypoints.launchers.app import build_app
from vllm.entrypoints.launchers.cli_args import make_arg_parser
from vllm.utils.argparse_utils import FlexibleArgumentParser

args = make_arg_parser(FlexibleArgumentParser()).parse_args(["--model", sys.argv[1]])
app = build_app(args, supported_tasks=("generate",))
print(json.dumps([[r.path, sorted(getattr(r, "methods", None) or [])] for r in app.routes]))
"""

CHAT = {"model": NAME, "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 2}
BODIES: dict[str, dict[str, Any]] = {
    "/v1/completions": {"model": NAME, "prompt": "Hello", "max_tokens": 2},
    "/v1/completions/render": {"model": NAME, "prompt": "Hello"},
    "/v1/completions/derender": {"model": NAME, "token_ids": [1, 2]},
    "/v1/chat/completions/derender": {"model": NAME, "token_ids": [1, 2]},
    "/tokenize": {"model": NAME, "prompt": "Hello"},
    "/detokenize": {"model": NAME, "tokens": [1, 2]},
    "/v1/responses": {"model": NAME, "input": "Hello", "max_output_tokens": 2},
    "/v1/responses/render": {"model": NAME, "input": "Hello"},
    "/v1/messages": {**CHAT, "max_tokens": 2},
    "/v1/messages/count_tokens": {"model": NAME, "messages": CHAT["messages"]},
    "/generative_scoring": {"model": NAME, "query": "Hello", "items": ["a"], "label_token_ids": [1, 2]},
    "/inference/v1/generate": {"model": NAME, "token_ids": [1, 2], "sampling_params": {"max_tokens": 2}},
    "/inference/v1/abort_requests": {"request_ids": ["x"]},
    "/scale_elastic_ep": {"new_data_parallel_size": 1, "drain_timeout": 1},
    "/is_scaling_elastic_ep": {},
}


KEYS = ("LF_WRAP_API_KEY", "VLLM_API_KEY")  # a key of the environment would count as the server's
OFFLINE = {"HF_HUB_OFFLINE": "1"}


def clean_env() -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k not in KEYS}, **OFFLINE}


def cmdlines() -> dict[int, str]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            except OSError:
                continue
    return out


@pytest.fixture(scope="module")
def server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("serve-auth")
    with Served(None, "--model", tiny_model, "--served-model-name", NAME, "--api-key", KEY, cwd=root, env=OFFLINE,
                unset=KEYS) as served:  # fmt: skip
        info = served.record()
        yield {"url": served.url, "port": served.port, "root": root, "result": served.started, "info": info,
               "run": Path(info["path"]).parent}  # fmt: skip


@pytest.fixture(scope="module")
def routes(server: dict[str, Any], tiny_model: Path) -> list[tuple[str, str]]:
    """(method, path) for every method on every path: the schema's, vLLM's route table's, and some no route matches."""
    schema = httpx.get(f"{server['url']}/openapi.json", headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    assert schema.status_code == 200, schema.text
    paths = set(schema.json()["paths"])
    table = subprocess.run([str(Vllm.find().python), "-c", ROUTE_TABLE, str(tiny_model)], capture_output=True,
                           text=True, timeout=300, env=clean_env(), check=False)  # fmt: skip
    assert table.returncode == 0, table.stderr[-3000:]
    built = {path for path, _methods in json.loads(table.stdout.strip().splitlines()[-1])}
    assert {"/metrics", "/openapi.json", "/docs", "/invocations", "/tokenize"} <= built | paths
    concrete = {re.sub(r"\{[^}]*\}", "x", p) for p in paths | built | set(NO_ROUTE)}
    ordered = sorted(concrete, key=lambda p: (p in LAST, p))
    return [(m, p) for p in ordered for m in METHODS]


def walk(url: str, routes: list[tuple[str, str]], headers: dict[str, str]) -> dict[tuple[str, str], httpx.Response]:
    out = {}
    with httpx.Client(base_url=url, timeout=60) as client:
        for method, path in routes:
            body = BODIES.get(path, CHAT) if method in ("POST", "PUT", "PATCH") else None
            out[method, path] = client.request(method, path, json=body, headers=headers)
    return out


def table(responses: dict[tuple[str, str], httpx.Response]) -> str:
    return "\n".join(f"{r.status_code}  {m:7} {p}" for (m, p), r in responses.items())


def assert_refused(responses: dict[tuple[str, str], httpx.Response]) -> None:
    print(table(responses))
    leaks = {k: r.status_code for k, r in responses.items() if k not in OPEN and r.status_code != 401}
    assert not leaks, f"answered without the right key: {leaks}"
    for (method, path), r in responses.items():
        if (method, path) not in OPEN and method != "HEAD":
            error = r.json()["error"]
            assert error["code"] == "invalid_api_key" and error["type"] == "invalid_request_error", (method, path)
            assert r.headers["www-authenticate"].startswith("Bearer")
    assert responses["GET", "/health"].status_code == 200


def test_every_route_and_method_refuses_a_request_without_the_key(server, routes):
    responses = walk(server["url"], routes, {})
    assert_refused(responses)
    assert "Missing API key" in responses["POST", "/invocations"].json()["error"]["message"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer not-the-key"},
        {"Authorization": f"Bearer {KEY}x"},
        {"Authorization": KEY},  # no scheme
        {"Authorization": f"Basic {KEY}"},
        {"x-api-key": KEY},  # vLLM accepts only the bearer form; so does lf-wrap
    ],
    ids=["wrong", "longer", "no-scheme", "basic", "x-api-key"],
)
def test_every_route_and_method_refuses_a_wrong_key(server, routes, headers):
    assert_refused(walk(server["url"], routes, headers))


def test_with_the_key_the_api_answers(server):
    auth = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=server["url"], headers=auth, timeout=120) as client:
        models = client.get("/v1/models")
        assert models.status_code == 200 and [m["id"] for m in models.json()["data"]] == [NAME]
        chat = client.post("/v1/chat/completions", json=CHAT)
        assert chat.status_code == 200, chat.text
        assert chat.json()["choices"][0]["message"]["content"]
        assert client.post("/invocations", json=CHAT).status_code == 200
        assert client.post("/tokenize", json=BODIES["/tokenize"]).json()["count"] > 0
        assert "vllm:" in client.get("/metrics").text
    assert httpx.get(f"{server['url']}/health", timeout=10).status_code == 200  # no key needed


def test_a_websocket_without_the_key_is_refused(server):
    with socket.create_connection(("127.0.0.1", server["port"]), timeout=30) as s:
        s.sendall(
            b"GET /v1/realtime HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        status = s.recv(4096).split(b"\r\n", 1)[0]
    assert b" 101 " not in status, status


def test_the_key_is_in_no_command_line_and_nothing_written(server):
    assert all(KEY not in line for line in cmdlines().values()), "the API key is visible in ps"
    pid = server["info"]["pid"]
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert f"VLLM_API_KEY={KEY}".encode() in environ
    assert any(v.startswith(b"PYTHONPATH=") and b"vllm_plugin" in v for v in environ)
    assert "--middleware lf_wrap_auth.ApiKeyMiddleware" in cmdlines()[pid]
    printed = server["result"].stderr + server["result"].stdout
    assert KEY not in printed and "VLLM_API_KEY='***'" in printed
    for name in ("serve.json", "serve.log", "manifest.json"):
        path = server["run"] / name
        assert not path.exists() or KEY not in path.read_text(), f"{name} leaks the API key"


def test_check_tries_the_routes_vllm_leaves_open(server):
    check = lfw("check", "--base-url", server["url"], "--model", NAME, "--api-key", KEY, "--no-golden", "--json",
                "--max-tokens", 4, cwd=server["root"], env=OFFLINE, unset=KEYS)  # fmt: skip
    assert check.returncode in (0, 1) and check.stdout, check.stderr  # the untrained model may fail `chat`
    auth = next(c for c in json.loads(check.stdout)["checks"] if c["name"] == "auth")
    assert auth["ok"] and auth["statuses"] == {"GET /v1/models": 401, "POST /invocations": 401, "POST /tokenize": 401}
