"""A byte-level tokenizer.json behind a Llama tokenizer class is refused before training (lf_wrap/model/tokenizer.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lf_wrap.model.tokenizer import check_tokenizer_class
from lf_wrap.util.errors import LfWrapError

from .conftest import DATASETS

BYTE_LEVEL = {"type": "Sequence", "pretokenizers": [{"type": "Split"}, {"type": "ByteLevel", "use_regex": False}]}
METASPACE = {"type": "Metaspace", "replacement": "▁"}


def tokenizer(root: Path, cls: str, pre: dict) -> Path:
    root.mkdir()
    (root / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": cls}))
    (root / "tokenizer.json").write_text(json.dumps({"pre_tokenizer": pre, "model": {"type": "BPE"}}))
    return root


def test_deepseek_style_llama_class_over_byte_level_bpe_is_refused(tmp_path):
    with pytest.raises(LfWrapError) as err:
        check_tokenizer_class(tokenizer(tmp_path / "m", "LlamaTokenizerFast", BYTE_LEVEL))
    assert "is a byte-level BPE tokenizer" in str(err.value) and "PreTrainedTokenizerFast" in err.value.hint


@pytest.mark.parametrize(
    ("cls", "pre"),
    [("LlamaTokenizerFast", METASPACE), ("PreTrainedTokenizerFast", BYTE_LEVEL), ("Qwen2Tokenizer", BYTE_LEVEL)],
)
def test_sentencepiece_llamas_and_byte_level_classes_pass(tmp_path, cls, pre):
    check_tokenizer_class(tokenizer(tmp_path / "m", cls, pre))


def test_train_refuses_the_r1_look_alike_before_anything_loads(run, tiny_family, tmp_path):
    shutil.copytree(tiny_family("deepseek-r1-distill"), tmp_path / "models" / "r1")
    reg = run("data", "register", DATASETS / "magic_conch.json", "--name", "magic_conch", "--dataset-dir", "data")
    assert reg.exit_code == 0, reg.output
    result = run("train", "--dry-run", "--set", "model=models/r1", "--set", "template=deepseekr1")
    assert result.exit_code == 2
    assert "names tokenizer_class 'LlamaTokenizerFast'" in result.stderr
