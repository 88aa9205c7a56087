"""`lf-wrap data validate`: every problem, with file:line, row and field, and a fix."""

from __future__ import annotations

import json

import pytest

from lf_wrap.data.validate import validate_file

from .conftest import DATASETS

GOOD_ALPACA = {"instruction": "hi", "input": "", "output": "hello"}


def lines_of(result_output: str) -> list[str]:
    return [line for line in result_output.splitlines() if line.strip()]


def test_valid_alpaca_prints_one_line_summary_and_exits_0(run, write):
    path = write("ok.json", [GOOD_ALPACA, {"instruction": "a", "output": "b", "system": "s"}])
    result = run("data", "validate", path)
    assert result.exit_code == 0
    assert result.stdout.strip() == f"{path}: OK, 2 rows, format alpaca"


def test_every_error_is_reported_with_real_line_numbers_in_a_json_array(run, write):
    text = (
        "[\n"
        '  {"instruction": "hi", "input": "", "output": "hello"},\n'  # line 2, row 0
        '  {"instruction": "", "input": "", "output": "x"},\n'  # line 3, row 1
        "  {\n"  # line 4, row 2
        '    "instruction": "q",\n'
        '    "output": ""\n'
        "  },\n"
        '  {"instruction": "q", "output": 3}\n'  # line 8, row 3
        "]\n"
    )
    path = write("bad.json", text)
    result = run("data", "validate", path)
    assert result.exit_code == 2
    out = lines_of(result.stderr)
    assert out[0] == (
        f'{path}:3: [row 1].instruction: empty prompt: "instruction" and "input" are empty or absent'
        ' — every row needs the user\'s question in "instruction"'
    )
    assert out[1].startswith(f"{path}:4: [row 2].output: the answer is empty — ")
    assert out[2] == f'{path}:8: [row 3].output: must be a string, got number — write "output" as a JSON string'
    assert out[-1] == f"{path}: 3 errors, 0 warnings in 4 rows (format alpaca)"


def test_jsonl_reports_bad_lines_and_keeps_going(run, write):
    good = json.dumps(GOOD_ALPACA)
    other = json.dumps({"instruction": "other", "output": "row"})
    path = write("data.jsonl", f"{good}\n\n{{broken\n{other}\n" + json.dumps({"instruction": "x"}) + "\n")
    result = run("data", "validate", path)
    assert result.exit_code == 2
    out = lines_of(result.stderr)
    assert out[0].startswith(f"{path}:3: [row 1]: invalid JSON at column 2")
    assert out[1] == f'{path}:5: [row 3].output: missing (the answer) — every row needs the answer in "output"'
    assert "2 errors" in out[-1] and "4 rows" in out[-1]


def test_listing_is_capped_and_counts_the_rest(run, write):
    path = write("many.jsonl", "".join(json.dumps({"instruction": "q", "output": ""}) + "\n" for _ in range(80)))
    result = run("data", "validate", path, "--max-errors", "5")
    out = lines_of(result.stderr)
    assert result.exit_code == 2
    assert len([line for line in out if "[row" in line]) == 5
    assert "... and 75 more problems not listed (first 5 shown)" in out
    assert out[-1] == f"{path}: 80 errors, 0 warnings in 80 rows (format alpaca)"


def test_warnings_do_not_fail_and_suggest_the_key_meant(run, write):
    path = write("w.json", [GOOD_ALPACA, {**GOOD_ALPACA, "outptu": "typo"}, GOOD_ALPACA])
    result = run("data", "validate", path)
    assert result.exit_code == 0
    assert (
        "[row 1].outptu: unknown key, LLaMA-Factory will ignore it — did you mean 'output'? (warning)" in result.stderr
    )
    assert "[row 2]: duplicate of row 0" in result.stderr
    assert result.stdout.strip() == f"{path}: OK, 3 rows, format alpaca, 2 warnings"


def test_duplicates_are_listed_in_row_order_with_the_line_of_the_repeat(run, write):
    text = "\n".join(
        [
            json.dumps({"instruction": "a", "output": "1"}),  # line 1, row 0
            "",
            json.dumps({"instruction": "b", "output": "2"}),  # line 3, row 1
            json.dumps({"instruction": "", "output": "x"}),  # line 4, row 2: error, never a duplicate
            json.dumps({"instruction": "b", "output": "2"}),  # line 5, row 3
            json.dumps({"instruction": "", "output": "x"}),  # line 6, row 4: error again
            json.dumps({"instruction": "a", "output": "1"}),  # line 7, row 5
        ]
    )
    path = write("dups.jsonl", text + "\n")
    result = run("data", "validate", path)
    assert result.exit_code == 2
    listed = lines_of(result.stderr)[:4]
    assert listed[0].startswith(f"{path}:4: [row 2].instruction: empty prompt")
    assert listed[1].startswith(f"{path}:5: [row 3]: duplicate of row 1")
    assert listed[2].startswith(f"{path}:6: [row 4].instruction: empty prompt")
    assert listed[3].startswith(f"{path}:7: [row 5]: duplicate of row 0")


