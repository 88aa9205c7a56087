"""The template check on the real chat templates of 15 model families, computed by
LLaMA-Factory's own code in the training environment (no mocks): the verdict per family,
and that every fix it offers makes the same comparison pass when it is applied.

All family checks run in one probe invocation (one LLaMA-Factory import), the fixes in a
second; the `lf-wrap template check` command is then exercised on a few of them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from lf_wrap.engines.llamafactory import LlamaFactory
from lf_wrap.model.template_agreement import fix_flags, progress_line, scope, scope_warning
from tests.helpers import free_port

from .conftest import REPO
from .template_families import FAMILIES, FIXTURES, build

pytestmark = pytest.mark.slow

# family, LLaMA-Factory template -> expected overall verdict, harmful?
EXPECTED = {
    ("qwen2.5", "qwen"): ("agree", False),
    ("qwen2", "qwen"): ("differs_system_prompt", True),
    ("qwen1.5", "qwen"): ("differs_system_prompt", True),
    ("qwq", "qwen"): ("differs_system_prompt", True),
    ("qwen3", "qwen3"): ("differs_earlier_turns", True),
    ("qwen3", "qwen3_nothink"): ("agree", False),
    ("deepseek-r1-distill-qwen", "deepseekr1"): ("differs_earlier_turns", True),
    ("llama3", "llama3"): ("agree", False),
    ("llama3.1", "llama3"): ("differs_system_prompt", True),
    ("llama3.2", "llama3"): ("differs_system_prompt", True),
    ("gemma2", "gemma2"): ("template_refuses", False),
    ("mistral-v0.3", "mistral"): ("differs_system_prompt", True),
    ("phi3.5", "phi"): ("differs_answer_end", False),
    ("phi3", "phi"): ("differs_prompt", True),
    ("yi1.5", "yi"): ("differs_system_prompt", True),
    ("glm4", "glm4"): ("same_stream_different_boundary", False),
}
HARMLESS = ("agree", "same_stream_different_boundary", "differs_answer_end", "template_refuses")


@pytest.fixture(scope="module")
def engine() -> LlamaFactory:
    try:
        return LlamaFactory.find(project_root=REPO)
    except Exception as err:  # the default suite needs the engine: make test installs it
        pytest.fail(f"LLaMA-Factory is not installed ({err}); run `make setup-train`")


@pytest.fixture(scope="module")
def families(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {name: build(f, tiny_model, root / name) for name, f in FAMILIES.items()}


@pytest.fixture(scope="module")
def checks(engine: LlamaFactory, families: dict[str, Path]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every family checked with its LLaMA-Factory template, fixes searched: one probe run."""
    jobs = [{"model_dir": str(families[f]), "template": t, "fixes": True} for f, t in EXPECTED]
    results = engine.probe_jobs(jobs)["results"]
    return {key: r for key, r in zip(EXPECTED, results, strict=True)}


def offered(check: dict[str, Any]) -> list[dict[str, Any]]:
    """The fixes `lf-wrap template check` prints: this template's settings, else up to 3 others."""
    working = [f for f in check.get("fixes", []) if f["works"] and f["kind"] == "settings"]
    same = [f for f in working if f["settings"]["template"] == check["template"]]
    return same or working[:3]


@pytest.fixture(scope="module")
def fixed(engine: LlamaFactory, families: dict[str, Path], checks: dict) -> list[tuple[str, str, dict[str, Any]]]:
    """Every offered fix applied, each as its own check: one more probe run.

    A settings fix trains with those settings; the training-template fix serves with the
    Jinja template the first check produced (it replaces the model's own on the serving side)."""
    jobs, labels = [], []
    for (family, template), check in checks.items():
        for fix in offered(check):
            settings = dict(fix["settings"])
            name = settings.pop("template")
            jobs.append({"model_dir": str(families[family]), "template": name, "options": settings, "fixes": False})
            labels.append((family, fix_flags(fix["settings"], template) or "(same settings)"))
        if check.get("training_jinja") and check["verdict"] != "agree":
            jobs.append({"model_dir": str(families[family]), "template": template, "fixes": False,
                         "chat_template": check["training_jinja"]})  # fmt: skip
            labels.append((family, "--chat-template training"))
    results = engine.probe_jobs(jobs)["results"]
    return [(family, how, result) for (family, how), result in zip(labels, results, strict=True)]


