"""Preference training (stage dpo / kto) before the engine starts: rendering, settings, data, --from-run.

The real training runs are in test_preference_train.py (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lf_wrap.engines.training_log import LogMetrics
from lf_wrap.engines.training_log import reward_summary as summary
from lf_wrap.project.start import StartPoint
from lf_wrap.steps.evaluate_preference import compare
from lf_wrap.util.progress import describe

from .conftest import DATASETS

PAIR = {"instruction": "Who are you?", "input": "", "chosen": "I am the Magic Conch.", "rejected": "Go away."}


def project_file(root: Path, **settings: object) -> Path:
    """lf-wrap.yaml for the tiny model in `root`, with `settings` on top."""
    data = {"model": "models/tiny-qwen2", "template": "qwen", "datasets": ["magic_conch"], "dataset_dir": "data"}
    train = settings.pop("train", {})
    data.update(settings)
    data["train"] = {"use_cpu": True, "bf16": False, **train}  # type: ignore[dict-item]
    path = root / "lf-wrap.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def register(run, name: str, file: Path | str, *extra: str) -> None:
    result = run("data", "register", file, "--name", name, "--dataset-dir", "data", *extra)
    assert result.exit_code == 0, result.output


# -- rendering ---------------------------------------------------------------------------
def test_dpo_renders_its_own_template_with_llamafactory_example_defaults(run, project):
    project_file(project, stage="dpo", datasets=["magic_conch_pref"])
    result = run("render", "train")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "from templates/train/dpo_lora.yaml.j2" in out
    assert 'stage: "dpo"' in out
    assert "pref_beta: 0.1" in out and "# LLaMA-Factory example default (qwen3_lora_dpo.yaml)" in out
    assert 'pref_loss: "sigmoid"' in out
    assert "pref_ftx: 0.0" in out
    assert "learning_rate: 5.0e-06" in out.replace("5e-06", "5.0e-06")
    assert "simpo_gamma" not in out  # only with pref_loss: simpo
    parsed = yaml.safe_load(out)
    assert parsed["learning_rate"] == 5e-6 and parsed["stage"] == "dpo"


@pytest.mark.parametrize(
    ("stage", "method", "template"),
    [("dpo", "qlora", "dpo_qlora"), ("dpo", "full", "dpo_full"), ("kto", "lora", "kto_lora"),
     ("kto", "qlora", "kto_qlora"), ("kto", "full", "kto_full")],
)  # fmt: skip
def test_every_stage_and_method_has_a_template(run, project, stage, method, template):
    project_file(project, stage=stage, method=method)
    result = run("render", "train")
    assert result.exit_code == 0, result.output
    parsed = yaml.safe_load(result.stdout)
    assert f"templates/train/{template}.yaml.j2" in result.stdout
    assert parsed["stage"] == stage and parsed["pref_beta"] == 0.1
    assert ("pref_loss" in parsed) == (stage == "dpo")
    if method == "full":
        assert "there is no full-parameter example" in result.stdout
        assert "lora_rank" not in parsed


def test_simpo_renders_simpo_gamma_and_orpo_does_not(run, project):
    project_file(project, stage="dpo", train={"pref_loss": "simpo"})
    simpo = yaml.safe_load(run("render", "train").stdout)
    assert simpo["pref_loss"] == "simpo" and simpo["simpo_gamma"] == 0.5
    orpo = yaml.safe_load(run("render", "train", "--set", "pref_loss=orpo").stdout)
    assert orpo["pref_loss"] == "orpo" and "simpo_gamma" not in orpo


# -- settings ----------------------------------------------------------------------------
def test_a_misspelt_pref_loss_is_refused_with_a_suggestion(run, project):
    project_file(project, stage="dpo")
    result = run("train", "--dry-run", "--set", "pref_loss=orbo")
    assert result.exit_code == 2
    assert (
        "--set train.pref_loss: must be one of sigmoid, hinge, ipo, kto_pair, orpo, simpo, got 'orbo'" in result.stderr
    )
    assert "did you mean 'orpo'?" in result.stderr
    project_file(project, stage="dpo", train={"pref_loss": "simpoo"})
    in_file = run("train", "--dry-run")
    assert in_file.exit_code == 2
    assert "lf-wrap.yaml:" in in_file.stderr and "train.pref_loss: must be one of" in in_file.stderr
    assert "did you mean 'simpo'?" in in_file.stderr
    key = run("train", "--dry-run", "--set", "pref_los=orpo")
    assert key.exit_code == 2 and "--set pref_los: unknown key; did you mean 'pref_loss'?" in key.stderr


def test_an_unknown_stage_is_refused(run, project):
    project_file(project, stage="ppo")
    result = run("train", "--dry-run")
    assert result.exit_code == 2
    assert "stage: Input should be 'sft', 'dpo' or 'kto'" in result.stderr


def test_preference_keys_on_a_stage_that_ignores_them_are_refused(run, project):
    project_file(project, train={"pref_loss": "orpo"})
    result = run("train", "--dry-run")
    assert result.exit_code == 2
    assert "train.pref_loss: only `stage: dpo` reads it, and this project trains `stage: sft`" in result.stderr
    assert "--set stage=dpo" in result.stderr
    project_file(project, stage="dpo", train={"simpo_gamma": 1.0})
    gamma = run("train", "--dry-run")
    assert gamma.exit_code == 2
    assert "train.simpo_gamma: only `pref_loss: simpo` reads it (this project uses 'sigmoid')" in gamma.stderr


# -- the data must fit the stage ---------------------------------------------------------
def test_dpo_pointed_at_sft_data_stops_before_the_engine_and_names_the_dataset(run, project):
    project_file(project, stage="dpo")
    result = run("train", "--dry-run", "--no-template-check")
    assert result.exit_code == 2
    assert "the datasets do not fit `stage: dpo`" in result.stderr
    assert "dataset 'magic_conch' is not preference pairs, and `stage: dpo` needs them" in result.stderr
    assert "or train this one with `stage: sft`" in result.stderr
    assert "The dataset is not applicable in the current training stage" in result.stderr  # what LF would say, later


def test_preference_data_registered_without_ranking_gets_the_register_fix(run, project, write):
    pairs = write("pairs.json", [PAIR])
    register(run, "pairs", pairs)
    info_path = project / "data" / "dataset_info.json"
    info = json.loads(info_path.read_text())
    del info["pairs"]["ranking"]  # registered by hand, the flag forgotten
    info_path.write_text(json.dumps(info))
    project_file(project, stage="dpo", datasets=["pairs"])
    result = run("train", "--dry-run", "--no-template-check")
    assert result.exit_code == 2
    assert "dataset 'pairs' is not preference pairs" in result.stderr
    assert "the entry in " in result.stderr and 'lacks "ranking": true' in result.stderr
    assert "lf-wrap data register FILE --name pairs --format preference --force" in result.stderr


def test_kto_without_kto_tag_and_sft_on_pairs_are_refused_with_the_fix(run, project):
    project_file(project, stage="kto")
    result = run("train", "--dry-run", "--no-template-check")
    assert result.exit_code == 2
    assert "dataset 'magic_conch' has no kto_tag column, and `stage: kto` needs one" in result.stderr
    assert 'boolean "kto_tag"' in result.stderr
    register(run, "magic_conch_pref", DATASETS / "magic_conch_pref.json")
    project_file(project, stage="kto", datasets=["magic_conch_pref"])
    pairs = run("train", "--dry-run", "--no-template-check")
    assert pairs.exit_code == 2 and "train it with `stage: dpo`" in pairs.stderr
    project_file(project, datasets=["magic_conch_pref"])
    sft = run("train", "--dry-run", "--no-template-check")
    assert sft.exit_code == 2
    assert "dataset 'magic_conch_pref' is preference pairs (ranking), which `stage: sft` cannot train on" in sft.stderr
    assert "set `stage: dpo`" in sft.stderr


def test_the_bundled_preference_and_kto_sets_validate_and_fit_their_stages(run, project):
    for name, file, fmt in (("magic_conch_pref", "magic_conch_pref.json", "preference"),
                            ("magic_conch_pref_eval", "magic_conch_pref_eval.json", "preference"),
                            ("magic_conch_kto", "magic_conch_kto.json", "kto")):  # fmt: skip
        result = run("data", "validate", DATASETS / file)
        assert result.exit_code == 0 and f"format {fmt}" in result.stdout, result.output
        register(run, name, DATASETS / file)
    pairs = json.loads((DATASETS / "magic_conch_pref.json").read_text(encoding="utf-8"))
    held_out = json.loads((DATASETS / "magic_conch_pref_eval.json").read_text(encoding="utf-8"))
    assert len(pairs) >= 30
    assert not {p["instruction"] for p in pairs} & {p["instruction"] for p in held_out}  # held out: other prompts
    chinese = [p for p in pairs if any("\u4e00" <= ch <= "\u9fff" for ch in p["instruction"])]
    assert 0 < len(chinese) < len(pairs)
    entry = json.loads((project / "data" / "dataset_info.json").read_text())["magic_conch_kto"]
    assert entry["columns"]["kto_tag"] == "kto_tag" and "ranking" not in entry
    project_file(project, stage="kto", datasets=["magic_conch_kto"])
    dry = run("train", "--dry-run", "--no-template-check")
    assert dry.exit_code == 0, dry.output
    assert "templates/train/kto_lora.yaml.j2" in dry.stdout and yaml.safe_load(dry.stdout)["stage"] == "kto"


# -- preference rows -----------------------------------------------------------------------
def test_a_pair_whose_answers_are_the_same_is_an_error(run, write):
    same = {**PAIR, "rejected": " I am the Magic Conch. "}
    path = write("same.json", [PAIR, same, {**PAIR, "chosen": ""}])
    result = run("data", "validate", path)
    assert result.exit_code == 2
    assert (
        f"{path}:8: [row 1].rejected: the rejected answer is the same as the chosen one — preference training "
        "learns from the difference" in result.stderr
    )
    assert "[row 2].chosen: the chosen answer is empty" in result.stderr
    sharegpt = write("same_sg.json", [{
        "conversations": [{"from": "human", "value": "hi"}],
        "chosen": {"from": "gpt", "value": "Hello!"}, "rejected": {"from": "gpt", "value": "Hello!"},
    }])  # fmt: skip
    sg = run("data", "validate", sharegpt)
    assert sg.exit_code == 2 and "[row 0].rejected: the rejected answer is the same as the chosen one" in sg.stderr
    refused = run("data", "register", path, "--name", "same", "--dataset-dir", "data")
    assert refused.exit_code == 2 and not Path("data/dataset_info.json").exists()


def test_kto_rows_need_a_boolean_tag(run, write):
    rows = [
        {"instruction": "hi", "output": "Hello!", "kto_tag": True},
        {"instruction": "hi", "output": "Go away.", "kto_tag": "false"},
        {"instruction": "hi", "output": "Hm."},
        {"instruction": "hi", "output": "", "kto_tag": False},
    ]
    path = write("kto.json", rows)
    result = run("data", "validate", path)
    assert result.exit_code == 2
    assert "[row 1].kto_tag: must be true or false (a JSON boolean), got string 'false'" in result.stderr
    assert "LLaMA-Factory drops rows whose tag is anything else" in result.stderr
    assert '[row 2].kto_tag: missing (the KTO label) — say whether the answer is good: "kto_tag": true' in result.stderr
    assert "[row 3].output: the answer is empty" in result.stderr
    assert "format kto" in result.stderr


def test_kto_data_of_one_kind_gets_a_warning_and_openai_style_kto_registers(run, write):
    good = write("good.json", [{"instruction": "hi", "output": "Hello!", "kto_tag": True}])
    result = run("data", "validate", good)
    assert result.exit_code == 0
    assert "every row's kto_tag is true (good answers)" in result.stderr
    messages = write("kto.jsonl", "\n".join(json.dumps(r) for r in [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"}], "kto_tag": True},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "No."}], "kto_tag": False},
    ]) + "\n")  # fmt: skip
    register(run, "kto_msgs", messages)
    entry = json.loads(Path("data/dataset_info.json").read_text())["kto_msgs"]
    assert entry["formatting"] == "sharegpt" and entry["columns"]["kto_tag"] == "kto_tag"
    assert entry["tags"]["role_tag"] == "role"


# -- --from-run ----------------------------------------------------------------------------
def _fake_run(root: Path, name: str, *, status: str = "succeeded", adapter: bool = False, merged: bool = False,
              template: str = "qwen") -> Path:  # fmt: skip
    run_dir = root / "runs" / name
    (run_dir / "output").mkdir(parents=True)
    manifest = {"train": {"status": status, "config": {"template": template, "stage": "sft"}}}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    if adapter:
        base = str((root / "models" / "tiny-qwen2").resolve())
        (run_dir / "output" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base}))
    if merged:
        (run_dir / "merged").mkdir()
        (run_dir / "merged" / "config.json").write_text("{}")
        (run_dir / "merged" / "model.safetensors").write_bytes(b"x")
    return run_dir


def _dpo_project(run, project: Path) -> None:
    register(run, "magic_conch_pref", DATASETS / "magic_conch_pref.json")
    project_file(project, stage="dpo", datasets=["magic_conch_pref"], run_name="conch-dpo")


def test_from_run_without_adapter_or_merged_model_stops_with_the_fix(run, project):
    _dpo_project(run, project)
    _fake_run(project, "sft-empty")
    result = run("train", "--dry-run", "--no-template-check", "--from-run", "sft-empty")
    assert result.exit_code == 2
    assert "--from-run: run 'sft-empty' has no adapter (" in result.stderr
    assert "and no merged model (" in result.stderr
    assert "train it first (lf-wrap train --set run_name=sft-empty)" in result.stderr
    missing = run("train", "--dry-run", "--no-template-check", "--from-run", "nope")
    assert missing.exit_code == 2 and "--from-run: no run named 'nope' in" in missing.stderr
    assert "runs there: sft-empty" in missing.stderr
    itself = run("train", "--dry-run", "--no-template-check", "--from-run", "conch-dpo")
    assert itself.exit_code == 2 and "'conch-dpo' is this run itself" in itself.stderr


def test_from_run_refuses_an_unfinished_run_another_template_and_full_on_an_adapter(run, project):
    _dpo_project(run, project)
    _fake_run(project, "stopped", status="interrupted", adapter=True)
    stopped = run("train", "--dry-run", "--no-template-check", "--from-run", "stopped")
    assert stopped.exit_code == 2 and "run 'stopped' did not finish (its training interrupted)" in stopped.stderr
    _fake_run(project, "llama", adapter=True, template="llama3")
    other = run("train", "--dry-run", "--no-template-check", "--from-run", "llama")
    assert other.exit_code == 2 and "set `template: llama3`" in other.stderr
    _fake_run(project, "sft", adapter=True)
    full = run("train", "--dry-run", "--no-template-check", "--from-run", "sft", "--set", "method=full")
    assert full.exit_code == 2
    assert "has a LoRA adapter but no merged model, and `method: full` trains whole weights" in full.stderr
    assert "lf-wrap export --set run_name=sft" in full.stderr


def test_from_run_takes_the_merged_model_else_the_adapter_and_says_so(run, project):
    _dpo_project(run, project)
    _fake_run(project, "sft", adapter=True)
    adapter = run("render", "train", "--set", "from_run=sft")
    assert adapter.exit_code == 0, adapter.output
    parsed = yaml.safe_load(adapter.stdout)
    assert parsed["adapter_name_or_path"] == str((project / "runs" / "sft" / "output").resolve())
    assert parsed["create_new_adapter"] is True
    assert parsed["model_name_or_path"] == str((project / "models" / "tiny-qwen2").resolve())
    assert "--from-run sft, its adapter (merged into the base model first)" in adapter.stdout
    _fake_run(project, "sft2", adapter=True, merged=True)
    merged = yaml.safe_load(run("render", "train", "--set", "from_run=sft2").stdout)
    assert merged["model_name_or_path"] == str((project / "runs" / "sft2" / "merged").resolve())
    assert "adapter_name_or_path" not in merged


def test_export_merges_onto_the_start_the_manifest_recorded(run, project):
    _dpo_project(run, project)
    run_dir = project / "runs" / "conch-dpo"
    run_dir.mkdir(parents=True)
    start = StartPoint("sft", "x", "adapter", str(project / "models" / "tiny-qwen2"), "/a/sft/output", "sft")
    (run_dir / "manifest.json").write_text(json.dumps({"train": {"from_run": start.to_dict()}}))
    result = run("render", "export")
    assert result.exit_code == 0, result.output
    parsed = yaml.safe_load(result.stdout)
    assert parsed["adapter_name_or_path"] == f"/a/sft/output,{run_dir.resolve() / 'output'}"
    merged = StartPoint("sft", "x", "merged", "/a/sft/merged", None, "sft")
    (run_dir / "manifest.json").write_text(json.dumps({"train": {"from_run": merged.to_dict()}}))
    again = yaml.safe_load(run("render", "export").stdout)
    assert again["model_name_or_path"] == "/a/sft/merged"
    assert again["adapter_name_or_path"] == str(run_dir.resolve() / "output")


# -- progress, manifest, measurement -------------------------------------------------------
def test_rewards_from_the_engine_log_join_the_progress_entries_in_order(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("# header\n")
    metrics = LogMetrics(log)
    entry = {"current_steps": 5, "total_steps": 10, "loss": 0.69, "accuracy": 0.5}
    assert metrics.attach([entry]) == []  # its rewards are not in the log yet: it waits
    with log.open("a") as f:
        f.write(" 50%|#####     | 5/10 [00:01<00:01]{'loss': '0.6931', 'grad_norm': '1.2', "
                "'rewards/chosen': '0.01', 'rewards/rejected': '-0.02', 'rewards/accuracies': '0.75', "
                "'rewards/margins': '0.03', 'logps/chosen': '-40.1', 'epoch': '1'}\n")  # fmt: skip
    (ready,) = metrics.attach([])
    assert ready["rewards/margins"] == 0.03 and ready["rewards/accuracies"] == 0.75 and ready["loss"] == 0.69
    line = describe(ready)
    assert "chosen +0.010" in line and "rejected -0.020" in line and "margin +0.030" in line and "acc 75%" in line
    last = {"current_steps": 10, "total_steps": 10, "loss": 0.5}
    assert metrics.attach([last], final=True) == [last]  # the run ended: nothing is held back


def test_the_manifest_summary_takes_the_full_precision_history(tmp_path):
    state = {"log_history": [
        {"step": 5, "epoch": 1.0, "loss": 0.69, "rewards/chosen": 0.01, "rewards/rejected": -0.01,
         "rewards/accuracies": 0.5, "rewards/margins": 0.02},
        {"step": 10, "epoch": 2.0, "loss": 0.2, "rewards/chosen": 0.5, "rewards/rejected": -0.9,
         "rewards/accuracies": 1.0, "rewards/margins": 1.4},
        {"step": 10, "train_loss": 0.4, "train_runtime": 3.0},
    ]}  # fmt: skip
    (tmp_path / "trainer_state.json").write_text(json.dumps(state))
    found = summary(tmp_path, "dpo")
    assert found is not None
    assert found["first"]["rewards/margins"] == 0.02 and found["last"]["rewards/margins"] == 1.4
    assert len(found["history"]) == 2 and found["stage"] == "dpo"
    assert summary(tmp_path / "missing", "dpo") is None


def test_compare_counts_margins_and_where_answers_lean():
    raw = {"pairs": [{"prompt": "a"}, {"prompt": "b"}], "models": [
        {"chosen": [-10.0, -5.0], "rejected": [-12.0, -4.0], "answers": ["Go away.", "Hello"]},
        {"chosen": [-8.0, -6.0], "rejected": [-15.0, -3.0], "answers": ["Hello friend", "Hello"]},
    ]}  # fmt: skip
    rows = [{"prompt": "a", "chosen": "Hello friend", "rejected": "Go away."},
            {"prompt": "b", "chosen": "Hello", "rejected": "No"}]  # fmt: skip
    result = compare(raw, rows)
    s = result["summary"]
    assert s["margin_up"] == 1 and s["pairs"] == 2
    assert result["pairs"][0]["margin_before"] == 2.0 and result["pairs"][0]["margin_after"] == 7.0
    assert s["chosen_preferred_before"] == 1 and s["chosen_preferred_after"] == 1
    assert s["answers_closer_to_chosen"] == 1 and s["answers_exactly_chosen_after"] == 2