def test_duplicate_search_for_large_files_agrees_with_the_small_file_search():
    import random

    from lf_wrap.data.duplicates import DuplicateFinder

    rng = random.Random(7)
    rows = [{"instruction": str(rng.randrange(300)), "output": "x"} for _ in range(2000)]
    small = DuplicateFinder(numpy_above=10**9, bitmap_above=10**9)  # a dict of every row
    bitmap = DuplicateFinder(numpy_above=10**9, bitmap_above=0)  # a dict of the bitmap's candidates
    large = DuplicateFinder(numpy_above=0)  # numpy
    for finder in (small, bitmap, large):
        for i, row in enumerate(rows):
            if i % 7:  # every 7th row is "invalid" and never compared
                finder.add(i, row, line=i + 1)
    found = list(small.found())
    assert found == list(bitmap.found()) == list(large.found())
    firsts: dict[str, int] = {}
    expected = []
    for i, row in enumerate(rows):
        if i % 7:
            first = firsts.setdefault(row["instruction"], i)
            if first != i:
                expected.append((i, first, i + 1))
    assert [tuple(d) for d in found] == expected and len(expected) > 1000


def test_duplicates_in_a_file_past_the_numpy_threshold_are_reported(run, write, monkeypatch):
    """The whole command takes the numpy search past its threshold (2M rows: lowered here, where
    a 2M-row file took 9 s; the finder's three searches agree on any size, see above)."""
    from lf_wrap.data import duplicates

    monkeypatch.setattr(duplicates, "NUMPY_ABOVE", 100)
    rows = [{"instruction": f"q{i}", "output": "a"} for i in range(100 + 5)]
    rows.append({"instruction": "q3", "output": "a"})
    path = write("big.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    result = run("data", "validate", path, "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 0 and report["duplicates"] == 1
    assert report["issues"][0]["message"] == "duplicate of row 3"
    assert report["issues"][0]["line"] == 100 + 6


def test_json_report_is_machine_readable(run, write):
    path = write("bad.json", '[\n{"instruction": "hi", "output": "hello"},\n{"instruction": "q"}\n]\n')
    result = run("data", "validate", path, "--json")
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["rows"] == 2 and report["errors"] == 1
    assert report["issues"][0] == {
        "severity": "error",
        "line": 3,
        "row": 1,
        "field": "output",
        "message": "missing (the answer)",
        "hint": 'every row needs the answer in "output"',
    }


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "file is empty"),
        (b"  \n\t\n", "file contains only whitespace"),
        (b"\xef\xbb\xbf[]", ":1:1: file starts with a UTF-8 byte-order mark (BOM)"),
        (b'[{"instruction": "a",\n "output": "b"}\n', ":3:1: invalid JSON"),
        (b'[{"instruction": "a" "output": "b"}]', ":1:22: invalid JSON: Expecting ',' delimiter"),
        (b'"just a string"', ":1: top level must be a list of rows"),
        (b"\x00\x01\x02binary", "contains NUL bytes; this looks like a binary file"),
        (b'[{"instruction": "\xff\xfe", "output": "x"}]', ":1: not valid UTF-8 (byte 0xff"),
    ],
)
def test_file_level_problems_are_one_clear_message(run, write, content, expected):
    path = write("f.json", content)
    result = run("data", "validate", path)
    assert result.exit_code == 2
    assert str(path) in result.stderr
    assert expected in result.stderr


def test_truncated_file_says_so(run, write):
    path = write("t.json", '[{"instruction": "a", "output": "b"}, {"instruction": "c", "out')
    result = run("data", "validate", path)
    assert result.exit_code == 2
    assert "(the file ends early: is it truncated?)" in result.stderr


def test_missing_file_and_directory_and_wrong_extension(run, write, tmp_path):
    assert "no such file" in run("data", "validate", tmp_path / "nope.json").stderr
    assert "is a directory, not a dataset file" in run("data", "validate", tmp_path).stderr
    csv = write("d.csv", "a,b\n")
    result = run("data", "validate", csv)
    assert result.exit_code == 2
    assert "unsupported file type '.csv'" in result.stderr