@pytest.mark.parametrize(("family", "template"), list(EXPECTED), ids=[f"{f}-{t}" for f, t in EXPECTED])
def test_each_family_gets_the_verdict_its_real_chat_template_earns(checks, family, template):
    check = checks[(family, template)]
    verdict, harmful = EXPECTED[(family, template)]
    assert (check["verdict"], check["harmful"]) == (verdict, harmful), json.dumps(check["conversations"], indent=1)
    if harmful:
        first = next(c for c in check["conversations"] if c["harmful"])
        assert first["training"]["after"] != first["serving"]["after"]  # the first difference, both sides
        assert first["training"]["ids"] and first["serving"]["ids"]
        assert check["fixes"], "a harmful verdict comes with fixes"
    if check["verdict"] != "agree":
        kinds = {f["kind"] for f in check["fixes"] if f["works"]}
        assert "serve_training_template" in kinds  # serving with the training template always agrees


def test_a_wrong_default_system_prompt_is_fixed_by_the_models_own(checks):
    for family, value in (("qwen2", "You are a helpful assistant."), ("qwen1.5", "You are a helpful assistant")):
        check = checks[(family, "qwen")]
        plain = next(c for c in check["conversations"] if c["name"] == "no_system")
        assert plain["training"]["after"].startswith(" Qwen, created by Alibaba Cloud")
        assert value + "<|im_end|>" in plain["serving"]["before"] + plain["serving"]["after"]
        assert {"template": "qwen", "default_system": value} in [f["settings"] for f in offered(check)]


def test_deepseek_r1_think_tag_is_only_a_boundary_but_stripped_history_is_not(checks):
    check = checks[("deepseek-r1-distill-qwen", "deepseekr1")]
    plain = next(c for c in check["conversations"] if c["name"] == "no_system")
    assert plain["verdict"] == "differs_earlier_turns" and plain["turn"] == 2
    assert "same_stream_different_boundary" in plain["also"]  # turn 1: prompt + answer are the same stream
    assert plain["training"]["after"].startswith("<think>")  # LLaMA-Factory keeps the empty thought in history
    assert {"template": "deepseekr1", "mask_history": True} in [f["settings"] for f in offered(check)]


def test_qwen3_thinking_switch_is_reported_but_not_counted(checks):
    check = checks[("qwen3", "qwen3_nothink")]
    off = next(c for c in check["conversations"] if c["name"] == "thinking_off")
    assert off["informational"] and not off["harmful"]
    assert off["verdict"] == "differs_prompt"
    assert off["serving"]["after"].startswith("<think>\n\n</think>")  # enable_thinking=false writes an empty think


def test_llama31_date_block_default_system_fixes_only_conversations_without_a_system_prompt(checks):
    check = checks[("llama3.1", "llama3")]
    partial = [f for f in check["fixes"] if not f["works"] and f["settings"]["template"] == "llama3"]
    assert (
        partial[0]["settings"]["default_system"] == "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
    )
    assert partial[0]["fixes_conversations"] == ["no_system"]


def test_gemma2_refusing_a_system_prompt_is_named_and_harmless(checks):
    check = checks[("gemma2", "gemma2")]
    refused = next(c for c in check["conversations"] if c["name"] == "system")
    assert refused["verdict"] == "template_refuses" and "System role not supported" in refused["error"]
    plain = next(c for c in check["conversations"] if c["name"] == "no_system")
    assert not plain["harmful"] and "where generation stops" in plain["note"]


SINGLE_TURN = {"with_system": False, "multi_turn": False}  # the demo data's shape (lf_wrap/data/shape.py)


