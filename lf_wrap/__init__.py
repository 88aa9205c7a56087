"""lf-wrap: dataset file + base model -> fine-tuned model behind an OpenAI-compatible API."""

__version__ = "0.1.0"
