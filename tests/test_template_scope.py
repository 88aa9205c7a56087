"""Where a template check's agreement holds for the project's data only (model/template_agreement.py
`scope`): the verdict's own words, and the warning a request that goes there gets. The real
template checks these read are in tests/test_template_check.py; here, their shape."""

from __future__ import annotations

from typing import Any

from lf_wrap.model.template_agreement import progress_line, report_lines, scope, scope_warning

SINGLE_TURN = {"with_system": False, "multi_turn": False}


def checked(*conversations: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"template": "qwen", "verdict": "agree", "harmful": False, "data": SINGLE_TURN,
            "conversations": list(conversations), **top}  # fmt: skip


NO_SYSTEM = {"name": "no_system", "title": "two turns, no system prompt", "verdict": "agree", "harmful": False}
SYSTEM_DIFFERS = {"name": "system", "title": "two turns, system prompt", "verdict": "differs_system_prompt",
                  "harmful": False, "informational": True, "not_counted": "your data has no system prompts"}  # fmt: skip


def test_a_system_prompt_the_data_never_has_scopes_the_agreement_and_every_line_says_so(tmp_path):
    check = checked(NO_SYSTEM, SYSTEM_DIFFERS)
    found = scope(check)
    line = "agrees for this data (single-turn, no system prompts); differs with a system prompt (differs_system_prompt)"
    assert found == {"agrees_for": "single-turn, no system prompts", "differs_with": ["system_prompt"], "line": line}
    assert progress_line(check) == f"template check: 'qwen' and the model's chat template: {line}"
    assert f"scope     {line}" in report_lines(check, tmp_path)


def test_an_agreement_everywhere_a_harmful_verdict_or_a_harmless_answer_end_has_no_scope():
    assert scope(checked(NO_SYSTEM, {**SYSTEM_DIFFERS, "verdict": "agree"})) is None
    assert scope(checked(NO_SYSTEM, SYSTEM_DIFFERS, harmful=True)) is None  # train refuses it: said there
    assert scope(checked(NO_SYSTEM, SYSTEM_DIFFERS, serve_with="training")) is None  # serves what was trained
    after_stop = {**NO_SYSTEM, "verdict": "differs_answer_end", "note": "they differ only after '<|im_end|>'"}
    assert scope(checked(after_stop)) is None


def test_a_request_is_warned_only_when_it_uses_the_part_that_differs():
    found = scope(checked(NO_SYSTEM, SYSTEM_DIFFERS))
    user = {"role": "user", "content": "hi"}
    assert scope_warning(found, [user]) is None
    assert scope_warning(found, [user, {"role": "assistant", "content": "yo"}, user]) is None  # turns agree here
    warning = scope_warning(found, [{"role": "system", "content": "Be brief."}, user]) or ""
    assert warning.startswith("note: this request has a system prompt, which the model's chat template serves")
    assert scope_warning(None, [{"role": "system", "content": "x"}, user]) is None