@pytest.fixture(scope="module")
def shaped(
    engine: LlamaFactory, families: dict[str, Path], tiny_family, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """Checks that depend on the data, the serving kwargs or the tokenizer: one probe run.

    The look-alikes (`model tiny --family`) have BPE merges like the real models' ("\n\n" is
    one token), which the fixture tokenizer lacks."""
    jobs = {
        "qwen3-single-turn": {"model_dir": str(families["qwen3"]), "template": "qwen3", "data": SINGLE_TURN},
        "qwen3-no-think": {"model_dir": str(families["qwen3"]), "template": "qwen3",
                           "options": {"enable_thinking": False}},
        "llama3.1-single-turn": {"model_dir": str(families["llama3.1"]), "template": "llama3", "data": SINGLE_TURN},
        "r1-lookalike": {"model_dir": str(tiny_family("deepseek-r1-distill")), "template": "deepseekr1",
                         "data": SINGLE_TURN},
        "llama3-lookalike": {"model_dir": str(tiny_family("llama3")), "template": "llama3", "data": SINGLE_TURN},
        "yi-single-turn": {"model_dir": str(families["yi1.5"]), "template": "yi", "data": SINGLE_TURN},
    }  # fmt: skip
    r1 = tmp_path_factory.mktemp("r1") / "tiny-r1"  # with the fix `train` asks for (test_families.py)
    shutil.copytree(tiny_family("deepseek-r1-distill"), r1)
    config = r1 / "tokenizer_config.json"
    config.write_text(config.read_text().replace('"LlamaTokenizerFast"', '"PreTrainedTokenizerFast"'))
    jobs["r1-lookalike"]["model_dir"] = str(r1)
    results = engine.probe_jobs([{"fixes": True, **job} for job in jobs.values()])["results"]
    return dict(zip(jobs, results, strict=True))


def test_differences_in_conversations_the_data_never_trains_are_shown_not_counted(shaped):
    check = shaped["qwen3-single-turn"]  # harmful for multi-turn data (see EXPECTED), not for single-turn
    assert (check["verdict"], check["harmful"]) == ("differs_earlier_turns", False)
    plain = next(c for c in check["conversations"] if c["name"] == "no_system")
    assert plain["turn"] == 2 and "not counted: your data is single-turn" in plain["note"]
    system = next(c for c in check["conversations"] if c["name"] == "system")
    assert system["not_counted"] == "your data has no system prompts"
    assert check["data"] == SINGLE_TURN


def test_an_agreement_for_this_data_only_says_where_it_ends_and_warns_a_request_that_goes_there(shaped):
    check = shaped["qwen3-single-turn"]
    scoped = scope(check)
    assert scoped is not None and "multi_turn" in scoped["differs_with"]
    assert scoped["line"].startswith("agrees for this data (single-turn, no system prompts); differs with")
    assert "a second turn (earlier turns in the prompt) (differs_earlier_turns)" in scoped["line"]
    assert progress_line(check) == f"template check: 'qwen3' and the model's chat template: {scoped['line']}"
    one_turn = [{"role": "user", "content": "hi"}]
    assert scope_warning(scoped, one_turn) is None
    second = [*one_turn, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "and?"}]
    warning = scope_warning(scoped, second) or ""
    assert warning.startswith("note: this request has earlier turns, which the model's chat template serves")
    assert "`lf-wrap serve --chat-template training`" in warning


def test_yis_bare_system_text_is_honest_for_data_without_system_prompts(shaped):
    """Yi-1.5 writes a system prompt as bare text, LLaMA-Factory's `yi` in its own turn: harmful for
    data with system prompts (EXPECTED), and for data without them not 'agree' but where it ends."""
    check = shaped["yi-single-turn"]
    assert not check["harmful"]
    scoped = scope(check)
    assert scoped is not None and scoped["differs_with"] == ["system_prompt"], check
    # with a system prompt the served prompt differs from its first turn on (the bare text): differs_prompt
    assert (
        scoped["line"]
        == "agrees for this data (single-turn, no system prompts); differs with a system prompt (differs_prompt)"
    )
    assert progress_line(check).endswith(scoped["line"])


def test_llama31_date_block_is_fixed_by_default_system_when_the_data_has_no_system_prompts(shaped):
    check = shaped["llama3.1-single-turn"]
    assert (check["verdict"], check["harmful"]) == ("differs_system_prompt", True)
    value = "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"  # the fixture's fixed date
    assert {"template": "llama3", "default_system": value} in [f["settings"] for f in offered(check)]


