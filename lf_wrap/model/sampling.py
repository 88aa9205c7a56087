"""A model's own sampling defaults (generation_config.json), as vLLM applies them, for the engines
that do not read that file: llama-server's flags and an Ollama Modelfile's PARAMETERs."""

from __future__ import annotations

from pathlib import Path

from lf_wrap.util.files import read_json_object

KEYS = ("temperature", "top_p", "top_k", "repetition_penalty")


def sampling_defaults(folder: Path | None) -> dict[str, float]:
    """{temperature, top_p, top_k, repetition_penalty} the folder's generation_config.json sets;
    `do_sample: false` without a temperature is greedy (temperature 0), as vLLM reads it."""
    path = folder / "generation_config.json" if folder is not None else None
    if path is None or not path.is_file():
        return {}
    config = read_json_object(path)
    if config.get("do_sample") is False and "temperature" not in config:
        return {"temperature": 0.0}
    return {k: float(v) for k in KEYS if isinstance(v := config.get(k), int | float) and not isinstance(v, bool)}
