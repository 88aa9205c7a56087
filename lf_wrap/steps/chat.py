"""`lf-wrap chat`: talk to the served model, in the terminal (this module) or in a web page
(lf_wrap/steps/chat_page.py), through the same OpenAI-compatible API every other client uses.

The target (project/target.py) is the run's detached server (runs/<name>/serve.json: base URL,
served model name, model folder) or any server (`--base-url`, `--model`, `--api-key`). Answers
stream in through the one client (engines/openai_api.py: every SDK error becomes one message);
a thinking model's reasoning (vLLM's reasoning parser) is shown apart from the answer. An
answer the server cut off, or that Ctrl-C stopped, is said so and left out of the history.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any, TextIO

from lf_wrap.engines.openai_api import Client, Piece
from lf_wrap.model.template_agreement import scope_warning
from lf_wrap.project.target import Target
from lf_wrap.util import console
from lf_wrap.util.errors import ExternalError, LfWrapError
from lf_wrap.util.files import read_json_object

DEFAULT_MAX_TOKENS = 512
COMMANDS = "/reset (forget the conversation), /system TEXT (new system prompt; /system alone clears it), /exit"
SERVER_DEFAULT = "the server's default (the model's generation_config.json)"


def default_temperature(model_dir: Path | None) -> tuple[float | None, str | None]:
    """The temperature the model's own generation_config.json asks for where vLLM does not apply
    it: vLLM reads `temperature` but ignores `do_sample: false` (greedy), so that one becomes 0."""
    if model_dir is None:
        return None, None
    path = model_dir / "generation_config.json"
    try:
        config = read_json_object(path) if path.exists() else {}
    except LfWrapError:
        return None, None  # the server reads the same file and says more; the chat does not need it
    if config.get("do_sample") is False and "temperature" not in config:
        return 0.0, f"{path.name}: do_sample false (greedy)"
    return None, None


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
        self.client = Client(target.base_url, target.api_key, target.model, timeout_s, max_tokens,
                             target.chat_template_kwargs())  # fmt: skip
        default, source = default_temperature(target.model_dir)
        self.default_temperature, self.temperature_source = (default, source) if source else (None, SERVER_DEFAULT)
        self.system = system
        self.temperature = temperature if temperature is not None else self.default_temperature
        self.max_tokens = max_tokens
        self.thinking = thinking
        self.history: list[dict[str, str]] = []
        # where the run's template check agreed only for its data (a system prompt, a second turn)
        self.scope = target.run.template_scope() if target.run else None
        self.cautioned: set[str] = set()  # the terminal says each caution once a session

    @property
    def base_url(self) -> str:
        return self.client.base_url

    @property
    def model(self) -> str | None:
        return self.client.model

    @property
    def thinking_mode(self) -> str | None:
        """ "thinking", "no-think" or None, as the run was trained (model/thinking.py)."""
        return self.target.thinking.get("mode")

    @property
    def template(self) -> str | None:
        """The run's training template, when its manifest says."""
        return self.target.thinking.get("template")

    def connect(self) -> list[str]:
        """Ask the server which models it serves; fail with one message if it is down or lacks ours."""
        ids = self.client.list_models()  # raises ExternalError (connection, 401, …) with a hint
        if not ids:
            raise ExternalError(f"{self.base_url} serves no models", hint="see the server's log")
        if self.model not in ids:
            raise LfWrapError(
                f"{self.base_url} does not serve a model named {self.model!r}; it serves {ids}",
                hint=f"pass --model {ids[0]}",
                location="--model",
            )
        return ids

    def extra_body(self, thinking: bool | None = None) -> dict[str, Any] | None:
        """chat_template_kwargs: the run's own, and enable_thinking when the thinking switch says otherwise."""
        kwargs = self.target.chat_template_kwargs(self.thinking if thinking is None else thinking)
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
        said: set[str] | None = None,
    ) -> Generator[Piece, None, None]:
        """Stream one answer as Pieces (engines/openai_api.py's Client.stream_answer, with this chat's settings).
        A request that uses what the run's template check found served differently than trained (a system
        prompt, earlier turns, where the data had none) gets a "note" first; with `said`, once per session."""
        if self.model is None:  # --base-url without --model, and the server was down at the start
            self.connect()
        caution = scope_warning(self.scope, messages)
        if caution and (said is None or caution not in said):
            if said is not None:
                said.add(caution)
            yield Piece("note", caution)
        yield from self.client.stream_answer(
            messages,
            max_tokens=max_tokens or self.max_tokens,
            temperature=self.temperature if temperature is None else temperature,
            extra_body=self.extra_body(thinking),
        )

    def ask(self, question: str) -> Generator[Piece, None, None]:
        """Stream the answer to `question`; a complete answer joins the history with its question."""
        answer: list[str] = []
        for piece in self.stream(self.messages(question), said=self.cautioned):
            if piece.kind == "answer":
                answer.append(piece.text)
            yield piece
        self.history += [{"role": "user", "content": question}, {"role": "assistant", "content": "".join(answer)}]

    def reset(self) -> None:
        self.history.clear()


