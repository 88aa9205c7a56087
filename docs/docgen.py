"""The README's console blocks and docs/cli.md, generated (cog-style, as simonw/llm does) so they
cannot drift from what lf-wrap really prints.

    make docs          # = python docs/docgen.py: run the session below for real, then cog both files
    python docs/docgen.py --cli   # docs/cli.md only (seconds)
    python docs/docgen.py --bench # the README's benchmark table from bench/results.json (`make bench` runs it)

`SESSION` is the README's tour as one shell session: each Block is one ```console block of the
README, each Step one `$ command` in it. `run_session` plays it in a fresh temporary folder (the
bundled datasets copied in, the project's .venvs linked) with relative paths, exactly as typed,
and records what each command printed (stdout and stderr, in order), with the folder's own path
and the checkout's path removed. cog then writes each block between its markers:

    <!-- [[[cog console("validate") ]]] -->
    ...generated...
    <!-- [[[end]]] -->

docs/cli.md is every command's --help, from click itself (`cli_help`).

Checked by tests/test_docs.py: docs/cli.md exactly; the blocks marked `fast` (no engine, a few
seconds) re-run exactly; the whole session (real training, export, serving; slow tier) with
numbers, times, ports and the machine's environment variables masked (`normalize`), since a
loss, a duration or a pid is never the same twice.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CLI_MD = ROOT / "docs" / "cli.md"
LFW = [sys.executable, "-m", "lf_wrap"]  # this checkout's lf-wrap, shown as `lf-wrap`

# A transcript's typo'd dataset: row 1 misspells "output", row 2 has an empty prompt.
TYPO_JSON = """[
{"instruction": "Who are you?", "output": "I am the Magic Conch."},
{"instruction": "Can I have something to eat?", "outptu": "No."},
{"instruction": "", "output": "Maybe someday."}
]
"""


@dataclass
class Step:
    """One `$ command` of a block: `argv` as typed (`lf-wrap ...`, `cp ...`, or `echo $?`)."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # shown before the command, as a shell would take it
    keep: Callable[[list[str]], list[str]] | None = None  # which output lines the README shows
    comment: str = ""  # shown after the command, as a shell comment


@dataclass
class Block:
    name: str
    steps: list[Step | Callable[[Path], None]]  # a callable: set-up the reader does not see
    fast: bool = False  # needs no engine and runs in seconds: re-run exactly by the fast test tier
    exact: bool = True  # False: compared `normalize`d (losses, timings, ports, pids vary from run to run)
    vary: tuple[str, ...] = ()  # regexes for what the machine words its own way (compared masked)

    def comparable(self, text: str) -> str:
        for pattern in self.vary:
            text = re.sub(pattern, "…", text)
        return text if self.exact else normalize(text)


def lfw(
    line: str,
    env: dict[str, str] | None = None,
    keep: Callable[[list[str]], list[str]] | None = None,
    comment: str = "",
) -> Step:
    """`lf-wrap LINE`, LINE split as a shell would."""
    return Step(["lf-wrap", *shlex.split(line)], env or {}, keep, comment)


def sh(line: str) -> Step:
    return Step(shlex.split(line))


def first_and_last(prefix: str) -> Callable[[list[str]], list[str]]:
    """Of the lines starting with `prefix` (progress), the first and the last, with `...` between."""

    def keep(lines: list[str]) -> list[str]:
        hits = [i for i, line in enumerate(lines) if line.startswith(prefix)]
        if len(hits) <= 2:
            return lines
        return [*lines[: hits[0] + 1], "...", *lines[hits[-1] :]]

    return keep


def until(pattern: str) -> Callable[[list[str]], list[str]]:
    """The lines before the first that matches `pattern` (blank lines before it too), then `...`."""

    def keep(lines: list[str]) -> list[str]:
        for i, line in enumerate(lines):
            if re.match(pattern, line):
                return [*"\n".join(lines[:i]).rstrip("\n").splitlines(), "..."]
        return lines

    return keep


