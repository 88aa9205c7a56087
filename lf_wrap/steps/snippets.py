"""Ready-to-paste client code for a served model: curl, the openai SDK and LangChain's
`ChatOpenAI`, with the real base URL and served model name. `serve` and `serve status` print
them. The API key is never written out: the snippets read it from $LF_WRAP_API_KEY."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from lf_wrap.project.runs import RunFolder

KEY_ENV = "LF_WRAP_API_KEY"
QUESTION = "Hello!"


def _py(value: Any) -> str:
    """A Python literal for a JSON-able value, strings in double quotes (False, not false)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_py(str(k))}: {_py(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_py(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def client_snippets(
    base_url: str,
    model: str,
    *,
    api_key_required: bool = False,
    thinking: dict[str, Any] | None = None,
    chat_args: str = "",
) -> str:
    """curl, openai and LangChain snippets for `model` served at `base_url` (the server root or its /v1).

    `thinking` is the run's manifest `train.thinking` (lf_wrap/model/thinking.py): a thinking model's
    snippets say where the reasoning is and how to skip it (`extra_body`); a model trained
    without thinking sends the chat-template kwargs it was trained with."""
    api = base_url.rstrip("/")
    api = api if api.endswith("/v1") else api + "/v1"
    mode = (thinking or {}).get("mode")
    kwargs = dict((thinking or {}).get("chat_template_kwargs") or {})
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": QUESTION}]}
    if kwargs:
        body["chat_template_kwargs"] = kwargs
    auth = [f'  -H "Authorization: Bearer ${KEY_ENV}" \\'] if api_key_required else []
    curl = [
        f"curl {shlex.quote(api + '/chat/completions')} \\",
        '  -H "Content-Type: application/json" \\',
        *auth,
        f"  -d {shlex.quote(json.dumps(body, ensure_ascii=False))}",
    ]
    key = f"os.environ[{_py(KEY_ENV)}]" if api_key_required else '"EMPTY"'
    imports = ["import os", ""] if api_key_required else []
    extra = ""
    skip = ""
    if kwargs:
        extra = f"extra_body={_py({'chat_template_kwargs': kwargs})}"
    elif mode == "thinking":
        skip = f"extra_body={_py({'chat_template_kwargs': {'enable_thinking': False}})}"
    openai = [
        *imports,
        "from openai import OpenAI",
        "",
        f"client = OpenAI(base_url={_py(api)}, api_key={key})",
        "resp = client.chat.completions.create(",
        f"    model={_py(model)},",
        f"    messages={_py(body['messages'])},",
        *([f"    {extra},"] if extra else []),
        *([f"    # {skip},  # answer without thinking"] if skip else []),
        ")",
        "print(resp.choices[0].message.content)",
    ]
    if mode == "thinking":
        openai.append('print(getattr(resp.choices[0].message, "reasoning", None))  # the think block, apart')
    langchain = [
        *imports,
        "from langchain_openai import ChatOpenAI",
        "",
        f"llm = ChatOpenAI(base_url={_py(api)}, api_key={key}, model={_py(model)}"
        + (f", {extra}" if extra else "")
        + ")",
        *([f"# thinking models: ChatOpenAI(..., {skip}) answers without thinking"] if skip else []),
        f"print(llm.invoke({_py(QUESTION)}).content)",
    ]
    key_note = f" (the key: export {KEY_ENV}=...)" if api_key_required else ""
    return "\n".join(
        [
            f"# curl{key_note}",
            *curl,
            "",
            "# Python, openai (pip install openai)",
            *openai,
            "",
            "# Python, LangChain (pip install langchain-openai)",
            *langchain,
            "",
            f"# or talk to it: lf-wrap chat{chat_args}    (in a web page: lf-wrap chat{chat_args} --web)",
        ]
    )


def for_server(
    base_url: str,
    served_name: str,
    *,
    api_key_required: bool,
    model_dir: str | Path | None,
    run_root: Path,
    chat_args: str = "",
) -> str:
    """The snippets for a server lf-wrap started: a thinking model's notes when it serves the
    run's own merged model (the run's manifest says how it was trained to think)."""
    thinking = None
    if model_dir is not None and Path(model_dir).resolve() == (run_root / "merged").resolve():
        thinking = RunFolder(run_root).thinking() or None
    text = client_snippets(
        base_url, served_name, api_key_required=api_key_required, thinking=thinking, chat_args=chat_args
    )
    return "talk to it from your code:\n\n" + text


def for_record(info: dict[str, Any], run_root: Path, config_file: Path | None) -> str:
    """The snippets for a detached server, from its record (serve.json) and the project file named."""
    return for_server(
        info["base_url"],
        info.get("served_model_name") or run_root.name,
        api_key_required=bool(info.get("api_key_required")),
        model_dir=info.get("model"),
        run_root=run_root,
        chat_args=f" --config {shlex.quote(str(config_file))}" if config_file else "",
    )