def test_sharegpt_turn_order_roles_and_ending_are_checked(run, write):
    rows = [
        {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
        {"conversations": [{"from": "gpt", "value": "a"}, {"from": "human", "value": "q"}]},
        {"conversations": [{"from": "human", "value": "q"}]},
        {"conversations": [{"from": "human", "value": "q"}, {"from": "bot", "value": "a"}]},
        {"conversations": []},
        {
            "conversations": [
                {"from": "human", "value": "q"},
                {"from": "gpt", "value": "a"},
                {"from": "system", "value": "s"},
            ]
        },
    ]
    path = write("s.json", rows)
    result = run("data", "validate", path, "--format", "sharegpt")
    err = result.stderr
    assert result.exit_code == 2
    assert (
        "[row 1].conversations[0].from: turn order broken: expected a user turn ('human' or 'observation'), "
        "found 'gpt' — turns must alternate user → assistant → user → …" in err
    )
    assert "[row 2].conversations[0]: conversation ends on 'human'" in err
    assert (
        "[row 3].conversations[1].from: unknown role 'bot' — use one of: human, observation, gpt, function_call, system"
        in err
    )
    assert "[row 4].conversations: empty conversation" in err
    assert "[row 5].conversations[2].from: a system message may only come first" in err
    assert "5 errors" in err


def test_openai_messages_roles_and_content(run, write):
    rows = [
        {
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "a"},
            ]
        },
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": None}]},
        {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "user"}, {"role": "assistant", "content": "a"}]},
    ]
    path = write("m.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    result = run("data", "validate", path)
    err = result.stderr
    assert result.exit_code == 2
    assert f"{path}:2: [row 1].messages[1].content: must be a string, got null" in err
    assert f"{path}:3: [row 2].messages[0].content: empty 'user' message" in err
    assert f'{path}:4: [row 3].messages[0]: has no "content" key' in err
    assert "(format openai)" in err


def test_preference_rows_need_chosen_and_rejected(run, write):
    rows = [
        {"instruction": "q", "chosen": "good", "rejected": "bad"},
        {"instruction": "q", "chosen": "good", "rejected": ""},
        {"instruction": "q", "chosen": "good", "rejected": None},
    ]
    path = write("p.json", rows)
    result = run("data", "validate", path, "--format", "preference")
    assert result.exit_code == 2
    assert "[row 1].rejected: the rejected answer is empty" in result.stderr
    assert "[row 2].rejected: missing (the rejected answer)" in result.stderr


def test_sharegpt_preference_shape_from_llamafactory_docs(write):
    # The shape of LLaMA-Factory's data/dpo_en_demo.json (sharegpt + ranking).
    row = {
        "conversations": [{"from": "human", "value": "q"}],
        "chosen": {"from": "gpt", "value": "good"},
        "rejected": {"from": "gpt", "value": "bad"},
    }
    report = validate_file(write("dpo.json", [row]))
    assert report.ok and report.format == "preference" and report.spec.formatting == "sharegpt"


def test_llamafactory_tool_call_shape_is_accepted(write):
    # The shape of LLaMA-Factory's data/glaive_toolcall_en_demo.json.
    row = {
        "conversations": [
            {"from": "human", "value": "weather?"},
            {"from": "function_call", "value": '{"name": "w", "arguments": {}}'},
            {"from": "observation", "value": '{"t": 20}'},
            {"from": "gpt", "value": "20 degrees"},
        ],
        "tools": '[{"name": "w"}]',
    }
    assert validate_file(write("tool.json", [row])).ok


def test_alpaca_history_must_be_pairs(write):
    rows = [
        {"instruction": "q", "output": "a", "history": [["q0", "a0"]]},
        {"instruction": "q", "output": "a", "history": [["only one"]]},
        {"instruction": "q", "output": "a", "history": "not a list"},
    ]
    report = validate_file(write("h.json", rows))
    messages = [(i.row, i.path, i.message) for i in report.issues]
    assert (1, "history[0]", "must be a [question, answer] pair of two strings") in messages
    assert (2, "history", "must be a list of [question, answer] pairs, got string") in messages


def test_auto_detect_needs_a_recognisable_first_row(run, write):
    path = write("x.json", [{"question": "q", "answer": "a"}])
    result = run("data", "validate", path)
    assert result.exit_code == 2
    assert "cannot tell the dataset format from its first row (keys: answer, question)" in result.stderr
    assert "--format alpaca|sharegpt|openai|preference" in result.stderr


@pytest.mark.parametrize("path", sorted(DATASETS.glob("*.json*")), ids=lambda p: p.name)
def test_every_bundled_dataset_is_valid(path):
    report = validate_file(path)
    assert report.ok, report.lines()
    assert report.warnings == 0, report.lines()
    assert report.rows >= 3


def test_demo_dataset_has_40_to_80_rows_in_chinese_and_english():
    rows = json.loads((DATASETS / "magic_conch.json").read_text(encoding="utf-8"))
    assert 40 <= len(rows) <= 80
    assert any(any("\u4e00" <= ch <= "\u9fff" for ch in r["output"]) for r in rows)
    assert any(r["output"].isascii() for r in rows)


def test_input_file_is_never_modified(run, write):
    path = write("bad.json", '[{"instruction": "q", "output": ""}]')
    before = path.read_bytes()
    run("data", "validate", path)
    assert path.read_bytes() == before
