"""Runs llama.cpp's own converter (convert_hf_to_gguf.py) in the training environment, where torch
and transformers are; never imports lf-wrap.

    python gguf_convert.py LLAMACPP_SRC [--pre NAME] -- CONVERTER_ARGS...

LLAMACPP_SRC is the llama.cpp source the binaries were built from: its converter and its gguf-py
(not PyPI's gguf, which may be older) are used. The converter names a BPE tokenizer's pre-tokenizer
by hashing how it splits a test text, so a tokenizer it has not seen (a model's own, retrained
vocabulary) is refused even when it splits text exactly like one llama.cpp implements. `--pre NAME`
is used only then: lf-wrap passes it when the tokenizer.json's pre-tokenizer is, rule for rule, the
one llama.cpp implements under NAME (lf_wrap/steps/export_gguf.py), and `lf-wrap check` then proves
the GGUF's tokens equal LLaMA-Factory's on the run's rows.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def main(argv: list[str]) -> int:
    if "--" not in argv or not argv:
        print(__doc__, file=sys.stderr)
        return 2
    ours, converter_args = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    src = Path(ours[0])
    pre = ours[ours.index("--pre") + 1] if "--pre" in ours else None
    sys.path[:0] = [str(src), str(src / "gguf-py")]
    import convert_hf_to_gguf  # llama.cpp's converter, from `src`

    if pre is not None:
        from conversion.base import TextModel

        original = TextModel.get_vocab_base_pre

        def get_vocab_base_pre(self: Any, tokenizer: Any) -> str:
            try:
                return original(self, tokenizer)
            except NotImplementedError:
                print(f"lf-wrap: tokenizer.ggml.pre = {pre!r} (the tokenizer.json's pre-tokenizer rules)", flush=True)
                return pre

        TextModel.get_vocab_base_pre = get_vocab_base_pre
    sys.argv = ["convert_hf_to_gguf.py", *converter_args]
    convert_hf_to_gguf.main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
