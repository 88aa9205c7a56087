"""`lf-wrap data stats`: lengths in the model's own tokens, with its chat template."""

from __future__ import annotations

import json

from .conftest import DATASETS


def test_stats_counts_tokens_with_the_chat_template_and_truncation(run, tiny_model):
    result = run(
        "data", "stats", DATASETS / "magic_conch.json", "--tokenizer", tiny_model, "--cutoff-len", "60", "--json"
    )
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["rows"] == 56 and stats["unit"] == "tokens" and stats["duplicates"] == 0
    length = stats["length"]
    assert 0 < length["min"] <= length["p50"] <= length["p95"] <= length["max"]
    # The default system prompt alone is ~15 tokens: every row is longer than that.
    assert length["min"] > 20
    assert 0 < stats["truncated"] < 56


def test_stats_without_tokenizer_counts_characters(run, write):
    path = write("a.json", [{"instruction": "ab", "output": "cde"}, {"instruction": "ab", "output": "cde"}])
    result = run("data", "stats", path)
    assert result.exit_code == 0
    assert "duplicates  1" in result.stdout
    assert "characters  min 5  p50 5  p95 5  max 5" in result.stdout


def test_stats_with_a_folder_that_has_no_tokenizer(run, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run("data", "stats", DATASETS / "magic_conch.json", "--tokenizer", tmp_path / "empty")
    assert result.exit_code == 2
    assert "no tokenizer files" in result.stderr
