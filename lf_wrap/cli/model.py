"""`lf-wrap model`: a base model, downloaded (pull, lf_wrap/model/hub.py) or built (tiny, lf_wrap/model/tiny.py)."""

from __future__ import annotations

from pathlib import Path

import click

from lf_wrap.cli.common import Group, echo_json, json_option


# -- model -------------------------------------------------------------------------------
@click.group(cls=Group)
def model() -> None:
    """Get a base model: download one (pull), convert a GGUF file (import) or build the tiny demo model (tiny)."""


@model.command("pull")
@click.argument("model_id")
@click.option(
    "--hub",
    type=click.Choice(["hf", "modelscope"]),
    default="hf",
    show_default=True,
    help="Hugging Face (honours HF_ENDPOINT, HF_HOME, HF_TOKEN) or ModelScope.",
)
@click.option("--revision", help="Branch, tag or commit (default: the hub's main branch).")
@click.option("--local-dir", type=click.Path(path_type=Path), help="Download into this folder instead of the cache.")
@json_option
def model_pull(model_id: str, hub: str, revision: str | None, local_dir: Path | None, as_json: bool) -> None:
    """Download MODEL_ID (or check a local folder) and print one plain folder path.

    \b
    Examples:
      lf-wrap model pull Qwen/Qwen2.5-0.5B-Instruct
      HF_ENDPOINT=https://hf-mirror.com lf-wrap model pull Qwen/Qwen2.5-0.5B-Instruct
      lf-wrap model pull qwen/Qwen2.5-0.5B-Instruct --hub modelscope
      lf-wrap train --set model=$(lf-wrap model pull Qwen/Qwen2.5-0.5B-Instruct)

    A model already downloaded is found without the network. The printed folder holds
    config.json, the weights and the tokenizer (no snapshots/<hash> hunting).

    Exit status: 0 the folder is printed, 1 the hub could not be reached or the download failed, 2 bad input.
    """
    from lf_wrap.model.hub import pull

    path = pull(model_id, hub, revision, local_dir)  # type: ignore[arg-type]
    if as_json:
        echo_json({"model": model_id, "hub": hub, "path": str(path)})
    else:
        click.echo(str(path))


@model.command("import")
@click.argument("gguf_file", type=click.Path(path_type=Path))
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace what OUT_DIR holds.")
@click.option(
    "--dtype",
    type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
    default="auto",
    show_default=True,
    help="Weights' dtype in the folder (auto: f16/bf16 files keep theirs; quantised ones become float32).",
)
@json_option
def model_import(gguf_file: Path, out_dir: Path, force: bool, dtype: str, as_json: bool) -> None:
    """Convert GGUF_FILE (llama.cpp / Ollama) into a fine-tunable Hugging Face folder OUT_DIR.

    \b
    Examples:
      lf-wrap model import SmolLM2-135M-Instruct.Q4_1.gguf models/smollm2
      lf-wrap model import ~/.ollama/models/blobs/sha256-… models/mine

    Converted in the training environment by transformers' own GGUF loader; the special
    tokens, context length and chat template come from the GGUF's metadata. The source
    file's path and sha256 are recorded in OUT_DIR/lf-wrap-import.json. Nothing is left
    half-written: the folder appears only once it passes the model and EOS checks.

    Exit status: 0 imported, 1 the conversion failed, 2 bad input (not a GGUF, truncated,
    an architecture or quantisation transformers cannot load, OUT_DIR not empty).
    """
    from lf_wrap.model.gguf_import import describe, import_gguf

    record = import_gguf(gguf_file, out_dir, force=force, dtype=dtype)
    if as_json:
        echo_json(record)
    else:
        click.echo(describe(record))


@model.command("tiny")
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same weights and tokenizer.")
@click.option(
    "--datasets-dir",
    type=click.Path(path_type=Path),
    help="Text to train the tokenizer on (default: the bundled datasets/).",
)
@click.option("--force", is_flag=True, help="Build even if OUT_DIR already holds a model.")
@click.option(
    "--family",
    type=click.Choice(["qwen2.5", "qwen3", "deepseek-r1-distill", "llama3"]),
    default="qwen2.5",
    show_default=True,
    help="Look like this family: its architecture, special tokens, EOS/BOS/pad layout and chat template.",
)
@click.option(
    "--size",
    "size_name",
    type=click.Choice(["demo", "bench"]),
    default="demo",
    show_default=True,
    help="demo: 0.46 M parameters (~2 MB), trains in seconds; "
    "bench: ~24 M (hidden 512, 8 layers), for serving benchmarks where batching matters.",
)
@json_option
def model_tiny(
    out_dir: Path, seed: int, datasets_dir: Path | None, force: bool, family: str, size_name: str, as_json: bool
) -> None:
    """Build a tiny chat model (random weights) for demos, tests and benchmarks.

    \b
    Families (LLaMA-Factory template to train it with):
      qwen2.5              like Qwen2.5-Instruct (qwen); the demo model
      qwen3                like Qwen3, thinking on/off (qwen3, or qwen3 with enable_thinking: false)
      deepseek-r1-distill  like DeepSeek-R1-Distill-Qwen (deepseekr1)
      llama3               like Llama-3.2-Instruct (llama3)

    Exit status: 0 built (or already there), 2 bad input or a missing package (torch, transformers).
    """
    from lf_wrap.model.tiny import build_once, describe

    facts = build_once(out_dir, datasets_dir, seed=seed, size_name=size_name, family_name=family, force=force)
    if as_json:
        echo_json({"path": str(out_dir), "built": False} if facts is None else {**facts, "built": True})
    elif facts is None:
        click.echo(f"{out_dir}: a model is already there (pass --force to rebuild)")
    else:
        click.echo(describe(facts))