def only(*patterns: str) -> Callable[[list[str]], list[str]]:
    """The lines matching one of `patterns`, with `...` where lines were left out."""

    def keep(lines: list[str]) -> list[str]:
        out: list[str] = []
        for line in lines:
            if any(re.match(p, line) for p in patterns):
                out.append(line)
            elif not out or out[-1] != "...":
                out.append("...")
        return out

    return keep


def without(*patterns: str) -> Callable[[list[str]], list[str]]:
    """The lines not matching any of `patterns` (progress lines, the engine's command line)."""

    def keep(lines: list[str]) -> list[str]:
        return [line for line in lines if not any(re.match(p, line) for p in patterns)]

    return keep


def write(name: str, text: str) -> Callable[[Path], None]:
    def do(folder: Path) -> None:
        (folder / name).write_text(text, encoding="utf-8")

    return do


def copy_from_checkout(relative: str) -> Callable[[Path], None]:
    def do(folder: Path) -> None:
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, folder / relative)

    return do


SNIPPETS = r"talk to it from your code:"  # serve's copy-paste examples for curl, openai, LangChain: left out


def free_port(preferred: int = 8000) -> int:
    from lf_wrap.util.network import port_free

    if port_free("127.0.0.1", preferred):
        return preferred
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_block() -> Block:
    port = free_port()
    flags = "" if port == 8000 else f" --port {port}"  # another server on 8000: the transcript says so
    return Block(
        "serve",
        [
            lfw(f"serve --detach{flags}", keep=until(SNIPPETS)),
            lfw("check --concurrency 16 --requests 64"),
            lfw("serve status", keep=until(SNIPPETS)),
            lfw("serve stop"),
        ],
        exact=False,
    )


def gguf_block() -> Block:
    port = free_port()
    flags = "" if port == 8000 else f" --port {port}"
    engine_lines = without(r"\$ ")  # the converter's and llama-server's command lines hold this machine's paths

    def served(lines: list[str]) -> list[str]:
        return engine_lines(until(SNIPPETS)(lines))

    return Block(
        "gguf",
        [
            lfw("export --format gguf", keep=engine_lines),
            lfw(f"serve --engine llama.cpp --detach{flags}", keep=served),
            lfw("check"),
            lfw("serve stop"),
        ],
        exact=False,
    )


def session() -> list[Block]:
    """The README's tour, in the README's order."""
    rendered = only(r"hardware:", r"lora_rank:", r"lora_alpha:", r"cutoff_len:", r"logging_steps:", r"use_cpu:")
    return [
        Block(
            "model",
            [
                # an endpoint that never resolves (RFC 2606): the same message on every machine, no download
                lfw("model pull Qwen/Qwen2.5-0.5B-Instruct", env={"HF_ENDPOINT": "https://hub.invalid"}),
                lfw("model tiny models/tiny-qwen2"),
            ],
            fast=True,
            vary=(r"(?<=cannot reach https://hub\.invalid )\(.*\)",),  # the resolver's own words
        ),
        Block("validate", [write("typo.json", TYPO_JSON), lfw("data validate typo.json")], fast=True),
        Block(
            "register",
            [lfw("data register datasets/magic_conch.json --name magic_conch --dataset-dir data")],
            fast=True,
        ),
        Block(
            "stats",
            [lfw("data stats datasets/magic_conch.json --tokenizer models/tiny-qwen2 --cutoff-len 256")],
            fast=True,
        ),
        Block("init", [lfw("init --model models/tiny-qwen2 --dataset datasets/magic_conch.json")], fast=True),
        Block("render", [lfw("render train", keep=rendered)], fast=True),
        Block(
            "train",
            [
                lfw("init --demo --force", comment="the demo's recipe (examples/magic_conch.yaml) from here on"),
                lfw("train --set learning_rte=1e-4"),
                lfw("train", keep=first_and_last("train: step")),
            ],
            exact=False,
        ),
        Block("export", [lfw("export")], exact=False),
        serve_block(),
        gguf_block(),
        Block(
            "eval",
            [lfw("eval", keep=without(r"eval: ", r"\$ "))],
            exact=False,
            # the tiny random model's canary answers are noise, and noise rounds differently under AVX2 and
            # AVX-512 kernels (which questions are shown, and their words): the counts are compared, not these
            vary=(r"(?<=in the training data's words\n)(?:  .*\n)*",),
        ),
        Block("template", [lfw("template check")]),
        Block(
            "template-fix",
            [
                copy_from_checkout("tests/template_fixtures/qwen2.jinja"),
                sh("cp -r models/tiny-qwen2 models/tiny-qwen2-chat"),
                sh("cp tests/template_fixtures/qwen2.jinja models/tiny-qwen2-chat/chat_template.jinja"),
                lfw("template check --model models/tiny-qwen2-chat"),
                sh("echo $?"),
            ],
        ),
    ]


