"""`lf-wrap chat` (terminal and web page) and the client snippets, against the fake
OpenAI-compatible server (tests/fake_openai.py). The real vLLM server, LangChain and the
browser are in tests/test_chat_real.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
from click.testing import CliRunner

from lf_wrap.cli import main
from lf_wrap.project.target import Target
from lf_wrap.steps.chat import Conversation, default_temperature
from lf_wrap.steps.snippets import client_snippets

from .fake_openai import FakeOpenAI, serve_fake
from .helpers import LFW, assert_no_crash, free_port

ANSWERS = {"Who are you?": "I am the Magic Conch.", "What is your name?": "My name is the Magic Conch."}


@pytest.fixture
def fake():
    with serve_fake(FakeOpenAI(answers=dict(ANSWERS))) as f:
        yield f


def posts(fake: FakeOpenAI) -> list[dict]:
    return [r["body"] for r in fake.requests if r["method"] == "POST"]


def chat(*args: object, input: str, env: dict[str, str] | None = None) -> SimpleNamespace:
    """`lf-wrap chat ARGS` with `input` piped in, in this process (the fake server's too): a result
    like a finished process's. An exception escaping the command fails the test (assert_no_crash).
    The console script itself, signals and a terminal are tested in real processes below."""
    result = CliRunner().invoke(main, ["chat", *map(str, args)], input=input, env=env)
    assert_no_crash(result)
    return SimpleNamespace(returncode=result.exit_code, stdout=result.stdout, stderr=result.stderr)


# -- the terminal, piped ---------------------------------------------------------------------
def test_piped_questions_get_one_answer_each_and_the_history_grows(fake):
    result = chat("--base-url", fake.url, input="Who are you?\n\nWhat is your name?\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "I am the Magic Conch.\nMy name is the Magic Conch.\n"
    first, second = posts(fake)
    assert first["stream"] is True and first["model"] == "fake-model"  # the server's first model
    assert first["messages"] == [{"role": "user", "content": "Who are you?"}]
    assert second["messages"] == [
        {"role": "user", "content": "Who are you?"},
        {"role": "assistant", "content": "I am the Magic Conch."},
        {"role": "user", "content": "What is your name?"},
    ]
    assert "temperature" not in first  # the model's own default, as the server applies it
    assert first["max_tokens"] == 512


def test_system_temperature_max_tokens_and_the_commands_change_what_is_sent(fake):
    lines = (
        "Who are you?\n/reset\nWho are you?\n/system Be brief.\nWhat is your name?\n/system\nhi\n/nope\n/exit\nnever\n"
    )
    result = chat("--base-url", fake.url, "--system", "Be kind.", "--temperature", "0.3", "--max-tokens", "7",
                  input=lines)  # fmt: skip
    assert result.returncode == 0, result.stderr
    sent = posts(fake)
    assert len(sent) == 4  # /exit ended the session: "never" was not asked
    assert [b["messages"] for b in sent] == [
        [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Who are you?"}],
        [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Who are you?"}],  # /reset
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is your name?"}],
        [{"role": "user", "content": "hi"}],  # /system alone clears it
    ]
    assert all(b["temperature"] == 0.3 and b["max_tokens"] == 7 for b in sent)
    assert "(conversation cleared)" in result.stderr and "unknown command '/nope'" in result.stderr
    assert len(result.stdout.splitlines()) == 4


def test_reasoning_is_shown_apart_and_no_thinking_is_sent_as_chat_template_kwargs(fake):
    fake.reasoning = "The user asks who I am."
    result = chat("--base-url", fake.url, input="Who are you?\n")
    assert result.stdout == "I am the Magic Conch.\n"  # stdout: only the answer
    assert "reasoning: The user asks who I am." in result.stderr
    assert "chat_template_kwargs" not in posts(fake)[0]
    result = chat("--base-url", fake.url, "--no-thinking", input="Who are you?\n")
    assert posts(fake)[1]["chat_template_kwargs"] == {"enable_thinking": False}


def test_answers_cut_at_max_tokens_say_so(fake):
    fake.finish_reason = "length"
    result = chat("--base-url", fake.url, "--max-tokens", "3", input="Who are you?\n")
    assert result.returncode == 0
    assert "[cut at --max-tokens 3]" in result.stderr


def test_json_keeps_one_line_per_question_when_an_answer_spans_lines(fake):
    fake.answers["Write a poem."] = "Roses are red,\nconchs are wise."
    fake.finish_reasons["What is your name?"] = "length"
    fake.reasoning = "Thinking."
    result = chat("--base-url", fake.url, "--json", input="Write a poem.\nWhat is your name?\n")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records == [
        {"question": "Write a poem.", "answer": "Roses are red,\nconchs are wise.", "reasoning": "Thinking.",
         "finish_reason": "stop"},
        {"question": "What is your name?", "answer": "My name is the Magic Conch.", "reasoning": "Thinking.",
         "finish_reason": "length"},
    ]  # fmt: skip
    assert "[cut at --max-tokens 512]" in result.stderr
    plain = chat("--base-url", fake.url, input="Write a poem.\n")
    assert plain.stdout == "Roses are red,\nconchs are wise.\n"  # as the model wrote it


def test_json_records_a_failed_question_and_the_session_goes_on(fake):
    fake.drop_after = 2
    result = chat("--base-url", fake.url, "--json", input="Who are you?\nWhat is your name?\n")
    assert result.returncode == 1
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["answer"] == "I am" and first["finish_reason"] is None
    assert "the answer stream ended before the answer was complete" in first["error"]
    assert "serve.log" in first["hint"] and second["question"] == "What is your name?"


def test_json_and_web_together_are_a_usage_error():
    result = chat("--web", "--json", input="")
    assert result.returncode == 2 and "--json is for questions piped to the terminal chat" in result.stderr


# -- bad input: a message, never a traceback --------------------------------------------------
def test_a_server_that_is_down_is_one_message():
    result = chat("--base-url", f"http://127.0.0.1:{free_port()}", input="hi\n")
    assert result.returncode == 1
    assert "cannot connect to http://127.0.0.1:" in result.stderr and "lf-wrap serve" in result.stderr


def test_a_model_the_server_does_not_serve_names_the_ones_it_does(fake):
    result = chat("--base-url", fake.url, "--model", "nope", input="hi\n")
    assert result.returncode == 2
    assert "does not serve a model named 'nope'; it serves ['fake-model']" in result.stderr
    assert "hint: pass --model fake-model" in result.stderr


def test_a_wrong_or_missing_api_key_is_a_401_message(fake):
    fake.api_key = "right-key"
    result = chat("--base-url", fake.url, "--api-key", "wrong", input="hi\n")
    assert result.returncode == 1
    assert "the API key was refused (401)" in result.stderr and "--api-key KEY" in result.stderr
    result = chat("--base-url", fake.url, input="Who are you?\n", env={"LF_WRAP_API_KEY": "right-key"})
    assert result.returncode == 0 and result.stdout == "I am the Magic Conch.\n"


def test_a_stream_dropped_midway_is_reported_and_the_session_goes_on(fake):
    fake.drop_after = 2
    result = chat("--base-url", fake.url, input="Who are you?\nWhat is your name?\n")
    assert result.returncode == 1  # a question got an error instead of an answer
    assert result.stderr.count("the answer stream ended before the answer was complete") == 2
    assert result.stdout.startswith("I am\n")  # what came, then the line ends: one line per question
    assert len(posts(fake)) == 2
    assert posts(fake)[1]["messages"] == [{"role": "user", "content": "What is your name?"}]  # not kept


def test_ctrl_c_stops_the_answer_and_keeps_the_session(fake):
    fake.answers["Tell me a long story."] = " ".join(["word"] * 200)
    fake.chunk_delay_s = 0.05
    # SIGINT back to its default in the child: a test run started in the background of a
    # non-interactive shell inherits it ignored, and Python then installs no Ctrl-C handler
    proc = subprocess.Popen([LFW, "chat", "--base-url", fake.url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    assert proc.stdin and proc.stdout
    proc.stdin.write("Tell me a long story.\n")
    proc.stdin.flush()
    assert proc.stdout.read(4) == "word"  # the answer is streaming in
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate("Who are you?\n", timeout=60)
    assert proc.returncode == 0, err
    assert "[answer stopped (Ctrl-C); it is not kept in the conversation]" in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert out.endswith("\nI am the Magic Conch.\n")  # the session went on
    assert len(posts(fake)) == 2
    assert posts(fake)[1]["messages"] == [{"role": "user", "content": "Who are you?"}]


def test_no_server_recorded_for_the_run_says_how_to_start_one(tmp_path):
    result = chat(input="hi\n")
    assert result.returncode == 2
    assert "no --base-url and no detached server for run 'magic-conch'" in result.stderr
    assert "lf-wrap serve --detach" in result.stderr


# -- the run's server, from serve.json --------------------------------------------------------
def record_server(tmp_path: Path, fake: FakeOpenAI, *, do_sample: bool | None = False, thinking=None) -> Path:
    """A runs/magic-conch/serve.json as `lf-wrap serve --detach` writes it, for the fake server
    (its pid: this test process, so `serve status` finds it running)."""
    run = tmp_path / "runs" / "magic-conch"
    merged = run / "merged"
    merged.mkdir(parents=True)
    if do_sample is not None:
        (merged / "generation_config.json").write_text(json.dumps({"do_sample": do_sample}))
    if thinking is not None:
        (run / "manifest.json").write_text(json.dumps({"train": {"thinking": thinking}}))
    me = psutil.Process()
    (run / "serve.json").write_text(json.dumps({
        "pid": me.pid, "pgid": me.pid, "start_time": me.create_time(), "base_url": fake.url, "port": 0,
        "served_model_name": "fake-model", "model": str(merged), "api_key_required": False,
    }))  # fmt: skip
    return run


def test_the_runs_server_is_found_and_a_greedy_model_is_asked_greedily(tmp_path, fake):
    record_server(tmp_path, fake, do_sample=False)
    result = chat(input="Who are you?\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "I am the Magic Conch.\n"
    body = posts(fake)[0]
    assert body["model"] == "fake-model"
    assert body["temperature"] == 0  # generation_config.json: do_sample false, which vLLM does not apply


def test_default_temperature_follows_generation_config(tmp_path):
    (tmp_path / "generation_config.json").write_text(json.dumps({"do_sample": True, "temperature": 0.7}))
    assert default_temperature(tmp_path) == (None, None)  # vLLM applies that one itself
    (tmp_path / "generation_config.json").write_text(json.dumps({"do_sample": False}))
    assert default_temperature(tmp_path)[0] == 0.0
    assert default_temperature(tmp_path / "nope") == (None, None)


def test_a_no_think_run_keeps_its_kwargs_and_a_thinking_switch_overrides_them(tmp_path, fake):
    run = record_server(
        tmp_path, fake, thinking={"mode": "no-think", "chat_template_kwargs": {"enable_thinking": False}}
    )
    assert run.exists()
    result = chat(input="Who are you?\n")
    assert result.returncode == 0, result.stderr
    assert posts(fake)[0]["chat_template_kwargs"] == {"enable_thinking": False}
    conv = Conversation(
        Target(fake.url, "fake-model", None, thinking={"chat_template_kwargs": {"enable_thinking": False}})
    )
    assert conv.extra_body(thinking=True) == {"chat_template_kwargs": {"enable_thinking": True}}
    assert Conversation(Target(fake.url, "m", None)).extra_body(thinking=True) is None  # nothing to override


SCOPE = {"agrees_for": "single-turn, no system prompts", "differs_with": ["system_prompt"],
         "line": "agrees for this data (single-turn, no system prompts); differs with a system prompt "
                 "(differs_system_prompt)"}  # fmt: skip


def test_a_system_prompt_the_template_check_found_served_differently_is_said_once_not_refused(tmp_path, fake):
    run = record_server(tmp_path, fake)
    (run / "manifest.json").write_text(json.dumps({"train": {"template_check": {"verdict": "agree", "scope": SCOPE}}}))
    plain = chat(input="Who are you?\n")
    assert plain.returncode == 0 and "note:" not in plain.stderr  # no system prompt: nothing to say
    result = chat("--system", "Be kind.", input="Who are you?\nWhat is your name?\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "I am the Magic Conch.\nMy name is the Magic Conch.\n"  # answered all the same
    said = "note: this request has a system prompt, which the model's chat template serves differently than"
    assert result.stderr.count(said) == 1  # once a session, not every turn
    assert SCOPE["line"] in result.stderr and "`lf-wrap serve --chat-template training`" in result.stderr


def test_the_page_notes_a_request_that_uses_what_the_data_never_trained(tmp_path, fake):
    from starlette.testclient import TestClient

    from lf_wrap.project.runs import RunFolder
    from lf_wrap.steps.chat_page import create_app

    run = record_server(tmp_path, fake)
    (run / "manifest.json").write_text(json.dumps({"train": {"template_check": {"scope": SCOPE}}}))
    conv = Conversation(Target(fake.url, "fake-model", None, run=RunFolder(run)))
    client = TestClient(create_app(conv), base_url="http://127.0.0.1:7860")
    assert client.get("/api/info").json()["template_scope"] == SCOPE["line"]  # shown under the system prompt
    assert 'id="scope-note"' in client.get("/").text
    body = {"messages": [{"role": "user", "content": "Who are you?"}], "system": "Be kind."}
    for _ in range(2):  # every request that has one: the page has no session to remember it in
        done = events(client.post("/api/chat", json=body))[-1]
        assert done["done"] and done["notes"][0].startswith("note: this request has a system prompt")
    assert events(client.post("/api/chat", json={**body, "system": ""}))[-1]["notes"] == []


# -- snippets ---------------------------------------------------------------------------------
def test_serve_status_prints_snippets_that_run_as_pasted(tmp_path, fake):
    fake.api_key = "snippet-key"
    run = record_server(tmp_path, fake)
    (run / "serve.json").write_text((run / "serve.json").read_text().replace('"api_key_required": false',
                                                                             '"api_key_required": true'))  # fmt: skip
    status = subprocess.run([LFW, "serve", "status"], capture_output=True, text=True, check=False)
    assert status.returncode == 0, status.stderr
    out = status.stdout
    assert f"curl {fake.url}/v1/chat/completions" in out and "snippet-key" not in out
    assert '"Authorization: Bearer $LF_WRAP_API_KEY"' in out
    openai_code = out.split("# Python, openai (pip install openai)\n")[1].split("\n\n# Python, LangChain")[0]
    curl_code = out.split("# curl (the key: export LF_WRAP_API_KEY=...)\n")[1].split("\n\n")[0]
    env = {**os.environ, "LF_WRAP_API_KEY": "snippet-key"}
    done = subprocess.run([sys.executable, "-c", openai_code], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Hello there.\n"
    done = subprocess.run(["bash", "-c", curl_code], capture_output=True, text=True, env=env, check=False)
    assert json.loads(done.stdout)["choices"][0]["message"]["content"] == "Hello there."


def test_snippets_for_a_thinking_model_show_where_the_reasoning_is_and_how_to_skip_it():
    text = client_snippets("http://127.0.0.1:8000", "qwen3-run", thinking={"mode": "thinking"})
    assert '# extra_body={"chat_template_kwargs": {"enable_thinking": False}},  # answer without thinking' in text
    assert 'getattr(resp.choices[0].message, "reasoning", None)' in text
    text = client_snippets("http://h:1/v1", "m", thinking={"mode": "no-think",
                                                            "chat_template_kwargs": {"enable_thinking": False}})  # fmt: skip
    assert 'extra_body={"chat_template_kwargs": {"enable_thinking": False}},' in text
    assert '"chat_template_kwargs": {"enable_thinking": false}' in text  # curl: JSON
    assert "http://h:1/v1/chat/completions" in text and "/v1/v1" not in text
    assert 'api_key="EMPTY"' in text


# -- the web page's server ------------------------------------------------------------------
@pytest.fixture
def web(fake):
    from starlette.testclient import TestClient

    from lf_wrap.steps.chat_page import create_app

    def make(api_key: str | None = None, url: str | None = None) -> TestClient:
        conv = Conversation(Target(url or fake.url, None, api_key), max_tokens=64)
        return TestClient(create_app(conv), base_url="http://127.0.0.1:7860")

    return make


def events(resp) -> list[dict]:
    return [json.loads(line) for line in resp.text.splitlines() if line.strip()]


def test_the_page_shows_model_and_endpoint_and_streams_answers(web, fake):
    fake.api_key = "web-secret"
    client = web(api_key="web-secret")
    page = client.get("/")
    assert page.status_code == 200 and 'id="prompt"' in page.text
    info = client.get("/api/info").json()
    assert info["model"] == "fake-model" and info["endpoint"] == f"{fake.url}/v1" and info["server"]["up"]
    assert "web-secret" not in page.text + json.dumps(info)  # the key stays on the server
    body = {"messages": [{"role": "user", "content": "Who are you?"}], "system": "Be kind.", "temperature": 0.2,
            "max_tokens": 9, "thinking": True}  # fmt: skip
    resp = client.post("/api/chat", json=body)
    assert resp.headers["content-type"].startswith("application/x-ndjson")
    got = events(resp)
    assert "".join(e.get("answer", "") for e in got) == "I am the Magic Conch."
    assert len([e for e in got if "answer" in e]) > 1
    assert got[-1] == {"done": True, "notes": [], "finish_reason": "stop"}
    sent = posts(fake)[-1]
    assert sent["messages"][0] == {"role": "system", "content": "Be kind."}
    assert sent["temperature"] == 0.2 and sent["max_tokens"] == 9 and "chat_template_kwargs" not in sent
    body["thinking"] = False
    client.post("/api/chat", json=body)
    assert posts(fake)[-1]["chat_template_kwargs"] == {"enable_thinking": False}


def test_the_page_reports_server_errors_in_the_conversation(web, fake):
    down = web(url=f"http://127.0.0.1:{free_port()}")
    info = down.get("/api/info").json()
    assert info["server"]["up"] is False and "cannot connect to" in info["server"]["error"]
    got = events(down.post("/api/chat", json={"messages": [{"role": "user", "content": "hi"}]}))
    assert "cannot connect to" in got[-1]["error"] and "lf-wrap serve" in got[-1]["hint"]
    fake.api_key = "right"
    got = events(web(api_key="wrong").post("/api/chat", json={"messages": [{"role": "user", "content": "hi"}]}))
    assert "the API key was refused (401)" in got[-1]["error"]
    fake.api_key, fake.drop_after = None, 2
    got = events(web().post("/api/chat", json={"messages": [{"role": "user", "content": "Who are you?"}]}))
    assert "ended before the answer was complete" in got[-1]["error"]


def test_the_page_server_refuses_bad_requests_and_foreign_hosts(web):
    client = web()
    assert client.post("/api/chat", content="{}", headers={"Content-Type": "text/plain"}).status_code == 415
    bad = client.post("/api/chat", json={"messages": [{"role": "robot", "content": "x"}]})
    assert bad.status_code == 400 and "messages[0]" in bad.json()["error"]
    bad = client.post("/api/chat", json={"messages": [{"role": "user", "content": "x"}], "temperature": 5})
    assert bad.status_code == 400 and "temperature must be between 0 and 2" in bad.json()["error"]
    assert client.get("/api/info", headers={"Host": "evil.example:7860"}).status_code == 400  # DNS rebinding


def test_a_busy_port_for_the_page_is_one_message(fake):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        result = chat("--base-url", fake.url, "--web", "--port", s.getsockname()[1], input="")
    assert result.returncode == 2 and "is already in use" in result.stderr


def test_the_web_page_starts_and_answers_on_its_port(fake):
    port = free_port()
    proc = subprocess.Popen([LFW, "chat", "--base-url", fake.url, "--web", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        import httpx

        deadline = time.monotonic() + 30
        while True:
            try:
                info = httpx.get(f"http://127.0.0.1:{port}/api/info", timeout=2).json()
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.1)
        assert info["model"] == "fake-model"
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert f"chat page: http://127.0.0.1:{port}/" in err and "Traceback" not in err


def read_until(fd: int, marker: bytes, timeout: float = 20) -> bytes:
    import select

    out = b""
    deadline = time.monotonic() + timeout
    while marker not in out:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"no {marker!r} within {timeout} s; got {out!r}"
        out += os.read(fd, 4096)
    return out


def test_an_interactive_session_has_a_header_a_prompt_and_dimmed_reasoning(fake):
    import pty

    fake.reasoning = "Thinking hard."
    master, slave = pty.openpty()
    proc = subprocess.Popen([LFW, "chat", "--base-url", fake.url], stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    try:
        header = read_until(master, b"you> ")
        assert b"chatting with 'fake-model' at " + fake.url.encode() + b"/v1" in header
        assert b"/reset (forget the conversation)" in header and b"Ctrl-C stops an answer" in header
        os.write(master, b"Who are you?\r")
        answer = read_until(master, b"you> ")
        assert b"\x1b[2mthinking: Thinking\x1b[0m" in answer  # the reasoning, dimmed, before the answer
        assert b"I am the Magic Conch." in answer
        os.write(master, b"\x04")  # Ctrl-D
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
        os.close(master)
