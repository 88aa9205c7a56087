"""The tutorials' hand-made server (shared/seeds): FastAPI + transformers, `model.generate`
per request inside an async endpoint. Run with the training environment's Python:

    .venvs/train/bin/python bench/seeds_server.py MODEL_DIR PORT
"""

import sys

import torch
import uvicorn
from fastapi import FastAPI
from transformers import AutoModelForCausalLM, AutoTokenizer

model_path, port = sys.argv[1], int(sys.argv[2])
app = FastAPI()
tokenizer = AutoTokenizer.from_pretrained(model_path)
model = AutoModelForCausalLM.from_pretrained(model_path)
device = "cuda" if torch.cuda.is_available() else "cpu"
model.to(device)


@app.get("/health")
async def health() -> dict:
    return {"ok": True}


@app.get("/generate")
async def generate_text(prompt: str, max_new_tokens: int = 64) -> dict:
    messages = [{"role": "user", "content": prompt}]
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    ).to(device)
    outputs = model.generate(**inputs, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, do_sample=False)
    new = outputs[0][inputs["input_ids"].shape[1] :]
    return {"generated_text": tokenizer.decode(new, skip_special_tokens=True), "tokens": int(new.shape[0])}


uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
