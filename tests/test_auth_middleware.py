"""The API-key middleware as a plain ASGI app (fake receive/send), the serve command and
environment that carry the key, and `check`'s auth probes. Fast: no vLLM."""

from __future__ import annotations

import ast
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from lf_wrap.engines import vllm as vllm_engine
from lf_wrap.engines.inside.vllm_plugin import lf_wrap_auth
from lf_wrap.engines.inside.vllm_plugin.lf_wrap_auth import ApiKeyMiddleware
from lf_wrap.engines.vllm import AUTH_MIDDLEWARE, PLUGIN_DIR, Vllm
from lf_wrap.project.config import load_project
from lf_wrap.steps.check import Checker
from lf_wrap.steps.serve import plan
from lf_wrap.util.errors import LfWrapError

KEY = "unit-test-key-41"


class App:
    """The wrapped app: records that it was reached and answers 200."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.calls.append(scope["type"])
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})


def call(mw: ApiKeyMiddleware, scope: dict[str, Any], incoming: list[dict[str, Any]] | None = None) -> list[dict]:
    sent: list[dict[str, Any]] = []
    queue = list(incoming or [{"type": "http.request", "body": b"{}", "more_body": False}])

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(mw(scope, receive, send))
    return sent


def http(path: str, method: str = "POST", headers: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": raw, **extra}


def status(sent: list[dict[str, Any]]) -> int:
    return sent[0]["status"]


@pytest.fixture
def app() -> App:
    return App()


@pytest.fixture
def mw(app: App) -> ApiKeyMiddleware:
    return ApiKeyMiddleware(app, key=KEY)


@pytest.mark.parametrize("path", ["/invocations", "/tokenize", "/metrics", "/v1/models", "/no/such/route", "/"])
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "OPTIONS"])
def test_without_the_key_every_path_and_method_gets_401_in_openais_error_shape(mw, app, path, method):
    sent = call(mw, http(path, method))
    assert status(sent) == 401 and app.calls == []
    headers = dict(sent[0]["headers"])
    assert headers[b"content-type"] == b"application/json" and headers[b"www-authenticate"].startswith(b"Bearer")
    body = json.loads(sent[1]["body"])
    assert body["error"]["code"] == "invalid_api_key" and body["error"]["type"] == "invalid_request_error"
    assert "Missing API key" in body["error"]["message"]
    assert int(headers[b"content-length"]) == len(sent[1]["body"])


@pytest.mark.parametrize(
    "value",
    ["Bearer wrong", f"Bearer {KEY}x", f"Bearer {KEY[:-1]}", KEY, f"Basic {KEY}", f"Token {KEY}", "Bearer", ""],
)
def test_a_wrong_or_malformed_key_gets_401(mw, app, value):
    sent = call(mw, http("/invocations", headers={"Authorization": value}))
    assert status(sent) == 401 and app.calls == []
    assert "Incorrect API key" in json.loads(sent[1]["body"])["error"]["message"]


def test_x_api_key_is_not_accepted_as_vllm_does_not_accept_it(mw, app):
    assert status(call(mw, http("/v1/messages", headers={"x-api-key": KEY}))) == 401 and app.calls == []


@pytest.mark.parametrize("value", [f"Bearer {KEY}", f"bearer {KEY}", f"BEARER  {KEY} "])
def test_the_right_bearer_key_passes_on_every_path(mw, app, value):
    for path in ("/invocations", "/metrics", "/v1/chat/completions"):
        assert status(call(mw, http(path, headers={"Authorization": value}))) == 200
    assert app.calls == ["http"] * 3


def test_one_right_key_among_several_authorization_headers_passes(mw, app):
    scope = http("/tokenize")
    scope["headers"] = [(b"authorization", b"Bearer nope"), (b"authorization", f"Bearer {KEY}".encode())]
    assert status(call(mw, scope)) == 200


def test_only_get_health_is_open(mw, app):
    assert status(call(mw, http("/health", "GET"))) == 200
    for method, path in (("POST", "/health"), ("HEAD", "/health"), ("GET", "/health/"), ("GET", "/healthz"),
                         ("GET", "/ping"), ("GET", "/v1/health")):  # fmt: skip
        assert status(call(mw, http(path, method))) == 401, (method, path)
    assert app.calls == ["http"]


def test_root_path_is_stripped_like_the_router_does(mw, app):
    assert status(call(mw, http("/api/health", "GET", root_path="/api"))) == 200
    assert status(call(mw, http("/api/invocations", root_path="/api"))) == 401


def test_head_gets_401_without_a_body(mw):
    sent = call(mw, http("/metrics", "HEAD"))
    assert status(sent) == 401 and sent[1]["body"] == b""


def test_lifespan_passes_through(mw, app):
    call(mw, {"type": "lifespan"}, [{"type": "lifespan.startup"}])
    assert app.calls == ["lifespan"]


def test_a_websocket_without_the_key_is_closed_before_it_is_accepted(mw, app):
    scope = {"type": "websocket", "path": "/v1/realtime", "root_path": "", "headers": []}
    sent = call(mw, scope, [{"type": "websocket.connect"}])
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "invalid API key"}] and app.calls == []
    scope["headers"] = [(b"authorization", f"Bearer {KEY}".encode())]
    call(mw, scope, [{"type": "websocket.connect"}])
    assert app.calls == ["websocket"]


def test_an_unknown_scope_type_is_refused(mw, app):
    with pytest.raises(RuntimeError, match="unsupported ASGI scope type"):
        call(mw, {"type": "webtransport"})
    assert app.calls == []


def test_the_key_comes_from_vllm_api_key_and_a_missing_key_fails_closed(app, monkeypatch):
    monkeypatch.setenv("VLLM_API_KEY", KEY)
    mw = ApiKeyMiddleware(app)  # what vLLM's app.add_middleware(cls) does
    assert status(call(mw, http("/invocations", headers={"Authorization": f"Bearer {KEY}"}))) == 200
    monkeypatch.delenv("VLLM_API_KEY")
    with pytest.raises(RuntimeError, match="VLLM_API_KEY is not set"):
        ApiKeyMiddleware(app)
    monkeypatch.setenv("VLLM_API_KEY", "")
    with pytest.raises(RuntimeError):
        ApiKeyMiddleware(app)


def test_the_middleware_uses_only_the_standard_library():
    """It runs in the serving environment, where lf-wrap (and maybe Starlette's API) is not what we think."""
    tree = ast.parse(Path(lf_wrap_auth.__file__).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported
    assert Path(lf_wrap_auth.__file__).parent == PLUGIN_DIR
    assert f"{Path(lf_wrap_auth.__file__).stem}.{ApiKeyMiddleware.__name__}" == AUTH_MIDDLEWARE


# -- the command and environment `lf-wrap serve` builds ----------------------------------------
@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "qwen2", "max_position_embeddings": 2048}))
    (model / "model.safetensors").write_bytes(b"")
    (model / "tokenizer.json").write_text("{}")
    return model