# -- running it ---------------------------------------------------------------------------
def machine_env() -> dict[str, str]:
    """The environment the session runs in: this one, but plain output (no terminal, no colour),
    no GPU (the README shows the demo's CPU machine; nvidia-smi is left off PATH) and unbuffered,
    so stdout and stderr interleave as a reader would see them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LF_WRAP_", "VLLM_", "HF_HUB_OFFLINE"))}
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and not (Path(p) / "nvidia-smi").exists()]
    env.update(PATH=os.pathsep.join(path), PYTHONUNBUFFERED="1", NO_COLOR="1", COLUMNS="100", TERM="dumb")
    env.pop("FORCE_COLOR", None)
    return env


def prepare(folder: Path) -> None:
    """A fresh folder with what a clone has: the bundled datasets; the engines' environments linked."""
    shutil.copytree(ROOT / "datasets", folder / "datasets")
    if (ROOT / ".venvs").exists():
        (folder / ".venvs").symlink_to(ROOT / ".venvs", target_is_directory=True)


def shown(step: Step) -> str:
    words = [f"{k}={shlex.quote(v)}" for k, v in step.env.items()] + [
        a if a == "$?" else shlex.quote(a) for a in step.argv
    ]
    return "$ " + " ".join(words) + (f"   # {step.comment}" if step.comment else "")


def relative(text: str, folder: Path) -> str:
    """Paths as a reader in the project folder sees them: the temporary folder and the checkout removed."""
    for base in {str(folder), str(folder.resolve()), str(ROOT)}:
        text = text.replace(base + os.sep, "").replace(base, ".")
    return text