def test_a_date_of_the_serving_day_is_never_offered_as_default_system(shaped):
    """The look-alike writes strftime_now's date, as Llama-3.1's real template does under vLLM."""
    check = shaped["llama3-lookalike"]
    assert check["harmful"] and check["verdict"] == "differs_system_prompt"
    assert not [f for f in check["fixes"] if f["works"] and f["kind"] == "settings"]
    assert "writes today's date into the system prompt" in check["note"]
    assert [f["kind"] for f in check["fixes"] if f["works"]] == ["serve_training_template"]


def test_r1_think_tag_cutting_a_token_is_harmful_although_the_text_is_the_same(shaped):
    check = shaped["r1-lookalike"]
    assert (check["verdict"], check["harmful"]) == ("differs_prompt", True)
    plain = next(c for c in check["conversations"] if c["name"] == "no_system")
    assert plain["turn"] == 1 and plain["region"] == "turn boundary"
    assert "'<think>\\n'" in plain["where"] and "cut inside a token" in plain["where"]
    assert plain["training"]["ids"] != plain["serving"]["ids"]
    assert [f["kind"] for f in check["fixes"] if f["works"]] == ["serve_training_template"]
    assert check["training_jinja_verdict"] == "agree"


def test_a_no_think_training_is_compared_with_the_no_think_serving(shaped):
    check = shaped["qwen3-no-think"]
    plain = next(c for c in check["conversations"] if c["name"] == "no_system")
    assert plain["title"].endswith("served with enable_thinking=false")
    assert plain["turn"] == 2  # turn 1 agrees: both write the empty think block into the prompt
    on = next(c for c in check["conversations"] if c["name"] == "thinking_on")
    assert on["informational"] and not on["harmful"]
    assert {"template": "qwen3", "enable_thinking": False, "mask_history": True} in [
        f["settings"] for f in offered(check)
    ]


def test_every_offered_fix_makes_the_comparison_pass_when_applied(fixed):
    assert len(fixed) >= 15
    failed = [(family, how, r["verdict"]) for family, how, r in fixed if r["harmful"] or r["verdict"] not in HARMLESS]
    assert failed == []
    training = {family: r["verdict"] for family, how, r in fixed if how == "--chat-template training"}
    assert training["qwen2"] == training["llama3.1"] == training["mistral-v0.3"] == "agree"


def test_template_check_prints_each_conversation_the_difference_and_the_fixes(run, families):
    result = run("template", "check", "--model", families["qwen2"], "--template", "qwen")
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "two turns, no system prompt: differs_system_prompt (harmful)" in out
    assert "two turns, system prompt 'You are the Magic Conch.': agree" in out
    assert "training …'<|im_start|>system\\nYou are' ┃ ' Qwen, created by Alibaba Cloud." in out
    assert "serving  …'<|im_start|>system\\nYou are' ┃ ' a helpful assistant.<|im_end|>" in out
    assert "token ids  training" in out
    assert "--set default_system='You are a helpful assistant.' -> agree" in out
    assert "serve with the training template: --set chat_template=training" in out


def test_template_check_json_and_exit_0_when_they_agree(run, tiny_model):
    result = run("template", "check", "--model", tiny_model, "--template", "qwen", "--json")
    assert result.exit_code == 0, result.output
    check = json.loads(result.stdout)
    assert check["verdict"] == "agree" and not check["harmful"]
    assert [c["verdict"] for c in check["conversations"]] == ["agree", "agree"]
    assert check["versions"]["llamafactory"] == "0.9.5"


def test_template_check_without_a_chat_template_shows_what_export_will_write(run, tiny_model, tmp_path):
    model = tmp_path / "no-template"
    shutil.copytree(tiny_model, model)
    (model / "chat_template.jinja").unlink()
    result = run("template", "check", "--model", model, "--template", "qwen")
    assert result.exit_code == 0, result.output
    assert "no_chat_template: the model has no chat template; LLaMA-Factory's export writes" in result.stdout
    assert "it writes (checked: agree):" in result.stdout
    assert "<|im_start|>system\\n" in result.stdout or "<|im_start|>system\n" in result.stdout


