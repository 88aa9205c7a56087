"""Real chat templates of 15 model families, on the tiny model's tokenizer.

Each `template_fixtures/<name>.jinja` is the family's chat template as published (copied
from the sources listed below; chat templates are short configuration text). `build`
puts one into a tokenizer folder made from the tiny model's byte-level BPE tokenizer, with
the family's special tokens added as single tokens and its BOS/EOS and generation stop
tokens, so LLaMA-Factory's template code and the model's chat template can be compared
exactly as they would be on the real model.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

FIXTURES = Path(__file__).with_name("template_fixtures")
LLAMA_CPP = "https://github.com/ggml-org/llama.cpp/blob/master/models/templates/"
LLAMA_CPP_TESTS = "https://github.com/ggml-org/llama.cpp/blob/master/tests/test-chat-template.cpp"
OPENVINO = "https://github.com/openvinotoolkit/openvino.genai tests/python_tests/tokenizer_configs.py"
QWEN = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
QWEN_STOP = ("<|im_end|>", "<|endoftext|>")
LLAMA3 = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<|eom_id|>",
)
PHI3 = ("<s>", "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
R1 = ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<think>", "</think>")


@dataclass(frozen=True)
class Family:
    name: str  # fixture file stem
    model: str  # the model whose template it is
    source: str
    special: tuple[str, ...]
    eos: str
    bos: str | None = None
    generation_eos: tuple[str, ...] = ()
    extra: tuple[str, ...] = field(default=())  # plain added tokens (not special), e.g. <think>


FAMILIES = {
    f.name: f
    for f in [
        Family("qwen2.5", "Qwen/Qwen2.5-0.5B-Instruct", "tokenizer_config.json (as in Qwen2.5-7B-Instruct)",
               QWEN, "<|im_end|>", generation_eos=QWEN_STOP),
        Family("qwen2", "Qwen/Qwen2-7B-Instruct", OPENVINO, QWEN, "<|im_end|>", generation_eos=QWEN_STOP),
        Family("qwen1.5", "Qwen/Qwen1.5-0.5B", OPENVINO, QWEN, "<|endoftext|>", generation_eos=QWEN_STOP),
        Family("qwq", "Qwen/QwQ-32B", LLAMA_CPP + "Qwen-QwQ-32B.jinja", QWEN, "<|im_end|>",
               generation_eos=QWEN_STOP, extra=("<think>", "</think>")),
        Family("qwen3", "Qwen/Qwen3-0.6B", LLAMA_CPP + "Qwen-Qwen3-0.6B.jinja", QWEN, "<|im_end|>",
               generation_eos=QWEN_STOP, extra=("<think>", "</think>")),
        Family("deepseek-r1-distill-qwen", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
               LLAMA_CPP + "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", R1[:4], R1[1], bos=R1[0],
               generation_eos=(R1[1],), extra=R1[4:]),
        Family("llama3", "meta-llama/Meta-Llama-3-8B-Instruct", OPENVINO, LLAMA3, "<|eot_id|>",
               bos="<|begin_of_text|>", generation_eos=("<|end_of_text|>", "<|eot_id|>")),
        Family("llama3.1", "meta-llama/Llama-3.1-8B-Instruct",
               "Llama-3.2's template with Llama-3.1's fixed date (its builtin_tools branches render nothing "
               "without tools)", LLAMA3, "<|eot_id|>", bos="<|begin_of_text|>",
               generation_eos=("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>")),
        Family("llama3.2", "meta-llama/Llama-3.2-3B-Instruct", LLAMA_CPP + "meta-llama-Llama-3.2-3B-Instruct.jinja",
               LLAMA3, "<|eot_id|>", bos="<|begin_of_text|>",
               generation_eos=("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>")),
        Family("gemma2", "google/gemma-2-2b-it", LLAMA_CPP + "google-gemma-2-2b-it.jinja",
               ("<bos>", "<eos>", "<pad>", "<start_of_turn>", "<end_of_turn>"), "<eos>", bos="<bos>",
               generation_eos=("<eos>", "<end_of_turn>")),
        Family("mistral-v0.3", "mistralai/Mistral-7B-Instruct-v0.3",
               LLAMA_CPP_TESTS + " (mistralai 'v3' template, as in Mistral-7B-Instruct-v0.3)",
               ("<s>", "</s>", "[INST]", "[/INST]"), "</s>", bos="<s>", generation_eos=("</s>",)),
        Family("phi3.5", "microsoft/Phi-3.5-mini-instruct", LLAMA_CPP + "microsoft-Phi-3.5-mini-instruct.jinja",
               PHI3, "<|endoftext|>", bos="<s>", generation_eos=("<|end|>", "<|assistant|>", "<|endoftext|>")),
        Family("phi3", "microsoft/Phi-3-mini-4k-instruct", LLAMA_CPP_TESTS + " (Phi-3-mini)", PHI3,
               "<|endoftext|>", bos="<s>", generation_eos=("<|endoftext|>", "<|assistant|>", "<|end|>")),
        Family("yi1.5", "01-ai/Yi-1.5-34B-Chat", OPENVINO, ("<|startoftext|>", "<|endoftext|>", "<|im_start|>",
               "<|im_end|>"), "<|im_end|>", bos="<|startoftext|>", generation_eos=("<|endoftext|>",)),
        Family("glm4", "THUDM/glm-4-9b-chat", LLAMA_CPP_TESTS + " (ChatGLM4)",
               ("[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>", "<|endoftext|>"),
               "<|endoftext|>", generation_eos=("<|endoftext|>", "<|user|>", "<|observation|>")),
    ]
}  # fmt: skip


def build(family: Family, tiny_model: Path, out: Path) -> Path:
    """A tokenizer folder: the tiny model's tokenizer, the family's tokens and chat template."""
    from tokenizers import AddedToken
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in family.special], special_tokens=True)
    if family.extra:
        tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in family.extra])
    tok.bos_token = family.bos
    tok.eos_token = family.eos
    tok.chat_template = (FIXTURES / f"{family.name}.jinja").read_text(encoding="utf-8")
    out.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(out)
    shutil.copy(tiny_model / "config.json", out / "config.json")
    ids = [tok.convert_tokens_to_ids(t) for t in family.generation_eos]
    (out / "generation_config.json").write_text(json.dumps({"eos_token_id": ids}) + "\n")
    return out