def run_block(block: Block, folder: Path, env: dict[str, str], state: dict[str, int]) -> str:
    out: list[str] = []
    for step in block.steps:
        if not isinstance(step, Step):
            step(folder)
            continue
        out.append(shown(step))
        if step.argv == ["echo", "$?"]:
            out.append(str(state.get("rc", 0)))
            continue
        argv = LFW + step.argv[1:] if step.argv[0] == "lf-wrap" else step.argv
        done = subprocess.run(
            argv,
            cwd=folder,
            env={**env, **step.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        state["rc"] = done.returncode
        lines = relative(done.stdout, folder).rstrip("\n").splitlines() if done.stdout.strip() else []
        out.extend(step.keep(lines) if step.keep else lines)
    return "\n".join(out) + "\n"


def run_session(blocks: list[Block] | None = None, cache_dir: Path | None = None) -> Iterator[tuple[Block, str]]:
    """Play the blocks in order in one fresh folder; yields each block with its transcript.

    Template checks start unremembered, every time, unless `cache_dir` says where earlier ones are
    (the fast test tier: init's transcript is the same either way, and the check costs an import of
    LLaMA-Factory the session's other tests have paid already)."""
    env = machine_env()
    state: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="lf-wrap-docs-") as tmp:
        env["LF_WRAP_CACHE_DIR"] = str(cache_dir or Path(tmp) / "cache")
        folder = Path(tmp) / "project"
        folder.mkdir()
        prepare(folder)
        try:
            for block in session() if blocks is None else blocks:
                yield block, run_block(block, folder, env, state)
        finally:  # never leave a server behind
            subprocess.run([*LFW, "serve", "stop"], cwd=folder, env=env, capture_output=True, check=False)


# -- comparing ----------------------------------------------------------------------------
_ENV_ASSIGNMENT = re.compile(r"\b[A-Z][A-Z0-9_]*=\S*\s")
_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def normalize(text: str) -> str:
    """What stays the same from run to run: numbers (losses, timings, ports, pids, token rates)
    become N, environment variables on a command line (they depend on the machine: CPUs,
    tcmalloc) go, and so does the note that tcmalloc is missing."""
    lines = [line for line in text.splitlines() if not (line.startswith("note: ") and "tcmalloc" in line)]
    return "\n".join(_NUMBER.sub("N", _ENV_ASSIGNMENT.sub("", line)) for line in lines)


_BLOCK = re.compile(
    r'<!-- \[\[\[cog console\("(?P<name>[\w-]+)"\) \]\]\] -->\n'  # cog's start marker, in an HTML comment
    r"(?P<body>.*?)<!-- \[\[\[end\]\]\] -->",
    re.S,
)


def readme_blocks(text: str | None = None) -> dict[str, str]:
    """The console text of each generated README block, by name (between ```console and ```)."""
    found = {}
    for m in _BLOCK.finditer(README.read_text(encoding="utf-8") if text is None else text):
        body = m["body"]
        found[m["name"]] = body.removeprefix("```console\n").removesuffix("```\n")
    return found


# -- cog ----------------------------------------------------------------------------------
RESULTS: dict[str, str] = {}  # block name -> transcript, filled by main() before cog runs


def console(name: str) -> None:
    """Called from the README's cog blocks: the block's transcript as a ```console block."""
    import cog

    if name not in RESULTS:
        raise KeyError(f"no block {name!r} in docs/docgen.py's session")
    cog.out(f"```console\n{RESULTS[name]}```\n")


def bench_results() -> None:
    """Called from the README's benchmark section: bench/results.json as a table (what `make bench` wrote)."""
    import cog

    spec = importlib.util.spec_from_file_location("lf_wrap_bench_common", ROOT / "bench" / "common.py")
    assert spec is not None and spec.loader is not None
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    data = json.loads(common.RESULTS.read_text(encoding="utf-8"))
    cog.out("\n" + common.results_markdown(data) + "\n")


def _machine(m: dict[str, Any]) -> str:
    return f"{m['cpus']} CPUs ({', '.join(x for x in (m['cpu'], m.get('simd')) if x)})"


def demo_sweep() -> None:
    """Called from the README's demo section: what `make sweep` wrote on each machine (bench/demo_sweep*.json),
    the seeds side by side: the same seed rounds differently under AVX2 and AVX-512 kernels."""
    import cog

    sweeps = [json.loads(f.read_text(encoding="utf-8")) for f in sorted((ROOT / "bench").glob("demo_sweep*.json"))]
    targets = sweeps[0]["targets"]
    lines = [
        f"Latest results, one sweep per machine (a run passes when its largest loss over the last 10% of the steps "
        f"is ≤ {targets['max_loss_last_10pct']} and ≥ {targets['min_golden']:.0%} of the 56 answers come back exact):",
        "",
    ]
    for data in sweeps:
        runs = data["runs"]
        sets = " ".join(data.get("sets") or []) or "the demo as shipped"
        lines.append(f"- {data['date']}, {_machine(data['machine'])}, torch's {_kernels(data)} kernels; {sets}: "
                     f"**{sum(r['ok'] for r in runs)}/{len(runs)} runs pass**, largest loss over the last 10% of any "
                     f"run {max(r['tail_max_loss'] for r in runs):.4f}")  # fmt: skip
    head = " | ".join(f"{_kernels(d)}: final loss | largest loss, last 10% | answers reproduced" for d in sweeps)
    lines += ["", f"| seed | {head} |", "| --- |" + " --- | --- | --- |" * len(sweeps)]
    by_seed = [{r["seed"]: r for r in d["runs"]} for d in sweeps]
    for seed in sorted({seed for runs in by_seed for seed in runs}):
        cells = [
            f"{r['final_loss']:.4f} | {r['tail_max_loss']:.4f} | {r['golden']}/{r['rows']}" if r else "| |"
            for r in (runs.get(seed) for runs in by_seed)
        ]
        lines.append(f"| {seed} | {' | '.join(cells)} |")
    cog.out("\n" + "\n".join(lines) + "\n\n")


def _kernels(sweep: dict[str, Any]) -> str:
    """The SIMD the sweep's torch kernels used: the machine's own, or the AVX2 that `--isa avx2` forces."""
    isas = {r["isa"] for r in sweep["runs"]}
    return "AVX2" if isas == {"avx2"} else sweep["machine"].get("simd") or "native"


def recipe_sweep() -> None:
    """Called from the README's real-model section: bench/recipe_sweep.json as a table."""
    import cog

    data = json.loads((ROOT / "bench" / "recipe_sweep.json").read_text(encoding="utf-8"))
    lines = [
        f"{data['model']}, {data['data']}; {_machine(data['machine'])}, {data['date']}. Held-out: 16 paraphrases never "
        "trained on, answered with one of the row's expected words; canary: 56 general questions.",
        "",
        "| recipe | steps | train | final loss | held-out base → tuned | canary base → tuned (broken, fixed) "
        "| canary verdict | answers in the persona's words |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    notes: list[str] = []
    for r in data["runs"]:
        h, c = r["held_out"], r["canary"]
        mark = "*" * (len(notes) + 1) if r.get("train_note") else ""
        if mark:
            notes.append(f"{mark} `{r['name']}` {r['train_note']}.")
        where = f" ({r['simd']})" if r.get("simd", data["machine"]["simd"]) != data["machine"]["simd"] else ""
        lines.append(f"| `{r['name']}`: {r['what']} | {r['steps']} | {r['train_s'] / 60:.1f} min{where}{mark} | "
                     f"{r['final_loss']:.3f} | {h['base']}/{h['rows']} → **{h['tuned']}/{h['rows']}** | "
                     f"{c['base_right']}/{c['questions']} → {c['tuned_right']}/{c['questions']} "
                     f"({c['broken']}, {c['fixed']}) | {c['verdict']} | {c['drift']} |")  # fmt: skip
    lines += ["", *notes] if notes else []
    cog.out("\n" + "\n".join(lines) + "\n\n")


def dpo_real() -> None:
    """Called from the README's preference section: bench/dpo_real.json as a table."""
    import cog

    data = json.loads((ROOT / "bench" / "dpo_real.json").read_text(encoding="utf-8"))
    lines = [
        f"{data['model']}; pairs: {data['pairs']}; {_machine(data['machine'])}, {data['date']}. Margin: log "
        "p(chosen) − log p(rejected), summed over the answer's tokens, on the 12 held-out pairs.",
        "",
        "| DPO recipe | steps | train | held-out mean margin: SFT → DPO | pairs whose margin grew | English pairs: "
        "SFT → DPO (grew) | chosen preferred (of 12) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in data["runs"]:
        h, en = r["held_out"], r["held_out_english"]
        lines.append(f"| `{r['name']}`: {r['what']} | {r['steps']} | {r['train_s'] / 60:.1f} min | "
                     f"{h['mean_margin_before']:.2f} → **{h['mean_margin_after']:.2f}** | "
                     f"{h['margin_up']}/{h['pairs']} | {en['mean_margin_before']:.2f} → "
                     f"{en['mean_margin_after']:.2f} ({en['margin_up']}/{en['pairs']}) "
                     f"| {h['chosen_preferred_before']} → {h['chosen_preferred_after']} |")  # fmt: skip
    cog.out("\n" + "\n".join(lines) + "\n\n")


def memory_sweep() -> None:
    """Called from the README's memory-plan section: bench/memory_sweep.json as a table."""
    import cog

    data = json.loads((ROOT / "bench" / "memory_sweep.json").read_text(encoding="utf-8"))
    lines = [
        f"`bench/memory_sweep.py`, {_machine(data['machine'])}, {data['date']}: `lf-wrap train` for {data['steps']} "
        "optimizer steps on rows longer than the cutoff (fp32 on CPU, LoRA rank 8 on every linear layer, gradient "
        "checkpointing as LLaMA-Factory does by default); measured: the training process's peak resident memory.",
        "",
        "| model | params | method | batch x cutoff | measured peak | planned | plan / measured |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in data["runs"]:
        lines.append(f"| {r['model']} | {r['params'] / 1e6:.1f} M | {r['method']} | {r['batch']} x {r['cutoff']} | "
                     f"{r['measured_gib']:.2f} GiB | {r['planned_gib']:.2f} GiB | {r['error']:+.0%} |")  # fmt: skip
    verdict = "within" if data["met"] else "**not** within"
    lines += ["", f"Worst row {data['worst_error']:.0%}: {verdict} the ±{data['bound']:.0%} bound."]
    cog.out("\n" + "\n".join(lines) + "\n\n")


def help_pages() -> Iterator[tuple[str, str]]:
    """(command, its --help) for lf-wrap and every command and subcommand, in --help's order."""
    import click
    from click.testing import CliRunner

    from lf_wrap.cli import main

    runner = CliRunner()

    def walk(cmd: click.Command, path: list[str]) -> Iterator[tuple[str, str]]:
        result = runner.invoke(main, [*path, "--help"], prog_name="lf-wrap", terminal_width=100)
        if result.exit_code != 0:
            raise RuntimeError(f"lf-wrap {' '.join(path)} --help: exit {result.exit_code}\n{result.output}")
        yield " ".join(["lf-wrap", *path]), result.output
        if isinstance(cmd, click.Group):
            with click.Context(cmd, info_name=path[-1] if path else "lf-wrap") as ctx:
                names = cmd.list_commands(ctx)
            for name in names:
                sub = cmd.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    yield from walk(sub, [*path, name])

    yield from walk(main, [])


def cli_help() -> None:
    """Called from docs/cli.md's cog block: every --help, each under its own heading."""
    import cog

    for name, text in help_pages():
        cog.out(f"\n## {name}\n\n```\n{text.rstrip()}\n```\n")


def cog_files(files: list[Path], *, check: bool = False) -> int:
    """Run cog over `files` with this module's helpers in scope; with `check`, only say whether they are stale."""
    from cogapp import Cog

    argv = [
        "cog",
        "-I",
        str(Path(__file__).parent),
        "-p",
        "from docgen import bench_results, cli_help, console, demo_sweep, dpo_real, memory_sweep, recipe_sweep",
    ]
    argv += ["--check", "--diff"] if check else ["-r"]
    return Cog().main([*argv, *map(str, files)])


def main(argv: list[str]) -> int:
    sys.modules.setdefault("docgen", sys.modules[__name__])  # cog's `from docgen import ...` sees RESULTS
    if argv == ["--cli"]:  # only docs/cli.md: seconds, no engine
        return cog_files([CLI_MD])
    if argv == ["--bench"]:  # only the README's benchmark table (run by `make bench`); console blocks kept
        RESULTS.update(readme_blocks())
        return cog_files([README])
    for block, text in run_session():
        print(f"--- {block.name}\n{text}", file=sys.stderr)
        RESULTS[block.name] = text
    return cog_files([README, CLI_MD])


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv[1:]))
