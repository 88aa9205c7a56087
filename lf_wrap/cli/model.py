"""`lf-wrap model`: a base model, downloaded (pull, lf_wrap/model/hub.py), converted from a GGUF file
(import, lf_wrap/model/gguf_import.py) or built (tiny, lf_wrap/model/tiny.py)."""

from __future__ import annotations

from pathlib import Path

import click

from lf_wrap.cli.groups import Group
from lf_wrap.cli.options import json_option, page
from lf_wrap.cli.output import emit

# fmt: off
DIR = click.Path(path_type=Path)


@click.group(cls=Group, help=page("model"))
def model() -> None: ...


@model.command("pull", help=page("model-pull"))
@click.argument("model_id")
@click.option("--hub", type=click.Choice(["hf", "modelscope"]), default="hf", show_default=True,
              help="Hugging Face (honours HF_ENDPOINT, HF_HOME, HF_TOKEN) or ModelScope.")
@click.option("--revision", help="Branch, tag or commit (default: the hub's main branch).")
@click.option("--local-dir", type=DIR, help="Download into this folder instead of the cache.")
@json_option
def model_pull(model_id: str, hub: str, revision: str | None, local_dir: Path | None, as_json: bool) -> None:
    from lf_wrap.model.hub import pull

    path = pull(model_id, hub, revision, local_dir)  # type: ignore[arg-type]
    emit(as_json, {"model": model_id, "hub": hub, "path": str(path)}, [str(path)])


@model.command("import", help=page("model-import"))
@click.argument("gguf_file", type=DIR)
@click.argument("out_dir", type=DIR)
@click.option("--force", is_flag=True, help="Replace what OUT_DIR holds.")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]), default="auto",
              show_default=True, help="Weights' dtype in the folder (auto: f16/bf16 files keep theirs; quantised "
              "ones become float32).")
@json_option
def model_import(gguf_file: Path, out_dir: Path, force: bool, dtype: str, as_json: bool) -> None:
    from lf_wrap.model.gguf_import import describe, import_gguf

    record = import_gguf(gguf_file, out_dir, force=force, dtype=dtype)
    emit(as_json, record, [describe(record)])


@model.command("tiny", help=page("model-tiny"))
@click.argument("out_dir", type=DIR)
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same weights and tokenizer.")
@click.option("--datasets-dir", type=DIR, help="Text to train the tokenizer on (default: the bundled datasets/).")
@click.option("--force", is_flag=True, help="Build even if OUT_DIR already holds a model.")
@click.option("--family", type=click.Choice(["qwen2.5", "qwen3", "deepseek-r1-distill", "llama3"]), default="qwen2.5",
              show_default=True, help="Look like this family: its architecture, special tokens, EOS/BOS/pad layout "
              "and chat template.")
@click.option("--size", "size_name", type=click.Choice(["demo", "bench"]), default="demo", show_default=True,
              help="demo: 0.46 M parameters (~2 MB), trains in seconds; bench: ~24 M (hidden 512, 8 layers), for "
              "serving benchmarks where batching matters.")
@json_option
def model_tiny(out_dir: Path, seed: int, datasets_dir: Path | None, force: bool, family: str, size_name: str,
               as_json: bool) -> None:
    from lf_wrap.model.tiny import build_once, describe

    facts = build_once(out_dir, datasets_dir, seed=seed, size_name=size_name, family_name=family, force=force)
    if facts is None:
        emit(as_json, {"path": str(out_dir), "built": False},
             [f"{out_dir}: a model is already there (pass --force to rebuild)"])
    else:
        emit(as_json, {**facts, "built": True}, [describe(facts)])
# fmt: on
