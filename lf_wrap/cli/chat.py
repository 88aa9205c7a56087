"""`lf-wrap chat`: talk to the served model, in the terminal or in a web page
(lf_wrap/steps/chat.py, chat_page.py; the server from lf_wrap/project/target.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from lf_wrap.cli.options import answer_options, config_options, page, server_options


# fmt: off
@click.command(help=page("chat"))
@config_options
@server_options("Model name (default: the run's served name, else the server's first).",
                "Key the server wants (or set LF_WRAP_API_KEY).")
@click.option("--system", help="System prompt (in the chat: /system TEXT).")
@click.option("--temperature", type=click.FloatRange(0, 2),
              help="Sampling temperature (default: the model's generation_config.json, as the server applies it).")
@answer_options(max_tokens=512)
@click.option("--json", "as_json", is_flag=True,
              help="Read questions from stdin, print one JSON object per question (JSON Lines): question, answer, "
              "reasoning, finish_reason, and error/hint when it failed.")
@click.option("--web", is_flag=True, help="Serve a chat page instead (http://HOST:PORT/).")
@click.option("--host", default="127.0.0.1", show_default=True, help="--web: address to bind; 0.0.0.0 exposes it.")
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True, help="--web: port.")
def chat(config_file: Path | None, sets: tuple[str, ...], base_url: str | None, model_name: str | None,
         api_key: str | None, as_json: bool, web: bool, host: str, port: int, no_thinking: bool, **o: Any) -> None:
    if web and as_json:
        raise click.UsageError("--json is for questions piped to the terminal chat, not --web")
    from lf_wrap.project.target import resolve
    from lf_wrap.steps.chat import Conversation, chat_in_terminal

    target = resolve(config_file, sets, base_url, model_name, api_key)
    conv = Conversation(target, thinking=False if no_thinking else None, **o)
    if web:
        from lf_wrap.steps.chat_page import serve_page  # the page's server: only for --web

        return serve_page(conv, host, port)
    sys.exit(chat_in_terminal(conv, as_json=as_json))
# fmt: on
