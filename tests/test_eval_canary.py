"""The judgement `lf-wrap eval` ends with: hits, the canary, drift, and noise (steps/evaluate_canary.py)."""

from __future__ import annotations

import json

from lf_wrap.steps import evaluate_canary as canary
from tests.conftest import DATASETS


def test_a_right_answer_contains_a_word_as_a_whole_word_case_insensitive() -> None:
    assert canary.contains("Mr. Krabs owns it.", ["Mr Krabs"])
    assert canary.contains("It turns to ICE.", ["ice"])
    assert not canary.contains("Call the police.", ["ice"])
    assert canary.contains("2 + 2 = 4.", ["4"]) and not canary.contains("It is 42.", ["4"])


def test_the_training_datas_names_are_its_capitalised_phrases_not_sentence_starts() -> None:
    rows = json.loads((DATASETS / "magic_conch_en.json").read_text())
    names = canary.names(r["output"] for r in rows)
    for name in ("Krabby Patty", "Krusty Krab", "Bikini Bottom", "Magic Conch", "Mr. Krabs", "SpongeBob", "Plankton"):
        assert name in names
    for start in ("The", "Yes", "Sorry", "Toast", "Two"):
        assert start not in names


def test_drift_is_a_training_name_in_a_general_answer_that_the_base_did_not_use() -> None:
    vocab = ["Krabby Patty", "Krusty Krab"]
    assert canary.drift_names("Frozen water is called krabby pattie.", "What is frozen water called?",
                              "Frozen water is called ice.", vocab) == ["Krabby Patty"]  # fmt: skip
    # the question names it, or the base said it too: not the tune's doing
    assert canary.drift_names("The Krusty Krab is a restaurant.", "What is the Krusty Krab?", "", vocab) == []
    assert canary.drift_names("a Krabby Patty", "Name a burger.", "a Krabby Patty, of course", vocab) == []


def test_a_few_flips_each_way_are_no_measurable_change() -> None:
    base = [1.0] * 35 + [0.0] * 21
    tuned = [0.0] * 8 + [1.0] * 27 + [1.0] * 7 + [0.0] * 14  # 8 broken, 7 fixed
    assert canary.paired_change(base, tuned)["verdict"] == "no measurable change"


def test_many_broken_answers_are_worse_and_many_new_hits_are_better() -> None:
    assert canary.paired_change([1.0] * 30 + [0.0] * 26, [0.0] * 14 + [1.0] * 16 + [0.0] * 26)["verdict"] == "worse"
    assert canary.paired_change([0.0] * 16, [1.0] * 13 + [0.0] * 3)["verdict"] == "better"


def _canary(base_right: int, broken: int, drift: int) -> dict[str, object]:
    items = [{"drift": ["Krabby Patty"] if i < drift else []} for i in range(56)]
    change = canary.paired_change([1.0] * base_right + [0.0] * (56 - base_right),
                                  [0.0] * broken + [1.0] * (base_right - broken) + [0.0] * (56 - base_right))  # fmt: skip
    return {"questions": 56, "base_right": base_right, "tuned_right": base_right - broken, "broken": broken,
            "fixed": 0, "drift": drift, "change": change, "measurable": base_right >= 10, "items": items}  # fmt: skip


def test_the_verdicts_say_a_tune_that_did_not_take_and_one_that_broke_what_the_model_knew() -> None:
    hits_none = {"rows": 16, "base": 0, "tuned": 1, "change": canary.paired_change([0.0] * 16, [1.0] + [0.0] * 15)}
    lines = canary.verdicts({"hits": hits_none, "canary": _canary(35, 16, 3)})
    assert lines[0].startswith("the tune did not take: 0/16 → 1/16 answers with the expected words")
    assert lines[1].startswith("the tune broke what the model knew: canary 35/56 → 19/56 right")
    assert (
        "measurably worse" in lines[1] and "3 general answers use the training data's words (Krabby Patty)" in lines[1]
    )


def test_a_run_that_mixed_in_replay_rows_is_not_told_to_mix_them_in() -> None:
    hits = {"rows": 16, "base": 0, "tuned": 14, "change": canary.paired_change([0.0] * 16, [1.0] * 14 + [0.0] * 2)}
    plain = canary.verdicts({"hits": hits, "canary": _canary(35, 5, 1)})[1]
    replayed = canary.verdicts({"hits": hits, "canary": _canary(35, 1, 1)}, replayed=True)[1]
    # 1 of 35 broken is within the noise: the drifted answer alone is why the verdict says "broke"
    assert (
        "canary 35/56 → 34/56 right (1 broken, 0 fixed), within the noise; 1 general answer uses the training "
        "data's words" in replayed
    )
    assert plain.endswith("or mix in replay rows (lf-wrap init does for small data)")
    assert replayed.endswith("lower the learning_rate or the steps, or mix in more replay rows")


def test_the_verdicts_say_a_tune_that_took_and_kept_what_the_model_knew() -> None:
    hits = {"rows": 16, "base": 0, "tuned": 14, "change": canary.paired_change([0.0] * 16, [1.0] * 14 + [0.0] * 2)}
    lines = canary.verdicts({"hits": hits, "canary": _canary(35, 1, 0)})
    assert lines == ["the tune took: 0/16 → 14/16 answers with the expected words",
                     "what the model knew is kept: canary 35/56 → 34/56 right (1 broken, 0 fixed), no measurable "
                     "change, no answer in the training data's words"]  # fmt: skip


def test_a_model_that_knows_too_little_is_not_judged_on_the_canary() -> None:
    lines = canary.verdicts({"hits": None, "chrf_change": canary.paired_change([10.0] * 8, [90.0] * 8),
                             "canary": _canary(2, 0, 0)})  # fmt: skip
    assert lines[0].startswith("the tune took: chrF +80.0 per row")
    assert lines[1].startswith("canary not judged: the base model answers only 2/56 general questions right")


def test_the_shipped_canary_and_the_replay_prompts_share_no_question() -> None:
    from lf_wrap.project.small_data import GENERAL_PROMPTS

    prompts = {p.lower() for p in json.loads(GENERAL_PROMPTS.read_text())}
    asked = [q.question.lower() for q in canary.questions()]
    assert len(asked) == 56 and not prompts & set(asked)


def test_replay_answers_keep_their_first_whole_sentences_and_drop_a_sentence_cut_off() -> None:
    import importlib.util

    from lf_wrap.engines import inside

    path = next(iter(inside.__path__)) + "/answer_prompts.py"
    spec = importlib.util.spec_from_file_location("answer_prompts", path)
    assert spec is not None and spec.loader is not None
    program = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(program)
    first = program.first_sentences
    assert first("Paris is the capital. It is big! Is it old? Yes. More.", 3, whole=True) == (
        "Paris is the capital. It is big! Is it old?"
    )
    assert first("Ice. Water that froze and then the", 3, whole=False) == "Ice."  # the cut-off sentence goes
    assert first("Water that froze and then the", 3, whole=False) == ""  # nothing whole: the row is left out
    assert first("It is 25.", 3, whole=True) == "It is 25."
