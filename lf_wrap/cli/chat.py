"""`lf-wrap chat`: talk to the served model, in the terminal or in a web page
(lf_wrap/steps/chat.py, chat_page.py; the server from lf_wrap/project/target.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lf_wrap.cli.common import config_options


# -- chat --------------------------------------------------------------------------------
@click.command()
@config_options
@click.option("--base-url", help="OpenAI-compatible base URL, any server (default: the run's detached server).")
@click.option("--model", "model_name", help="Model name (default: the run's served name, else the server's first).")
@click.option("--api-key", envvar="LF_WRAP_API_KEY", help="Key the server wants (or set LF_WRAP_API_KEY).")
@click.option("--system", help="System prompt (in the chat: /system TEXT).")
@click.option(
    "--temperature",
    type=click.FloatRange(0, 2),
    help="Sampling temperature (default: the model's generation_config.json, as the server applies it).",
)
@click.option("--max-tokens", type=click.IntRange(1), default=512, show_default=True, help="Longest answer.")
@click.option("--no-thinking", is_flag=True, help="Thinking models: answer without thinking (enable_thinking=false).")
@click.option("--timeout", "timeout_s", type=float, default=120.0, show_default=True, help="Per-answer timeout (s).")
@click.option(
    "--json", "as_json", is_flag=True,
    help="Read questions from stdin, print one JSON object per question (JSON Lines): question, answer, "
    "reasoning, finish_reason, and error/hint when it failed.",
)  # fmt: skip
@click.option("--web", is_flag=True, help="Serve a chat page instead (http://HOST:PORT/).")
@click.option("--host", default="127.0.0.1", show_default=True, help="--web: address to bind; 0.0.0.0 exposes it.")
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True, help="--web: port.")
def chat(
    config_file: Path | None, sets: tuple[str, ...], base_url: str | None, model_name: str | None,
    api_key: str | None, system: str | None, temperature: float | None, max_tokens: int, no_thinking: bool,
    timeout_s: float, as_json: bool, web: bool, host: str, port: int,
) -> None:  # fmt: skip
    """Talk to the served model: in the terminal, or in a web page with --web.

    \b
    Examples:
      lf-wrap chat                                    # the run's detached server (lf-wrap serve --detach)
      echo "Who are you?" | lf-wrap chat              # piped: one answer per line of questions
      lf-wrap chat --json < questions.txt > answers.jsonl   # one JSON object per question
      lf-wrap chat --base-url http://some-host:8000/v1 --model m --system "Be brief."
      lf-wrap chat --web --port 7860                  # a chat page on http://127.0.0.1:7860/

    \b
    In the chat: /reset forgets the conversation, /system TEXT sets the system prompt,
    /exit (or Ctrl-D) quits; Ctrl-C stops an answer and keeps the session. A thinking
    model's reasoning is shown apart from its answer (piped: on stderr). Piped, each answer
    ends with a newline but may itself span lines: --json keeps one line per question.
    The API key is sent by lf-wrap (the web page's server), never by the browser.

    Exit status: 0 done, 1 the server could not be reached or a question got an error
    instead of an answer, 2 bad input (e.g. a model the server does not serve).
    """
    if web and as_json:
        raise click.UsageError("--json is for questions piped to the terminal chat, not --web")
    from lf_wrap.project.target import resolve
    from lf_wrap.steps.chat import Conversation, chat_in_terminal

    target = resolve(config_file, sets, base_url, model_name, api_key)
    conv = Conversation(target, system=system, temperature=temperature, max_tokens=max_tokens,
                        thinking=False if no_thinking else None, timeout_s=timeout_s)  # fmt: skip
    if web:
        from lf_wrap.steps.chat_page import serve_page

        serve_page(conv, host, port)
        return
    sys.exit(chat_in_terminal(conv, as_json=as_json))
