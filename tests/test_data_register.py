"""`lf-wrap data register` and `data validate --dataset-dir --name`: dataset_info.json
entries that LLaMA-Factory reads, written safely."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lf_wrap.data.registry import register

from .conftest import DATASETS

ROW = {"instruction": "hi", "input": "", "output": "hello"}


def info(dataset_dir: Path) -> dict:
    return json.loads((dataset_dir / "dataset_info.json").read_text(encoding="utf-8"))


def test_register_copies_the_data_in_and_writes_the_entry(run, write, tmp_path):
    src = write("in/my.json", [ROW, {**ROW, "instruction": "again", "system": "be nice"}])
    result = run("data", "register", src, "--name", "mine", "--dataset-dir", "data")
    assert result.exit_code == 0, result.output
    assert "registered 'mine' in data/dataset_info.json (data copied to data/mine.json)" in result.stdout
    assert info(tmp_path / "data") == {
        "mine": {
            "file_name": "mine.json",
            "columns": {"prompt": "instruction", "query": "input", "response": "output", "system": "system"},
        }
    }
    assert (tmp_path / "data" / "mine.json").read_bytes() == src.read_bytes()


def test_columns_only_name_keys_the_file_has(write, tmp_path):
    # LLaMA-Factory raises KeyError on a mapped column that no row has.
    src = write("a.json", [{"instruction": "q", "output": "a"}])
    reg = register(src, "a", tmp_path / "d")
    assert reg.entry["columns"] == {"prompt": "instruction", "response": "output"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("conch_sharegpt.json", {"file_name": "x.json", "formatting": "sharegpt", "columns": {"messages": "conversations", "system": "system"}}),
        ("conch_preference.json", {"file_name": "x.json", "ranking": True,
                                   "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected"}}),
        ("conch_messages.jsonl", {"file_name": "x.jsonl", "formatting": "sharegpt", "columns": {"messages": "messages"},
                                  "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                                           "assistant_tag": "assistant", "observation_tag": "tool",
                                           "function_tag": "function_call", "system_tag": "system"}}),
    ],
)  # fmt: skip
def test_each_format_gets_the_entry_llamafactory_documents(tmp_path, name, expected):
    reg = register(DATASETS / name, "x", tmp_path / "d")
    assert reg.entry == expected


@pytest.mark.parametrize("path", sorted(DATASETS.glob("*.json*")), ids=lambda p: p.name)
def test_registered_entry_validates_as_llamafactory_would_read_it(run, tmp_path, path):
    assert run("data", "register", path, "--name", "ds", "--dataset-dir", "d").exit_code == 0
    result = run("data", "validate", "--dataset-dir", "d", "--name", "ds")
    assert result.exit_code == 0, result.output
    assert "OK" in result.stdout


def test_same_registration_twice_is_a_no_op(run, write, tmp_path):
    src = write("my.json", [ROW])
    run("data", "register", src, "--name", "mine", "--dataset-dir", "d")
    before = (tmp_path / "d" / "dataset_info.json").stat().st_mtime_ns
    result = run("data", "register", src, "--name", "mine", "--dataset-dir", "d")
    assert result.exit_code == 0
    assert "'mine' is already registered in d/dataset_info.json, unchanged" in result.stdout
    assert (tmp_path / "d" / "dataset_info.json").stat().st_mtime_ns == before


def test_a_different_entry_under_the_same_name_needs_force(run, write, tmp_path):
    run("data", "register", write("a.json", [ROW]), "--name", "mine", "--dataset-dir", "d")
    other = write(
        "b.jsonl", json.dumps({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]})
    )
    result = run("data", "register", other, "--name", "mine", "--dataset-dir", "d")
    assert result.exit_code == 2
    assert "a different entry named 'mine' exists" in result.stderr
    assert "pass --force to replace it" in result.stderr
    assert info(tmp_path / "d")["mine"]["file_name"] == "mine.json"
    result = run("data", "register", other, "--name", "mine", "--dataset-dir", "d", "--force")
    assert result.exit_code == 0
    assert "replaced 'mine'" in result.stdout
    assert info(tmp_path / "d")["mine"]["file_name"] == "mine.jsonl"


def test_changed_data_under_the_same_name_needs_force(run, write, tmp_path):
    src = write("a.json", [ROW])
    run("data", "register", src, "--name", "mine", "--dataset-dir", "d")
    write("a.json", [ROW, {**ROW, "instruction": "new"}])
    result = run("data", "register", src, "--name", "mine", "--dataset-dir", "d")
    assert result.exit_code == 2
    assert "d/mine.json: exists with different content" in result.stderr
    assert run("data", "register", src, "--name", "mine", "--dataset-dir", "d", "--force").exit_code == 0
    assert len(json.loads((tmp_path / "d" / "mine.json").read_text())) == 2


def test_other_entries_and_their_order_are_kept(run, write, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    existing = {"zeta": {"file_name": "z.json"}, "alpha": {"hf_hub_url": "org/alpha", "formatting": "sharegpt"}}
    (d / "dataset_info.json").write_text(json.dumps(existing))
    run("data", "register", write("m.json", [ROW]), "--name", "mid", "--dataset-dir", d)
    got = info(d)
    assert list(got) == ["zeta", "alpha", "mid"]
    assert got["zeta"] == existing["zeta"] and got["alpha"] == existing["alpha"]


def test_invalid_data_is_not_registered(run, write, tmp_path):
    result = run("data", "register", write("bad.json", [{"instruction": "q"}]), "--name", "bad", "--dataset-dir", "d")
    assert result.exit_code == 2
    assert "[row 0].output: missing (the answer)" in result.stderr
    assert "1 error(s); not registered" in result.stderr
    assert not (tmp_path / "d" / "dataset_info.json").exists()


def test_corrupt_dataset_info_is_reported_and_never_overwritten(run, write, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "dataset_info.json").write_text('{"a": {"file_name": "a.json"},\n  "b": }\n')
    before = (d / "dataset_info.json").read_bytes()
    result = run("data", "register", write("m.json", [ROW]), "--name", "m", "--dataset-dir", d)
    assert result.exit_code == 2
    assert f"{d}/dataset_info.json:2:8: invalid JSON: Expecting value" in result.stderr
    assert "lf-wrap never overwrites a corrupt dataset_info.json" in result.stderr
    assert (d / "dataset_info.json").read_bytes() == before


@pytest.mark.parametrize(
    "name", ["has space", "a,b", "../x", "x/y", 'q"uote', "a: b", "", "-lead", "x" * 65, "new\nline"]
)
def test_unsafe_names_are_refused(run, write, name):
    result = run("data", "register", write("m.json", [ROW]), "--name", name, "--dataset-dir", "d")
    assert result.exit_code == 2
    assert "invalid dataset name" in result.stderr
    assert "LLaMA-Factory splits dataset lists on commas" in result.stderr


def test_file_already_inside_the_dataset_dir_is_referenced_not_copied(run, write, tmp_path):
    src = write("d/sub/mine.json", [ROW])
    result = run("data", "register", src, "--name", "mine", "--dataset-dir", "d")
    assert result.exit_code == 0
    assert info(tmp_path / "d")["mine"]["file_name"] == "sub/mine.json"
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["dataset_info.json", "dataset_info.json.lock", "sub"]


def test_input_file_is_byte_identical_after_register(run, write):
    src = write("m.json", [ROW])
    before = src.read_bytes()
    run("data", "register", src, "--name", "m", "--dataset-dir", "d")
    assert src.read_bytes() == before


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"file_name": "../outside.json"}, "points outside the dataset dir"),
        ({"file_name": "/etc/passwd"}, "points outside the dataset dir"),
        ({"file_name": "link.json"}, "is a link that leads outside the dataset dir"),
        ({"file_name": "missing.json"}, "does not exist"),
        ({"hf_hub_url": "org/x"}, "is a remote dataset (hf_hub_url)"),
        ({"file_name": "ok.json", "formatting": "csv"}, "formatting: unknown formatting 'csv'"),
        ({"file_name": "ok.json", "columns": ["prompt"]}, "columns: must be an object"),
        ({"file_name": "ok.json", "columns": {"promt": "instruction"}}, "columns.promt: unknown column name"),
        ("not an object", "entry must be an object"),
    ],
)
def test_bad_entries_are_refused_with_the_key_named(run, tmp_path, entry, expected):
    d = tmp_path / "d"
    d.mkdir()
    (tmp_path / "outside.json").write_text(json.dumps([ROW]))
    (d / "ok.json").write_text(json.dumps([ROW]))
    os.symlink(tmp_path / "outside.json", d / "link.json")
    (d / "dataset_info.json").write_text(json.dumps({"x": entry}))
    result = run("data", "validate", "--dataset-dir", d, "--name", "x")
    assert result.exit_code == 2
    assert f"{d}/dataset_info.json: x" in result.stderr
    assert expected in result.stderr


def test_entry_columns_are_honoured_like_llamafactory(run, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "q.json").write_text(json.dumps([{"question": "q", "answer": "a"}, {"question": "q2", "answer": ""}]))
    (d / "dataset_info.json").write_text(
        json.dumps({"qa": {"file_name": "q.json", "columns": {"prompt": "question", "response": "answer"}}})
    )
    result = run("data", "validate", "--dataset-dir", d, "--name", "qa")
    assert result.exit_code == 2
    assert "[row 1].answer: the answer is empty" in result.stderr


def test_unknown_dataset_name_suggests_the_close_one(run, write, tmp_path):
    run("data", "register", write("m.json", [ROW]), "--name", "magic_conch", "--dataset-dir", "d")
    result = run("data", "validate", "--dataset-dir", "d", "--name", "magic_conhc")
    assert result.exit_code == 2
    assert "no dataset named 'magic_conhc'" in result.stderr
    assert "did you mean 'magic_conch'?" in result.stderr