@pytest.fixture(params=[True, False], ids=["cpu-build", "gpu-build"])
def engine(request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Vllm:
    (tmp_path / "env" / "bin").mkdir(parents=True)
    fake = Vllm(tmp_path / "env" / "bin" / "vllm", cpu_build=request.param)
    monkeypatch.setattr(Vllm, "find", classmethod(lambda cls, *a, **k: fake))
    monkeypatch.setattr(vllm_engine, "_LIB_DIRS", ())
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    return fake


def make_plan(model: Path, api_key: str | None, extra: tuple[str, ...] = ()) -> Any:
    return plan(load_project(None), model=model, adapter=None, adapter_name=None, served_name=None, tokenizer=None,
                max_model_len=None, host="0.0.0.0", port=18123, api_key=api_key, tensor_parallel_size=None,
                dtype=None, extra=extra)  # fmt: skip


def test_the_key_travels_in_the_environment_never_in_argv(engine, model_dir):
    p = make_plan(model_dir, KEY)
    assert not any(KEY in arg for arg in p.command)
    assert "--api-key" not in p.command
    i = p.command.index("--middleware")
    assert p.command[i + 1] == AUTH_MIDDLEWARE == "lf_wrap_auth.ApiKeyMiddleware"
    assert p.command[1:2] == ["serve"] or p.command[2] == "vllm.entrypoints.openai.api_server"
    assert p.env["VLLM_API_KEY"] == KEY
    assert p.env["PYTHONPATH"] == str(PLUGIN_DIR) and (PLUGIN_DIR / "lf_wrap_auth.py").is_file()
    assert KEY not in p.printable()
    assert "VLLM_API_KEY='***'" in p.printable() and f"PYTHONPATH={PLUGIN_DIR}" in p.printable()
    assert not p.warnings or all("without --api-key" not in w for w in p.warnings)


def test_the_users_pythonpath_is_kept_after_the_plugin_folder(engine, model_dir, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/opt/mine")
    p = make_plan(model_dir, KEY)
    assert p.env["PYTHONPATH"] == f"{PLUGIN_DIR}{os.pathsep}/opt/mine"


def test_without_a_key_there_is_no_middleware_and_no_key_variable(engine, model_dir):
    p = make_plan(model_dir, None)
    assert "--middleware" not in p.command and "VLLM_API_KEY" not in p.env and "PYTHONPATH" not in p.env_changes
    assert any("without --api-key" in w for w in p.warnings)


def test_an_inherited_vllm_api_key_protects_every_route_too(engine, model_dir, monkeypatch):
    monkeypatch.setenv("VLLM_API_KEY", "inherited-Kq7")
    p = make_plan(model_dir, None)
    assert "--middleware" in p.command and p.env["VLLM_API_KEY"] == "inherited-Kq7"
    assert "inherited-Kq7" not in p.printable()
    assert make_plan(model_dir, KEY).env["VLLM_API_KEY"] == KEY  # --api-key wins


@pytest.mark.parametrize(
    "extra", [("--api-key=abc",), ("--api-key", "abc"), ("--api_key=abc",)], ids=["eq", "two-args", "underscore"]
)
def test_api_key_through_vllm_arg_is_refused_with_a_pointer_to_api_key(engine, model_dir, extra):
    with pytest.raises(LfWrapError, match="--vllm-arg=--api-key would put the key on the command line") as err:
        make_plan(model_dir, None, extra)
    assert "lf-wrap serve --api-key" in (err.value.hint or "")


def test_dry_run_prints_the_redacted_environment(engine, model_dir, run):
    result = run("serve", "--dry-run", "--model", model_dir, "--api-key", KEY, "--port", "18124")
    assert result.exit_code == 0, result.output
    assert KEY not in result.output and "VLLM_API_KEY='***'" in result.stdout
    assert "--middleware lf_wrap_auth.ApiKeyMiddleware" in result.stdout


# -- `lf-wrap check`'s auth probes ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("codes", "ok"),
    [
        ({"/v1/models": 401, "/invocations": 401, "/tokenize": 401}, True),
        ({"/v1/models": 401, "/invocations": 200, "/tokenize": 401}, False),  # vLLM's own --api-key alone
        ({"/v1/models": 401, "/invocations": 404, "/tokenize": 404}, True),  # a server without those routes
        ({"/v1/models": 200, "/invocations": 401, "/tokenize": 401}, False),
        ({"/v1/models": 401, "/invocations": 401, "/tokenize": 204}, False),
    ],
)
def test_check_auth_fails_when_a_route_answers_without_the_key(monkeypatch, codes, ok):
    seen: list[tuple[str, str, Any]] = []

    def fake_request(method: str, url: str, **kw: Any) -> httpx.Response:
        seen.append((method, url, kw.get("json")))
        assert "headers" not in kw or not kw["headers"]
        return httpx.Response(codes[url.removeprefix("http://h:1")])

    monkeypatch.setattr(httpx, "request", fake_request)
    result = Checker("http://h:1", KEY, "m", 5.0, False, 8).auth()
    assert result.ok is ok, result.detail
    assert [(m, u) for m, u, _ in seen] == [("GET", "http://h:1/v1/models"), ("POST", "http://h:1/invocations"),
                                            ("POST", "http://h:1/tokenize")]  # fmt: skip
    assert seen[1][2]["messages"] and seen[2][2]["prompt"]
    assert result.data["statuses"] == {f"{m} {u.removeprefix('http://h:1')}": codes[u.removeprefix("http://h:1")]
                                       for m, u, _ in seen}  # fmt: skip
    if not ok and codes["/v1/models"] == 401:
        assert "answered without the key" in result.detail
