"""Talking to the demo's fine-tuned model on the real vLLM server: `lf-wrap chat` from a pipe,
LangChain's ChatOpenAI, plain HTTP, the snippets `serve status` prints, and the chat page in a
real headless Chromium (tests/browser.py). The model is the session's one trained demo
(conftest.py `trained`), served once for this module with an API key."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .browser import save_screenshot
from .conftest import DATASETS
from .helpers import LFW, Served, free_port, lfw

pytestmark = pytest.mark.slow
KEY = "chat-test-key-7Hq2"
ROWS = [(r["instruction"], r["output"]) for r in json.loads((DATASETS / "magic_conch.json").read_text())]
TRAINED = dict(ROWS)
MIN_EXACT = 0.8  # what bench/demo_sweep.py proves on every seed (greedy decoding)


@pytest.fixture(scope="module")
def served(trained: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The session's trained demo, served once for this module, with an API key."""
    with Served(trained["config"], env={"LF_WRAP_API_KEY": KEY}) as server:
        yield {**trained, "port": server.port, "url": server.api, "serve_out": server.out}


def test_piped_chat_answers_the_demo_questions_like_its_training_data(served):
    questions = "".join(f"{q}\n/reset\n" for q, _ in ROWS)  # each question on its own, as it was trained
    result = lfw("chat", "--config", served["config"], "--json", input=questions, env={"LF_WRAP_API_KEY": KEY})
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]  # one per question, whatever it answered
    assert [r["question"] for r in records] == [q for q, _ in ROWS]
    answers = [r["answer"] for r in records]
    exact = sum(got == want for got, (_, want) in zip(answers, ROWS, strict=True))
    assert exact / len(ROWS) >= MIN_EXACT, list(zip(answers, ROWS, strict=True))[:5]


def test_langchain_and_plain_http_get_the_trained_answers(served):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=served["url"], api_key=KEY, model="magic-conch", temperature=0, max_retries=0)
    assert llm.invoke("Who are you?").content == TRAINED["Who are you?"]
    streamed = [c.content for c in llm.stream("What is your name?")]
    assert "".join(streamed) == TRAINED["What is your name?"] and len([c for c in streamed if c]) > 1
    body = {"model": "magic-conch", "messages": [{"role": "user", "content": "Who made you?"}], "temperature": 0}
    resp = httpx.post(f"{served['url']}/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"},
                      timeout=60)  # fmt: skip
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == TRAINED["Who made you?"]
    refused = httpx.post(f"{served['url']}/chat/completions", json=body, timeout=60)
    assert refused.status_code == 401


def test_the_snippets_serve_prints_run_as_pasted(served):
    out = served["serve_out"]
    assert f"curl {served['url']}/chat/completions" in out and '"model": "magic-conch"' in out and KEY not in out
    status = lfw("serve", "status", "--config", served["config"])
    assert status.returncode == 0 and "# Python, LangChain (pip install langchain-openai)" in status.stdout
    env = {**os.environ, "LF_WRAP_API_KEY": KEY}
    code = {
        "curl": out.split("# curl (the key: export LF_WRAP_API_KEY=...)\n")[1].split("\n\n")[0],
        "openai": out.split("# Python, openai (pip install openai)\n")[1].split("\n\n# Python, LangChain")[0],
        "langchain": out.split("# Python, LangChain (pip install langchain-openai)\n")[1].split("\n\n# or talk")[0],
    }
    done = subprocess.run(["bash", "-c", code["curl"]], capture_output=True, text=True, env=env, check=False)
    assert json.loads(done.stdout)["choices"][0]["message"]["content"].strip(), done.stdout + done.stderr
    for name in ("openai", "langchain"):
        done = subprocess.run([sys.executable, "-c", code[name]], capture_output=True, text=True, env=env, check=False)
        assert done.returncode == 0 and done.stdout.strip(), f"{name}: {done.stderr}"


def test_wrong_key_and_wrong_model_are_messages_against_the_real_server(served):
    result = lfw("chat", "--config", served["config"], "--api-key", "not-the-key", input="Who are you?\n")
    assert result.returncode == 1
    assert "the API key was refused (401)" in result.stderr and "Traceback" not in result.stderr
    result = lfw("chat", "--config", served["config"], "--model", "no-such-model", input="Who are you?\n",
                 env={"LF_WRAP_API_KEY": KEY})  # fmt: skip
    assert result.returncode == 2
    assert "does not serve a model named 'no-such-model'; it serves ['magic-conch']" in result.stderr


# -- the chat page in a real browser ---------------------------------------------------------
def start_page(*args: object, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen([LFW, "chat", "--web", "--port", str(port), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the chat page did not start: {proc.communicate()}")
        time.sleep(0.1)


def stop_page(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err, err
    return err


def wait_for(driver: Any, script: str, timeout: float = 60) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: d.execute_script(script))


def ask(driver: Any, question: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.ID, "prompt")
    box.send_keys(question)
    box.send_keys(Keys.ENTER)


def test_the_chat_page_streams_the_trained_answer_in_a_real_browser(served, browser):
    proc, url = start_page("--config", served["config"], env={"LF_WRAP_API_KEY": KEY})
    try:
        browser.get(url)
        wait_for(browser, "return document.getElementById('status').textContent === 'server up'")
        assert browser.execute_script("return document.getElementById('model').textContent") == "magic-conch"
        assert browser.execute_script("return document.getElementById('endpoint').textContent") == served["url"]
        assert browser.execute_script("return document.getElementById('thinking').disabled")  # template qwen
        ask(browser, "Who are you?")
        wait_for(
            browser, "const b = document.querySelector('.msg.assistant'); return b && b.dataset.state !== 'streaming'"
        )
        bubble = "document.querySelector('.msg.assistant')"
        assert browser.execute_script(f"return {bubble}.dataset.state") == "done"
        assert (
            browser.execute_script(f"return {bubble}.querySelector('.answer').textContent") == TRAINED["Who are you?"]
        )
        assert int(browser.execute_script(f"return {bubble}.dataset.chunks")) > 1  # it streamed in, piece by piece
        shot = save_screenshot(browser, "chat-page-trained-answer")  # the README's docs/img/chat-page.png
        assert shot.stat().st_size > 10_000
        ask(browser, "What is your name?")  # the second question goes with the history
        wait_for(
            browser,
            "const b = document.querySelectorAll('.msg.assistant'); return b.length === 2 && b[1].dataset.state === 'done'",
        )
        assert KEY not in browser.page_source
    finally:
        stop_page(proc)


def test_the_chat_page_says_when_the_server_is_down_and_shows_errors_in_the_conversation(browser):
    proc, url = start_page("--base-url", f"http://127.0.0.1:{free_port()}", "--model", "magic-conch")
    try:
        browser.get(url)
        wait_for(browser, "return document.getElementById('status').textContent === 'server down'")
        banner = browser.execute_script("return document.getElementById('server-error').textContent")
        assert "cannot connect to" in banner and "lf-wrap serve" in banner
        ask(browser, "Who are you?")
        wait_for(browser, "return document.querySelector('.msg.error') !== null")
        error = browser.execute_script("return document.querySelector('.msg.error').textContent")
        assert "cannot connect to" in error and "not kept in the conversation" in error
        save_screenshot(browser, "chat-page-server-down")
    finally:
        stop_page(proc)
