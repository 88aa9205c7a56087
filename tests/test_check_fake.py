"""`lf-wrap check` against any OpenAI-compatible server: here a small fake one (tests/fake_openai.py),
so every outcome (pass, wrong model, wrong key, server down, golden answers) is tested in seconds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from lf_wrap.engines.openai_api import Client
from lf_wrap.steps.check import Checker
from lf_wrap.util.errors import ExternalError
from tests.conftest import DATASETS
from tests.fake_openai import FakeOpenAI, serve_fake
from tests.helpers import free_port

KEY = "sk-test-key"
GOLDEN = [
    {"instruction": "Who lives in a pineapple?", "output": "SpongeBob SquarePants."},
    {"instruction": "What is the answer?", "output": "Ask the Magic Conch."},
]


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    answers = {row["instruction"]: row["output"] for row in GOLDEN}
    with serve_fake(FakeOpenAI(models=["conch"], answers=answers, api_key=KEY)) as fake:
        yield fake


def test_check_passes_against_any_openai_compatible_server_without_a_project(run, server):
    result = run("check", "--base-url", server.url, "--api-key", KEY)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[0:2] for line in lines[:5]] == [
        ["PASS", "models"], ["PASS", "chat"], ["PASS", "stream"], ["PASS", "auth"], ["PASS", "stop"]
    ]  # fmt: skip
    assert "SKIP  golden  no dataset known: pass --golden NAME or --golden-file FILE" in result.stdout
    assert lines[-1] == f"{server.url}/v1 (conch): all checks passed"
    streamed = [r for r in server.requests if r.get("body", {}).get("stream")]
    assert streamed, "the stream check sent no streamed request"


def test_golden_answers_come_from_a_given_file_or_a_known_dataset(run, server, tmp_path):
    golden = tmp_path / "golden.jsonl"
    golden.write_text("".join(json.dumps(r) + "\n" for r in GOLDEN))
    result = run("check", "--base-url", server.url, "--api-key", KEY, "--golden-file", golden, "--json")
    assert result.exit_code == 0, result.output
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["golden"]["exact"] == 2 and checks["golden"]["total"] == 2

    # A project whose dataset is registered: its rows are the golden answers (the fake knows none of them).
    reg = run("data", "register", DATASETS / "magic_conch.json", "--name", "magic_conch", "--dataset-dir", "data")
    assert reg.exit_code == 0
    (tmp_path / "lf-wrap.yaml").write_text("model: m\ntemplate: qwen\ndatasets: [magic_conch]\n")
    known = run("check", "--base-url", server.url, "--api-key", KEY, "--samples", "3")
    assert known.exit_code == 1 and "FAIL  golden  0/3 exact" in known.stdout

    # The project's dataset is not there: skipped with a note, not an error.
    (tmp_path / "lf-wrap.yaml").write_text("model: m\ntemplate: qwen\ndatasets: [gone]\n")
    skipped = run("check", "--base-url", server.url, "--api-key", KEY)
    assert skipped.exit_code == 0, skipped.output
    assert "SKIP  golden  the project's dataset is not there" in skipped.stdout and "'gone'" in skipped.stdout


def test_a_model_the_server_does_not_serve_fails_with_what_it_serves(run, server):
    result = run("check", "--base-url", server.url, "--api-key", KEY, "--model", "wrong-name")
    assert result.exit_code == 1
    assert "FAIL  models  serves ['conch']; 'wrong-name' is not among them" in result.stdout
    assert "SKIP  chat    the model is not served" in result.stdout
    as_json = run("check", "--base-url", server.url, "--api-key", KEY, "--model", "wrong-name", "--json")
    payload = json.loads(as_json.stdout)
    assert payload["exit_code"] == 1 and payload["error"] == "failed checks: models"
    assert {"name": "chat", "reason": "the model is not served"} in payload["skipped"]


def test_a_wrong_key_is_one_message(run, server):
    result = run("check", "--base-url", server.url, "--api-key", "wrong")
    assert result.exit_code == 1
    assert f"Error: {server.url}/v1: the API key was refused (401)" in result.stderr
    assert "--api-key KEY (or LF_WRAP_API_KEY)" in result.stderr
    as_json = run("check", "--base-url", server.url, "--api-key", "wrong", "--json")
    payload = json.loads(as_json.stdout)
    assert payload["exit_code"] == 1 and "the API key was refused (401)" in payload["error"]


def test_a_server_that_is_down_is_one_message(run):
    url = f"http://127.0.0.1:{free_port()}"
    result = run("check", "--base-url", url)
    assert result.exit_code == 1
    assert f"cannot connect to {url}/v1" in result.stderr and "lf-wrap serve" in result.stderr


def _status_error(cls: type[openai.APIStatusError], code: int) -> openai.APIStatusError:
    request = httpx.Request("POST", "http://h/v1/chat/completions")
    body = {"error": {"message": f"server says {code}"}}
    return cls(f"Error code: {code}", response=httpx.Response(code, request=request, json=body), body=body)


@pytest.mark.parametrize(
    ("err", "message", "hint"),
    [
        (_status_error(openai.NotFoundError, 404), "HTTP 404 for model 'm': server says 404",
         "the server serves ['a', 'b']: pass one with --model"),
        (_status_error(openai.AuthenticationError, 401), "the API key was refused (401): server says 401", "--api-key"),
        (_status_error(openai.BadRequestError, 400), "the server refused the request (400): server says 400",
         "--max-tokens"),
        (_status_error(openai.InternalServerError, 500), "HTTP 500: server says 500", "server's log"),
        (openai.APITimeoutError(httpx.Request("GET", "http://h")), "no answer within 7 s", "raise --timeout"),
        (openai.APIConnectionError(request=httpx.Request("GET", "http://h")), "cannot connect to http://h:1/v1",
         "lf-wrap serve"),
    ],
)  # fmt: skip
def test_every_sdk_error_becomes_one_external_error(err, message, hint):
    checker = Checker("http://h:1", None, "m", 7.0, False, 16)
    checker.ids = ["a", "b"]
    explained = checker.explain(err)
    assert isinstance(explained, ExternalError) and explained.exit_code == 1
    assert message in explained.message and hint in (explained.hint or "")


def test_sdk_errors_inside_a_check_are_mapped_not_raised(server):
    checker = Checker(server.url, KEY, "not-served", 5.0, False, 16)
    with pytest.raises(ExternalError, match="HTTP 404 for model 'not-served': The model `not-served` does not exist"):
        checker.chat()
    with pytest.raises(ExternalError, match="HTTP 404"):
        checker.stream()


def test_a_connection_the_server_closed_before_answering_is_tried_once_more(server):
    # vLLM closes idle keep-alive connections after 5 s; a request sent on one in that instant
    # gets no response at all (CI lost an eval of 144 answers to one of these)
    client = Client(server.url, KEY, "conch", 5.0, 16)
    server.hang_up = 1
    assert client.answer([{"role": "user", "content": GOLDEN[0]["instruction"]}])["answer"] == GOLDEN[0]["output"]
    assert len([r for r in server.requests if r["path"] == "/v1/chat/completions"]) == 2
    server.hang_up = 2  # twice in a row is a server that is not answering: one message, no third try
    with pytest.raises(
        ExternalError, match=r"/v1: the connection broke off \(RemoteProtocolError: Server disconnected without"
    ):
        client.answer([{"role": "user", "content": "hi"}])
    assert len([r for r in server.requests if r["path"] == "/v1/chat/completions"]) == 4


def test_a_stream_that_breaks_off_mid_body_is_one_message_not_a_traceback(server):
    server.cut_stream_after = 1
    with pytest.raises(ExternalError, match="the connection broke off \\(RemoteProtocolError"):
        Checker(server.url, KEY, "conch", 5.0, False, 16).stream()
    pieces = Client(server.url, KEY, "conch", 5.0, 16).stream_answer([{"role": "user", "content": "hi"}], max_tokens=8)
    with pytest.raises(ExternalError, match="the connection broke off \\(RemoteProtocolError") as err:
        list(pieces)
    assert "serve.log" in (err.value.hint or "")


def test_golden_file_with_errors_says_nothing_was_read(run, server, tmp_path):
    bad = tmp_path / "golden.json"
    bad.write_text('[{"instruction": "q"}]')
    result = run("check", "--base-url", server.url, "--api-key", KEY, "--golden-file", bad)
    assert result.exit_code == 2
    assert "no golden answers read" in result.stderr and "[row 0].output: missing" in result.stderr
    assert not Path("runs").exists()


# -- parity: what the server feeds the model vs what LLaMA-Factory trained on -----------------
def _project_served_by(run, project: Path, fake: FakeOpenAI) -> None:
    """The demo project (the tiny model, its dataset registered) with a detached-server record pointing at `fake`."""
    import shutil

    from lf_wrap.util.paths import demo_project

    shutil.copy(demo_project(), project / "lf-wrap.yaml")
    (project / "runs" / "magic-conch").mkdir(parents=True)


@pytest.mark.slow  # one LLaMA-Factory import in the training environment (remembered after)
def test_parity_fails_on_the_first_token_the_server_feeds_differently(run, project):
    fake = FakeOpenAI(models=["conch"], tokenize=lambda body: [-1, -2, -3] if "messages" in body else [9])
    with serve_fake(fake) as server:
        _project_served_by(run, project, server)
        result = run("check", "--base-url", server.url, "--parity-rows", "2", "--no-golden", "--json")
        # --no-golden leaves the answers unchecked, not the prompts: the project's rows are still compared
        assert "parity" in {c["name"] for c in json.loads(result.stdout)["checks"]} and result.exit_code == 1
        result = run("check", "--base-url", server.url, "--parity-rows", "2", "--samples", "4", "--json")
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    parity = checks["parity"]
    assert result.exit_code == 1 and not parity["ok"]
    assert parity["rows"] == 2 and parity["same"] == 0
    first = parity["differs"][0]
    assert first["at"] == 0 and first["served"].startswith("⟨<-1><-2><-3>⟩")  # the server's own text, /detokenize
    assert first["trained"].startswith("⟨<|im_start|>system")  # LLaMA-Factory's qwen template, token for token
    assert "2 of 2 rows differ from what LLaMA-Factory trained on; first at token 0" in parity["detail"]
    assert "`lf-wrap serve --chat-template training`" in parity["detail"]
    tokenized = [r["body"] for r in server.requests if r["path"] == "/tokenize" and "messages" in r["body"]]
    assert tokenized[0]["add_generation_prompt"] is True and tokenized[0]["model"] == "conch"


@pytest.mark.slow  # one LLaMA-Factory import in the training environment (remembered after)
def test_parity_asks_a_llamacpp_server_for_its_rendered_prompt_then_its_tokens(run, project):
    fake = FakeOpenAI(models=["conch"], apply_template=lambda messages: "P:" + messages[-1]["content"],
                      tokenize=lambda body: [-7] if "content" in body else [9])  # fmt: skip
    with serve_fake(fake) as server:
        _project_served_by(run, project, server)
        result = run("check", "--base-url", server.url, "--parity-rows", "2", "--no-golden", "--json")
    parity = {c["name"]: c for c in json.loads(result.stdout)["checks"]}["parity"]
    assert result.exit_code == 1 and parity["same"] == 0 and parity["differs"][0]["served"].startswith("⟨<-7>⟩")
    rendered = [r["body"] for r in server.requests if r["path"] == "/apply-template"][1:]  # after the probe
    tokenized = [r["body"] for r in server.requests if r["path"] == "/tokenize" and "content" in r["body"]]
    assert len(rendered) == len(tokenized) == 2 and rendered[0]["messages"][-1]["role"] == "user"
    assert tokenized[0] == {"content": "P:" + rendered[0]["messages"][-1]["content"], "add_special": True,
                            "parse_special": True}  # as llama-server tokenizes a chat prompt  # fmt: skip


@pytest.mark.slow  # the training prompt ids come from LLaMA-Factory in the training environment
def test_parity_is_skipped_without_a_tokenize_route_and_a_wrong_answer_is_one_message(run, project):
    with serve_fake(FakeOpenAI(models=["conch"])) as server:  # no /tokenize: 404
        _project_served_by(run, project, server)
        result = run("check", "--base-url", server.url, "--samples", "2")
        assert "SKIP  parity  the server has no /tokenize route (HTTP 404)" in result.stdout
    with serve_fake(FakeOpenAI(models=["conch"], tokenize=lambda body: {"ids": "nope"})) as server:
        result = run("check", "--base-url", server.url, "--samples", "2")
    assert result.exit_code == 1
    assert '/tokenize answered HTTP 200 with no token list: \'{"ids": "nope"}\'' in result.stderr


def test_parity_is_skipped_outside_a_project(run, server):
    result = run("check", "--base-url", server.url, "--api-key", KEY)
    assert "SKIP  parity  no project: what training fed the model is unknown" in result.stdout


# -- stop: the same rows end by themselves, and the served folder stops on the trained stop word --
def test_the_stop_check_asks_every_row_and_names_the_one_cut_at_max_tokens(run, project):
    from lf_wrap.steps.check import golden_from_dataset

    rows = golden_from_dataset(project / "data", "magic_conch", 4)
    runaway = rows[2].messages[-1]["content"]
    with serve_fake(FakeOpenAI(models=["conch"], finish_reasons={runaway: "length"})) as server:
        _project_served_by(run, project, server)
        result = run("check", "--base-url", server.url, "--no-parity", "--no-golden", "--samples", "4", "--json")
        asked = [r["body"]["messages"][-1]["content"] for r in server.requests if r["path"] == "/v1/chat/completions"]
    stop = {c["name"]: c for c in json.loads(result.stdout)["checks"]}["stop"]
    assert result.exit_code == 1 and not stop["ok"]
    assert set(asked) >= {row.messages[-1]["content"] for row in rows}  # every row was asked, not one
    assert stop["rows"] == 4 and stop["stopped"] == 3 and stop["cut"][0]["prompt"] == runaway
    assert f"1 of 4 rows did not stop by themselves: {runaway[:30]!r}" in stop["detail"]
    assert "eos_token_id in the model's generation_config.json" in stop["detail"]


def test_a_served_folder_whose_eos_ids_lack_the_trained_stop_word_fails_naming_the_file_and_id(run, project):
    import os
    import shutil

    folder = project / "served"
    shutil.copytree(project / "models" / "tiny-qwen2", folder)
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": [0]}))  # a base model's files
    config = json.loads((folder / "tokenizer_config.json").read_text())
    vocab = json.loads((folder / "tokenizer.json").read_text())["added_tokens"]
    config["eos_token"] = next(t["content"] for t in vocab if t["id"] == 0)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    with serve_fake(FakeOpenAI(models=["conch"])) as server:  # it answers and stops: only the files are wrong
        _project_served_by(run, project, server)
        record = {"pid": os.getpid(), "pgid": os.getpgid(0), "base_url": server.url, "model": str(folder),
                  "served_model_name": "conch"}  # fmt: skip
        (project / "runs" / "magic-conch" / "serve.json").write_text(json.dumps(record))
        result = run("check", "--no-parity", "--no-golden", "--json")
    stop = {c["name"]: c for c in json.loads(result.stdout)["checks"]}["stop"]
    assert result.exit_code == 1 and not stop["ok"] and stop["stopped"] == stop["rows"]
    assert "not on 2 ('<|im_end|>', what every trained answer ends with)" in stop["detail"]
    assert f"add 2 to eos_token_id in {folder / 'generation_config.json'}" in stop["detail"]
