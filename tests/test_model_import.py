"""`lf-wrap model import FILE.gguf DIR`: every bad input is one message, exit 2, nothing half-written.

The GGUF files here are written by the `gguf` package itself (GGUFWriter, in the training
environment): a GGUF of an architecture transformers cannot load, one with a quantisation the
gguf package cannot dequantise, and a real file cut short. The success path on a real model
(SmolLM2-135M-Instruct) is tests/test_real_model.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from lf_wrap.engines.llamafactory import LlamaFactory
from tests.helpers import lfw

WRITE_GGUF = r"""
import sys, numpy as np
from gguf import GGUFWriter, GGMLQuantizationType as T
path, arch, kind = sys.argv[1:4]
w = GGUFWriter(path, arch)
w.add_context_length(64)
w.add_tokenizer_model("gpt2")
w.add_token_list(["<s>", "</s>", "a"])
w.add_bos_token_id(0)
w.add_eos_token_id(1)
if kind == "q8_k":  # one Q8_K block: 256 weights in 292 bytes; the gguf package cannot dequantise it
    w.add_tensor("token_embd.weight", np.zeros((1, 292), dtype=np.uint8), raw_dtype=T.Q8_K)
else:
    w.add_tensor("token_embd.weight", np.zeros((3, 256), dtype=np.float32))
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
"""


def _engine() -> LlamaFactory:
    try:
        return LlamaFactory.find()
    except Exception as err:
        pytest.fail(f"the training environment is needed (make setup-train): {err}")


def write_gguf(path: Path, arch: str, kind: str = "f32") -> Path:
    done = subprocess.run([str(_engine().python), "-I", "-c", WRITE_GGUF, str(path), arch, kind],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return path


def refused(tmp_path: Path, src: Path, *extra: str) -> str:
    out = tmp_path / "out"
    done = lfw("model", "import", src, out, *extra)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists() or not any(out.iterdir()), "a refused import wrote into the destination"
    assert not list(tmp_path.glob(".out.*")), "a refused import left its temporary folder"
    return done.stderr


def test_a_file_that_is_not_gguf_is_refused_before_anything_runs(tmp_path: Path) -> None:
    src = tmp_path / "model.gguf"
    src.write_text("hello, not a model\n")
    err = refused(tmp_path, src)
    assert "is not a GGUF file (it starts with b'hell'" in err
    assert "$ " not in err, "no conversion should start for a file that is not a GGUF"


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    assert "does not exist" in refused(tmp_path, tmp_path / "nope.gguf")


@pytest.mark.slow  # transformers' GGUF loader in the training environment
def test_a_truncated_gguf_is_refused(tmp_path: Path) -> None:
    whole = write_gguf(tmp_path / "whole.gguf", "llama")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole.read_bytes()[:200])
    err = refused(tmp_path, cut)
    assert "is truncated or damaged" in err
    assert "download the file again" in err


@pytest.mark.slow  # transformers' GGUF loader in the training environment
def test_an_architecture_transformers_cannot_load_is_refused(tmp_path: Path) -> None:
    err = refused(tmp_path, write_gguf(tmp_path / "odd.gguf", "rwkv99"))
    assert "architecture 'rwkv99' is one transformers cannot load from GGUF" in err
    assert "llama" in err and "qwen2" in err  # what it can load
    assert "'general'" not in err and "tokenizer," not in err


@pytest.mark.slow  # transformers' GGUF loader in the training environment
def test_a_quantisation_the_gguf_package_cannot_read_is_refused(tmp_path: Path) -> None:
    err = refused(tmp_path, write_gguf(tmp_path / "q8k.gguf", "llama", "q8_k"))
    assert "quantisation Q8_K" in err
    assert "convert the original model to a readable type" in err


def test_a_non_empty_destination_needs_force(tmp_path: Path) -> None:
    src = write_gguf(tmp_path / "odd.gguf", "llama")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine\n")
    done = lfw("model", "import", src, out)
    assert done.returncode == 2
    assert f"{out} already exists and is not empty" in done.stderr
    assert "--force" in done.stderr
    assert (out / "keep.txt").read_text() == "mine\n"


def test_json_failure_is_one_object(tmp_path: Path) -> None:
    src = tmp_path / "x.gguf"
    src.write_bytes(b"GGUX" + b"\0" * 64)
    done = lfw("model", "import", src, tmp_path / "out", "--json")
    assert done.returncode == 2
    failure = json.loads(done.stdout)
    assert "is not a GGUF file" in failure["error"]
    assert failure["exit_code"] == 2