# -- the terminal ----------------------------------------------------------------------------
def describe(conv: Conversation) -> str:
    source = conv.temperature_source
    temperature = (
        f"{conv.temperature:g}" + ("" if conv.temperature != conv.default_temperature else f" ({source})")
        if conv.temperature is not None
        else source
    )
    thinking = {"thinking": "on (reasoning shown apart)", "no-think": "off (trained without)"}.get(
        conv.thinking_mode or "", f"n/a (template {conv.template})" if conv.template else "the server's default"
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
    reasoning dimmed. Piped: one question per line, each answer on stdout ending with a newline
    (an answer may itself span lines), nothing else there (reasoning and messages go to stderr).
    JSON (`--json`, always piped): one JSON object per question on its own line (JSON Lines)."""

    def __init__(self, conv: Conversation, stdin: TextIO, interactive: bool, as_json: bool = False) -> None:
        self.conv = conv
        self.stdin = stdin
        self.interactive = interactive and not as_json
        self.as_json = as_json
        self.failures = 0

    def say(self, text: str) -> None:
        console.note(text)

    def read(self) -> str | None:
        if self.interactive:
            try:
                return input(console.style("you> ", bold=True))
            except EOFError:
                console.out()
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
                console.note()
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
        record: dict[str, Any] = {"question": question, "answer": "", "reasoning": None, "finish_reason": None}
        notes: list[str] = []
        try:
            for piece in pieces:
                if piece.kind == "note":
                    notes.append(piece.text)
                    continue
                if piece.kind == "finish":
                    record["finish_reason"] = piece.text
                    continue
                if self.as_json:
                    key = "answer" if piece.kind == "answer" else "reasoning"
                    record[key] = (record[key] or "") + piece.text
                elif piece.kind == "reasoning":
                    self.show_reasoning(piece.text, first=not started["reasoning"])
                elif piece.kind == "answer":
                    if self.interactive and started["reasoning"] and not started["answer"]:
                        out.write("\n")
                    out.write(piece.text)
                    out.flush()
                started[piece.kind] = True
        except KeyboardInterrupt:
            pieces.close()
            record["finish_reason"] = "interrupted"
            notes.append("[answer stopped (Ctrl-C); it is not kept in the conversation]")
        except LfWrapError as err:
            pieces.close()
            self.failures += 1
            record["error"], record["hint"] = err.message, err.hint
            notes.append(f"Error: {err}")
        if self.as_json:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")  # one line per question, whatever happened
        else:
            if started["reasoning"] and not self.interactive:
                sys.stderr.write("\n")
            out.write("\n")  # each answer ends with a newline (an empty line when it failed)
        out.flush()
        for note in notes:
            self.say(note)

    def show_reasoning(self, text: str, first: bool) -> None:
        """Interactive: dimmed before the answer. Piped: on stderr, so stdout holds only answers."""
        if self.interactive:
            sys.stdout.write(console.style(("thinking: " if first else "") + text, dim=True))
            sys.stdout.flush()
        else:
            sys.stderr.write(("reasoning: " if first else "") + text)
            sys.stderr.flush()


def chat_in_terminal(
    conv: Conversation, stdin: TextIO | None = None, interactive: bool | None = None, as_json: bool = False
) -> int:
    """The terminal chat; returns the exit status (1 when a question got an error instead of an answer).
    `as_json`: the piped session with one JSON object per question on stdout."""
    stdin = stdin or sys.stdin
    if interactive is None:
        interactive = stdin.isatty() and sys.stdout.isatty()
    conv.connect()
    return Terminal(conv, stdin, interactive, as_json).run()
