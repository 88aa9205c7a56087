"""`lf-wrap chat`: talk to the served model, in the terminal (this module) or in a web page
(lf_wrap/steps/chat_page.py), through the same OpenAI-compatible API every other client uses.

The target is the run's detached server (runs/<name>/serve.json: base URL, served model
name, model folder) or any server (`--base-url`, `--model`, `--api-key`). Answers stream in;
a thinking model's reasoning (vLLM's reasoning parser) is shown apart from the answer. Every
SDK error becomes one message (`Checker.explain`, shared with `lf-wrap check`); an answer the
server cut off, or that Ctrl-C stopped, is said so and left out of the history.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import click

from lf_wrap.steps.check import Checker, reasoning
from lf_wrap.util.errors import ExternalError, LfWrapError

DEFAULT_MAX_TOKENS = 512
COMMANDS = "/reset (forget the conversation), /system TEXT (new system prompt; /system alone clears it), /exit"


@dataclass
class Target:
    """Where the chat goes and how the model there was trained to be talked to."""

    base_url: str
    model: str | None
    api_key: str | None
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)  # the run's (a no-think training)
    thinking_mode: str | None = None  # "thinking", "no-think" or None (lf_wrap/model/thinking.py)
    template: str | None = None  # the training template, when the run's manifest says
    temperature: float | None = None  # the default, when the model asks for one
    temperature_source: str = "the server's default (the model's generation_config.json)"
    model_dir: Path | None = None


@dataclass
class Piece:
    kind: str  # "reasoning" or "answer"
    text: str


def default_temperature(model_dir: Path | None) -> tuple[float | None, str | None]:
    """The temperature the model's own generation_config.json asks for where vLLM does not apply
    it: vLLM reads `temperature` but ignores `do_sample: false` (greedy), so that one becomes 0."""
    if model_dir is None:
        return None, None
    path = model_dir / "generation_config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return None, None
    if config.get("do_sample") is False and "temperature" not in config:
        return 0.0, f"{path.name}: do_sample false (greedy)"
    return None, None


def resolve(
    config_file: Path | None, sets: tuple[str, ...], base_url: str | None, model: str | None, api_key: str | None
) -> Target:
    """The server to talk to: --base-url (any server), else the run's detached server (serve.json).

    Only the run folder is read (runs/<name>/serve.json and manifest.json, found leniently as
    `serve status` finds it): a typo in the training settings does not stop a chat."""
    from lf_wrap.project.config import PROJECT_FILE
    from lf_wrap.project.runs import RunFolder, locate_run_dir
    from lf_wrap.steps.serve import read_pidfile

    if base_url is not None and config_file is None and not sets and not Path(PROJECT_FILE).exists():
        return Target(base_url, model, api_key)
    run = RunFolder(locate_run_dir(config_file, sets))
    info = read_pidfile(run.root / "serve.json")
    model_dir: Path | None = None
    if base_url is None:
        if info is None:
            raise LfWrapError(
                f"no --base-url and no detached server for run {run.name!r} ({run.root / 'serve.json'})",
                hint="start one with `lf-wrap serve --detach`, or pass --base-url URL (any OpenAI-compatible server)",
            )
        base_url = info["base_url"]
        model = model or info.get("served_model_name")
        model_dir = Path(info["model"]) if info.get("model") else None
    # How the run was trained to think, as `check` reads it (lf_wrap/model/thinking.py).
    thinking = run.manifest().get("train", {}).get("thinking") or {}
    target = Target(base_url, model, api_key, model_dir=model_dir)
    target.chat_template_kwargs = dict(thinking.get("chat_template_kwargs") or {})
    target.thinking_mode = thinking.get("mode")
    target.template = thinking.get("template")
    temperature, source = default_temperature(model_dir)
    if source:
        target.temperature, target.temperature_source = temperature, source
    return target


class Conversation:
    """The history and settings of one chat; `ask` streams one answer and, when it is complete,
    keeps the question and the answer."""

    def __init__(
        self,
        target: Target,
        *,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        thinking: bool | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        self.target = target
        self.checker = Checker(
            target.base_url, target.api_key, target.model, timeout_s, False, max_tokens,
            chat_template_kwargs=target.chat_template_kwargs,
        )  # fmt: skip
        self.system = system
        self.temperature = temperature if temperature is not None else target.temperature
        self.max_tokens = max_tokens
        self.thinking = thinking
        self.history: list[dict[str, str]] = []

    @property
    def base_url(self) -> str:
        return self.checker.base_url

    @property
    def model(self) -> str | None:
        return self.checker.model

    def connect(self) -> list[str]:
        """Ask the server which models it serves; fail with one message if it is down or lacks ours."""
        result = self.checker.models()  # raises ExternalError (connection, 401, …) with a hint
        ids: list[str] = result.data.get("ids", [])
        if not result.ok:
            if not ids:
                raise ExternalError(f"{self.base_url} serves no models", hint="see the server's log")
            raise LfWrapError(
                f"{self.base_url} does not serve a model named {self.model!r}; it serves {ids}",
                hint=f"pass --model {ids[0]}",
                location="--model",
            )
        return ids

    def extra_body(self, thinking: bool | None = None) -> dict[str, Any] | None:
        """chat_template_kwargs: the run's own, and enable_thinking when the thinking switch says otherwise."""
        kwargs = dict(self.target.chat_template_kwargs)
        wanted = self.thinking if thinking is None else thinking
        trained_to_think = kwargs.get("enable_thinking", True) is not False
        if wanted is not None and wanted != trained_to_think:
            kwargs["enable_thinking"] = wanted
        return {"chat_template_kwargs": kwargs} if kwargs else None

    def messages(self, question: str, history: list[dict[str, str]] | None = None) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, *(self.history if history is None else history), {"role": "user", "content": question}]

    def stream(
        self,
        messages: list[dict[str, str]],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        thinking: bool | None = None,
    ) -> Generator[Piece, None, None]:
        """Stream one answer as Pieces. Raises ExternalError (with a hint) when the request fails
        or the stream ends without the server saying the answer is complete."""
        import httpx
        import openai

        if self.model is None:  # --base-url without --model, and the server was down at the start
            self.connect()
        temperature = self.temperature if temperature is None else temperature
        options: dict[str, Any] = {} if temperature is None else {"temperature": temperature}
        extra = self.extra_body(thinking)
        try:
            response: Any = self.checker.client.chat.completions.create(  # a Stream: stream=True
                model=self.model or "",
                messages=messages,  # type: ignore[arg-type]
                max_tokens=max_tokens or self.max_tokens,
                stream=True,
                extra_body=extra,
                **options,
            )
        except openai.OpenAIError as err:
            raise self.checker.explain(err) from None
        finish: str | None = None
        try:
            for chunk in response:
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                thought = reasoning(choice.delta)
                if thought:
                    yield Piece("reasoning", thought)
                if choice.delta.content:
                    yield Piece("answer", choice.delta.content)
                finish = choice.finish_reason or finish
        except openai.OpenAIError as err:
            raise self.checker.explain(err) from None
        except httpx.HTTPError as err:  # the connection broke while the answer streamed
            raise ExternalError(
                f"{self.base_url}: the answer stream broke off ({type(err).__name__}: {err})",
                hint="the server stopped or dropped the connection: see its log (runs/<name>/serve.log)",
            ) from None
        finally:
            response.close()
        if finish is None:
            raise ExternalError(
                f"{self.base_url}: the answer stream ended before the answer was complete (no finish_reason)",
                hint="the server stopped or dropped the connection: see its log (runs/<name>/serve.log)",
            )
        if finish == "length":
            yield Piece("note", f"[cut at --max-tokens {max_tokens or self.max_tokens}]")

    def ask(self, question: str) -> Generator[Piece, None, None]:
        """Stream the answer to `question`; a complete answer joins the history with its question."""
        answer: list[str] = []
        for piece in self.stream(self.messages(question)):
            if piece.kind == "answer":
                answer.append(piece.text)
            yield piece
        self.history += [{"role": "user", "content": question}, {"role": "assistant", "content": "".join(answer)}]

    def reset(self) -> None:
        self.history.clear()