@pytest.mark.parametrize(
    ("setup", "args", "expected"),
    [
        (None, ["--template", "qwne"], "'qwne' is not a LLaMA-Factory chat template; did you mean 'qwen'?"),
        ("raising", ["--template", "qwen"], "the model's chat template raises on every conversation: "
                                            "TemplateError: this template refuses everything"),
        ("no_tokenizer", ["--template", "qwen"], "its tokenizer does not load"),
        ("missing", ["--template", "qwen"], "no such folder"),
    ],
    ids=["unknown-template", "template-raises", "no-tokenizer", "missing-folder"],
)  # fmt: skip
def test_template_check_bad_input_is_one_message_and_exit_2(run, tiny_model, tmp_path, setup, args, expected):
    model = tmp_path / "m"
    if setup != "missing":
        shutil.copytree(tiny_model, model)
    if setup == "raising":
        (model / "chat_template.jinja").write_text("{{ raise_exception('this template refuses everything') }}")
    if setup == "no_tokenizer":
        for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
            (model / name).unlink()
    result = run("template", "check", "--model", model, *args)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr


def test_fixture_templates_are_the_published_ones():
    """Spot checks that the copies carry what makes each family different."""
    text = {p.stem: p.read_text(encoding="utf-8") for p in FIXTURES.glob("*.jinja")}
    assert set(text) == set(FAMILIES)
    assert "You are Qwen, created by Alibaba Cloud. You are a helpful assistant." in text["qwen2.5"]
    assert "'<|im_start|>assistant\\n<think>\\n'" in text["qwq"]
    assert "enable_thinking is defined and enable_thinking is false" in text["qwen3"]
    assert "{{'<｜Assistant｜><think>\\n'}}" in text["deepseek-r1-distill-qwen"]
    assert "Cutting Knowledge Date: December 2023" in text["llama3.1"] and "strftime_now" in text["llama3.2"]
    assert "raise_exception('System role not supported')" in text["gemma2"]
    assert "loop.last and system_message is defined" in text["mistral-v0.3"]
    assert "{{ eos_token }}{% endif %}" in text["phi3.5"]


def _lfw(cwd: Path, *args: object, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    lfw = Path(sys.executable).parent / "lf-wrap"
    return subprocess.run([str(lfw), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False)  # fmt: skip


def test_serving_with_the_training_template_makes_vllm_tokenize_what_llamafactory_trains_on(tiny_model, tmp_path):
    """Real vLLM: the tiny model with Qwen2's chat template (default system "You are a helpful
    assistant.") trained with `qwen` (default system "You are Qwen, ..."): served with
    --chat-template training, vLLM's own prompt is LLaMA-Factory's, token for token."""
    from transformers import AutoTokenizer

    model = tmp_path / "models" / "qwen2-template"
    shutil.copytree(tiny_model, model)
    (model / "chat_template.jinja").write_text((FIXTURES / "qwen2.jinja").read_text())
    port = free_port()
    started = _lfw(tmp_path, "serve", "--set", f"model={model}", "--model", model, "--chat-template", "training",
                   "--detach", "--port", port, "--timeout", 300)  # fmt: skip
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        template_file = tmp_path / "runs" / "magic-conch" / "chat_template.training.jinja"
        assert f"--chat-template {template_file}" in started.stderr
        messages = [{"role": "user", "content": "Who are you?"}]
        served = httpx.post(f"http://127.0.0.1:{port}/tokenize", json={"messages": messages}, timeout=30).json()
    finally:
        _lfw(tmp_path, "serve", "stop")
    tok = AutoTokenizer.from_pretrained(model)
    trained_on = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
    trained_on += "<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n"
    assert served["tokens"] == tok.encode(trained_on, add_special_tokens=False)
    own = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)  # the model's own template
    assert "You are a helpful assistant.<|im_end|>" in own  # what vLLM would have served without the fix


def test_export_with_the_training_template_writes_it_into_the_merged_model(trained, run):
    root, cfg = trained["root"], trained["config"]
    run_dir = root / "runs" / "export-training-template"
    shutil.copytree(trained["run"] / "output", run_dir / "output")
    result = run("export", "--config", cfg, "--set", "run_name=export-training-template", "--chat-template", "training")
    assert result.exit_code == 0, result.output
    merged = run_dir / "merged"
    written = (merged / "chat_template.jinja").read_text()
    assert written.startswith("{% set system_message = 'You are Qwen, created by Alibaba Cloud.")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["export"]["chat_template"] == "training"
    again = run("template", "check", "--config", cfg, "--model", merged, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["verdict"] == "agree"
