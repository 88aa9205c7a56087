"""A corpus of bad inputs, each run through the CLI: exit 2, a message that names the file
and the place (line, row, field or key) and what to do, no traceback, inputs untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lf_wrap.data.reader import DatasetFile
from lf_wrap.data.validate import validate_file
from lf_wrap.util.errors import LfWrapError

A = {"instruction": "q", "input": "", "output": "a"}


def rows(*r: object) -> bytes:
    return json.dumps(list(r), ensure_ascii=False, indent=1).encode()


def jsonl(*r: object) -> bytes:
    return b"".join(json.dumps(x).encode() + b"\n" for x in r)


def conv(*turns: tuple[str, str], key: str = "conversations", rt: str = "from", ct: str = "value") -> dict:
    return {key: [{rt: r, ct: c} for r, c in turns]}


def msgs(*turns: tuple[str, str]) -> dict:
    return conv(*turns, key="messages", rt="role", ct="content")


INFO = "d/dataset_info.json"
# (case id, files {name: bytes}, CLI args, expected text naming the place)
CASES: list[tuple[str, dict[str, bytes], list[str], str]] = [
    # -- dataset files
    ("empty", {"x.json": b""}, ["data", "validate", "x.json"], "x.json: file is empty"),
    ("whitespace", {"x.json": b" \n\n "}, ["data", "validate", "x.json"], "x.json: file contains only whitespace"),
    ("invalid-json", {"x.json": b'[{"a": 1,,}]'}, ["data", "validate", "x.json"], "x.json:1:10: invalid JSON"),
    (
        "truncated",
        {"x.json": b'[{"instruction": "q", "output": "a"}, {"inst'},
        ["data", "validate", "x.json"],
        "is it truncated?",
    ),
    (
        "top-level-object",
        {"x.json": b'{"instruction": "q",\n "output": "a"}'},
        ["data", "validate", "x.json"],
        "x.json:1: top level is one JSON object, not a list of rows",
    ),
    (
        "jsonl-only-garbage",
        {"x.jsonl": b"{oops\n{nope\n"},
        ["data", "validate", "x.jsonl"],
        "x.jsonl:2: [row 1]: invalid JSON",
    ),
    (
        "top-level-string",
        {"x.json": b'"rows"'},
        ["data", "validate", "x.json"],
        "x.json:1: top level must be a list of rows",
    ),
    (
        "top-level-number",
        {"x.json": b"\n\n42"},
        ["data", "validate", "x.json"],
        "x.json:3: top level must be a list of rows",
    ),
    (
        "not-utf8",
        {"x.json": '[{"instruction": "café", "output": "a"}]'.encode("latin-1")},
        ["data", "validate", "x.json"],
        "x.json:1: not valid UTF-8",
    ),
    (
        "not-utf8-jsonl",
        {"x.jsonl": jsonl(A) + '{"instruction": "café", "output": "a"}\n'.encode("latin-1")},
        ["data", "validate", "x.jsonl"],
        "x.jsonl:2: [row 1]: not valid UTF-8",
    ),
    ("binary", {"x.json": b"\x1f\x8b\x08\x00\x00\x00"}, ["data", "validate", "x.json"], "x.json:1: contains NUL bytes"),
    (
        "bom",
        {"x.json": b"\xef\xbb\xbf" + rows(A)},
        ["data", "validate", "x.json"],
        "x.json:1:1: file starts with a UTF-8 byte-order mark",
    ),
    (
        "row-is-string",
        {"x.json": rows(A, "text")},
        ["data", "validate", "x.json"],
        "[row 1]: row is string, expected an object",
    ),
    (
        "row-is-list",
        {"x.json": rows(A, [1, 2])},
        ["data", "validate", "x.json"],
        "[row 1]: row is array, expected an object",
    ),
    ("row-is-null", {"x.jsonl": jsonl(A, None)}, ["data", "validate", "x.jsonl"], "x.jsonl:2: [row 1]: row is null"),
    (
        "missing-output",
        {"x.json": rows(A, {"instruction": "q"})},
        ["data", "validate", "x.json"],
        "[row 1].output: missing (the answer)",
    ),
    (
        "null-output",
        {"x.json": rows(A, {"instruction": "q", "output": None})},
        ["data", "validate", "x.json"],
        "[row 1].output: missing",
    ),
    (
        "empty-output",
        {"x.json": rows(A, {"instruction": "q", "output": " "})},
        ["data", "validate", "x.json"],
        "[row 1].output: the answer is empty",
    ),
    (
        "number-output",
        {"x.json": rows(A, {"instruction": "q", "output": 3})},
        ["data", "validate", "x.json"],
        "[row 1].output: must be a string, got number",
    ),
    (
        "empty-prompt",
        {"x.json": rows(A, {"instruction": "", "output": "a"})},
        ["data", "validate", "x.json"],
        "[row 1].instruction: empty prompt",
    ),
    (
        "list-instruction",
        {"x.json": rows(A, {"instruction": ["q"], "output": "a"})},
        ["data", "validate", "x.json"],
        "[row 1].instruction: must be a string, got array",
    ),
    (
        "system-not-string",
        {"x.json": rows(A, {**A, "system": {"a": 1}})},
        ["data", "validate", "x.json"],
        "[row 1].system: must be a string, got object",
    ),
    (
        "history-bad-pair",
        {"x.json": rows({**A, "history": [["q"]]})},
        ["data", "validate", "x.json"],
        "[row 0].history[0]: must be a [question, answer] pair",
    ),
    (
        "unknown-role",
        {"x.json": rows(conv(("human", "q"), ("robot", "a")))},
        ["data", "validate", "x.json"],
        "[row 0].conversations[1].from: unknown role 'robot'",
    ),
    (
        "broken-turn-order",
        {"x.json": rows(conv(("human", "q"), ("human", "q2"), ("gpt", "a")))},
        ["data", "validate", "x.json"],
        "[row 0].conversations[1].from: turn order broken",
    ),
    (
        "ends-on-user",
        {"x.json": rows(conv(("human", "q"), ("gpt", "a"), ("human", "q2")))},
        ["data", "validate", "x.json"],
        "[row 0].conversations[2]: conversation ends on 'human'",
    ),
    (
        "empty-conversation",
        {"x.json": rows({"conversations": []})},
        ["data", "validate", "x.json", "--format", "sharegpt"],
        "[row 0].conversations: empty conversation",
    ),
    (
        "conversations-not-list",
        {"x.json": rows({"conversations": "hi"})},
        ["data", "validate", "x.json"],
        "[row 0].conversations: must be a list of messages",
    ),
    (
        "message-no-content",
        {"x.json": rows({"conversations": [{"from": "human"}, {"from": "gpt", "value": "a"}]})},
        ["data", "validate", "x.json"],
        '[row 0].conversations[0]: has no "value" key',
    ),
    (
        "empty-messages",
        {"x.jsonl": jsonl({"messages": []})},
        ["data", "validate", "x.jsonl", "--format", "openai"],
        "x.jsonl:1: [row 0].messages: empty conversation",
    ),
    (
        "openai-unknown-role",
        {"x.jsonl": jsonl(msgs(("user", "q"), ("bot", "a")))},
        ["data", "validate", "x.jsonl"],
        "[row 0].messages[1].role: unknown role 'bot'",
    ),
    (
        "openai-null-content",
        {
            "x.jsonl": jsonl(
                msgs(("user", "q"), ("assistant", "a")),
                {"messages": [{"role": "user", "content": None}, {"role": "assistant", "content": "a"}]},
            )
        },
        ["data", "validate", "x.jsonl"],
        "x.jsonl:2: [row 1].messages[0].content: must be a string, got null",
    ),
    (
        "preference-missing-rejected",
        {"x.json": rows({"instruction": "q", "chosen": "a", "rejected": "b"}, {"instruction": "q", "chosen": "a"})},
        ["data", "validate", "x.json", "--format", "preference"],
        "[row 1].rejected: missing",
    ),
    (
        "preference-missing-chosen",
        {"x.json": rows({"instruction": "q", "chosen": "", "rejected": "b"})},
        ["data", "validate", "x.json"],
        "[row 0].chosen: the chosen answer is empty",
    ),
    (
        "bad-line-deep-in-jsonl",
        {
            "x.jsonl": jsonl(*[{**A, "instruction": f"q{i}"} for i in range(5000)])
            + b'{"instruction": "q", "output": \n'
        },
        ["data", "validate", "x.jsonl"],
        "x.jsonl:5001: [row 5000]: invalid JSON",
    ),
    (
        "wrong-format-flag",
        {"x.json": rows(A)},
        ["data", "validate", "x.json", "--format", "sharegpt"],
        "[row 0].conversations: missing",
    ),
    ("csv-extension", {"x.csv": b"a,b\n"}, ["data", "validate", "x.csv"], "x.csv: unsupported file type '.csv'"),
    # -- dataset_info.json
    (
        "info-corrupt",
        {INFO: b'{"a": {"file_name": "a.json"}'},
        ["data", "validate", "--dataset-dir", "d", "--name", "a"],
        "d/dataset_info.json:1:30: invalid JSON",
    ),
    (
        "info-not-object",
        {INFO: b"[1, 2]"},
        ["data", "validate", "--dataset-dir", "d", "--name", "a"],
        "d/dataset_info.json: top level must be an object",
    ),
    (
        "info-entry-not-object",
        {INFO: b'{"a": "a.json"}'},
        ["data", "validate", "--dataset-dir", "d", "--name", "a"],
        "d/dataset_info.json: a: entry must be an object",
    ),
    (
        "info-missing-file",
        {INFO: b'{"a": {"file_name": "gone.json"}}'},
        ["data", "validate", "--dataset-dir", "d", "--name", "a"],
        "d/dataset_info.json: a.file_name: d/gone.json does not exist",
    ),
    (
        "info-file-name-not-string",
        {INFO: b'{"a": {"file_name": 3}}'},
        ["data", "validate", "--dataset-dir", "d", "--name", "a"],
        "a.file_name: missing or not a string",
    ),
    (
        "info-escapes-dir",
        {INFO: b'{"a": {"file_name": "../x.json"}}', "x.json": rows(A)},
        ["data", "validate", "--dataset-dir", "d", "--name", "a"],
        "a.file_name: '../x.json' points outside the dataset dir",
    ),
    (
        "info-ranking-not-bool",
        {INFO: b'{"a": {"file_name": "a.json", "ranking": "yes"}}', "d/a.json": rows(A)},
        ["data", "validate", "--dataset-dir", "d", "--name", "a"],
        "a.ranking: must be true or false",
    ),
    (
        "info-tags-not-object",
        {INFO: b'{"a": {"file_name": "a.json", "tags": "from"}}', "d/a.json": rows(A)},
        ["data", "validate", "--dataset-dir", "d", "--name", "a"],
        "a.tags: must be an object",
    ),
    (
        "register-into-corrupt-info",
        {INFO: b"{", "x.json": rows(A)},
        ["data", "register", "x.json", "--name", "x", "--dataset-dir", "d"],
        "d/dataset_info.json:1:2: invalid JSON",
    ),
    # -- lf-wrap.yaml
    (
        "yaml-invalid",
        {"p.yaml": b"run_name: [x\n"},
        ["render", "train", "--config", "p.yaml"],
        "p.yaml:2:1: invalid YAML",
    ),
    (
        "yaml-not-mapping",
        {"p.yaml": b"- a\n- b\n"},
        ["render", "train", "--config", "p.yaml"],
        "p.yaml: must be a mapping of settings",
    ),
    (
        "yaml-unknown-key",
        {"p.yaml": b"run_name: a\nepochs: 3\n"},
        ["render", "train", "--config", "p.yaml"],
        "p.yaml:2: epochs: unknown key",
    ),
    (
        "yaml-wrong-type",
        {"p.yaml": b"train:\n  num_train_epochs: many\n"},
        ["render", "train", "--config", "p.yaml"],
        "p.yaml:2: train.num_train_epochs: must be a number",
    ),
    (
        "yaml-bad-choice",
        {"p.yaml": b"train:\n  lr_scheduler_type: 3\n  stage: dpo\n"},
        ["render", "train", "--config", "p.yaml"],
        "p.yaml:3: train.stage: lf-wrap sets this key itself",
    ),
    (
        "yaml-datasets-not-list",
        {"p.yaml": b"datasets: 3\n"},
        ["render", "train", "--config", "p.yaml"],
        "p.yaml:1: datasets: Input should be a valid list",
    ),
    ("yaml-missing-file", {}, ["render", "train", "--config", "nope.yaml"], "nope.yaml: no such file"),
    # -- --set values and CLI flags
    ("set-no-equals", {}, ["render", "train", "--set", "lora_rank"], "--set 'lora_rank': expected KEY=VALUE"),
    (
        "set-unknown",
        {},
        ["render", "train", "--set", "lora_rnak=8"],
        "--set lora_rnak: unknown key; did you mean 'lora_rank'?",
    ),
    (
        "set-wrong-type",
        {},
        ["render", "train", "--set", "lora_rank=big"],
        "train.lora_rank: must be an integer, got 'big'",
    ),
    ("set-bad-bool", {}, ["render", "train", "--set", "bf16=maybe"], "train.bf16: must be true or false"),
    (
        "set-bad-method",
        {},
        ["render", "train", "--set", "method=dora"],
        "method: Input should be 'lora', 'qlora' or 'full'",
    ),
    (
        "set-bad-dotted",
        {},
        ["render", "train", "--set", "model.x=1"],
        "--set model.x: only train.KEY and export.KEY take a dot",
    ),
    ("set-injection-run-name", {}, ["render", "train", "--set", "run_name=a\nb: 1"], "run_name: invalid run name"),
    (
        "flag-bad-format",
        {"x.json": rows(A)},
        ["data", "validate", "x.json", "--format", "yaml"],
        "Invalid value for '--format'",
    ),
    (
        "flag-bad-name",
        {"x.json": rows(A)},
        ["data", "register", "x.json", "--name", "a,b"],
        "invalid dataset name 'a,b'",
    ),
    (
        "flag-max-errors-zero",
        {"x.json": rows(A)},
        ["data", "validate", "x.json", "--max-errors", "0"],
        "Invalid value for '--max-errors'",
    ),
]


@pytest.mark.parametrize(("files", "args", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_a_located_message_and_changes_nothing(run, tmp_path, files, args, expected):
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert expected in result.output, result.output
    for path, content in before.items():
        assert path.read_bytes() == content, f"{path} was modified"


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 40


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(
        ["instruction", "input", "output", "conversations", "messages", "from", "value", "role", "content",
         "chosen", "rejected", "history", "system", "x"]), c, max_size=5),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=JSON, fmt=st.sampled_from(["auto", "alpaca", "sharegpt", "openai", "preference"]))
def test_validator_never_crashes_on_any_json(tmp_path, value, fmt):
    path = tmp_path / "h.json"
    path.write_text(json.dumps(value))
    try:
        report = validate_file(path, fmt)
    except LfWrapError:
        return
    assert report.rows >= 0 and all(i.message for i in report.issues)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200), suffix=st.sampled_from([".json", ".jsonl"]))
def test_validator_never_crashes_on_any_bytes(tmp_path, data, suffix):
    path = Path(tmp_path) / f"b{suffix}"
    path.write_bytes(data)
    try:
        report = validate_file(path, "auto")
    except LfWrapError:
        return
    assert report.rows >= 0
    DatasetFile(path)  # re-opening is fine too