# -- the terminal ----------------------------------------------------------------------------
def describe(conv: Conversation) -> str:
    t = conv.target
    temperature = (
        f"{conv.temperature:g}" + ("" if conv.temperature != t.temperature else f" ({t.temperature_source})")
        if conv.temperature is not None
        else t.temperature_source
    )
    thinking = {"thinking": "on (reasoning shown apart)", "no-think": "off (trained without)"}.get(
        t.thinking_mode or "", f"n/a (template {t.template})" if t.template else "the server's default"
    )
    if conv.thinking is False:
        thinking = "off (--no-thinking)"
    return (
        f"chatting with {conv.model!r} at {conv.base_url}\n"
        f"  temperature {temperature}; max tokens {conv.max_tokens}; thinking {thinking}"
        + (f"; system prompt {conv.system!r}" if conv.system else "")
    )


class Terminal:
    """Reads questions, prints answers. Interactive (a TTY): a prompt, line editing, a header,
    reasoning dimmed. Piped: one question per line, one answer per question on stdout, nothing
    else there (reasoning and messages go to stderr)."""

    def __init__(self, conv: Conversation, stdin: TextIO, interactive: bool) -> None:
        self.conv = conv
        self.stdin = stdin
        self.interactive = interactive
        self.failures = 0

    def say(self, text: str) -> None:
        click.echo(text, err=True)

    def read(self) -> str | None:
        if self.interactive:
            try:
                return input(click.style("you> ", bold=True))
            except EOFError:
                click.echo()
                return None
        line = self.stdin.readline()
        return None if line == "" else line.rstrip("\r\n")

    def run(self) -> int:
        if self.interactive:
            with contextlib.suppress(ImportError):  # line editing and history for input(); not on Windows
                import readline  # noqa: F401
            self.say(describe(self.conv))
            self.say(f"  commands: {COMMANDS}; Ctrl-C stops an answer, Ctrl-D quits")
        while True:
            try:
                line = self.read()
            except KeyboardInterrupt:  # at the prompt: the session ends
                click.echo(err=True)
                break
            if line is None:
                break
            line = line.strip()
            if not line:
                continue
            if line.startswith("/"):
                if self.command(line):
                    break
                continue
            self.answer(line)
        return 1 if self.failures else 0

    def command(self, line: str) -> bool:
        """Handle /reset, /system, /exit; True ends the session."""
        name, _, arg = line.partition(" ")
        if name in ("/exit", "/quit", "/bye"):
            return True
        if name == "/reset":
            self.conv.reset()
            self.say("(conversation cleared)")
        elif name == "/system":
            self.conv.system = arg.strip() or None
            self.conv.reset()
            self.say(f"(system prompt {'set' if self.conv.system else 'cleared'}; conversation cleared)")
        else:
            self.say(f"unknown command {name!r}: {COMMANDS}")
        return False

    def answer(self, question: str) -> None:
        out = sys.stdout
        pieces = self.conv.ask(question)
        started = {"reasoning": False, "answer": False}
        notes: list[str] = []
        try:
            for piece in pieces:
                if piece.kind == "note":
                    notes.append(piece.text)
                    continue
                if piece.kind == "reasoning":
                    self.show_reasoning(piece.text, first=not started["reasoning"])
                elif piece.kind == "answer":
                    if self.interactive and started["reasoning"] and not started["answer"]:
                        out.write("\n")
                    out.write(piece.text)
                    out.flush()
                started[piece.kind] = True
        except KeyboardInterrupt:
            pieces.close()
            notes.append("[answer stopped (Ctrl-C); it is not kept in the conversation]")
        except LfWrapError as err:
            pieces.close()
            self.failures += 1
            notes.append(f"Error: {err}")
        if started["reasoning"] and not self.interactive:
            sys.stderr.write("\n")
        out.write("\n")  # piped: exactly one line per question (empty when it failed), whatever happened
        out.flush()
        for note in notes:
            self.say(note)

    def show_reasoning(self, text: str, first: bool) -> None:
        """Interactive: dimmed before the answer. Piped: on stderr, so stdout holds only answers."""
        if self.interactive:
            sys.stdout.write(click.style(("thinking: " if first else "") + text, dim=True))
            sys.stdout.flush()
        else:
            sys.stderr.write(("reasoning: " if first else "") + text)
            sys.stderr.flush()


def chat_in_terminal(conv: Conversation, stdin: TextIO | None = None, interactive: bool | None = None) -> int:
    """The terminal chat; returns the exit status (1 when a question got an error instead of an answer)."""
    stdin = stdin or sys.stdin
    if interactive is None:
        interactive = stdin.isatty() and sys.stdout.isatty()
    conv.connect()
    return Terminal(conv, stdin, interactive).run()
