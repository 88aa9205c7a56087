"""`lf-wrap init --model ... --dataset ...`: a project file for the user's own model, each
value explained; bad input writes nothing at all."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import DATASETS


def files_under(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def workdir(tmp_path: Path, tiny_model: Path) -> Path:
    """The current directory, after `lf-wrap model tiny models/tiny-qwen2`."""
    shutil.copytree(tiny_model, tmp_path / "models" / "tiny-qwen2")
    return tmp_path


def test_init_writes_a_commented_project_for_the_model_and_registers_the_data(run, workdir):
    result = run("init", "--model", "models/tiny-qwen2", "--dataset", DATASETS / "magic_conch.json")
    assert result.exit_code == 0, result.output
    assert "wrote lf-wrap.yaml; registered 'magic_conch' in data/dataset_info.json" in result.stdout
    text = (workdir / "lf-wrap.yaml").read_text()
    config = yaml.safe_load(text)
    assert config["model"] == "models/tiny-qwen2"
    assert config["template"] == "qwen"
    assert config["datasets"] == ["magic_conch"] and config["run_name"] == "magic-conch"
    assert config["dataset_dir"] == "data"
    train = config["train"]
    # the small-data recipe (lf_wrap/project/small_data.py): ~100 steps, not 3 epochs; no replay rows from a
    # 0.46M-parameter model that knows nothing
    assert train["learning_rate"] == 1.0e-3 and train["num_train_epochs"] == 14.0 and train["lora_rank"] == 16
    assert train["per_device_train_batch_size"] == 4 and train["logging_steps"] == 7  # 196 steps / 30 points
    assert train["cutoff_len"] == 128  # the demo rows are at most 93 tokens with this tokenizer
    assert train["disable_gradient_checkpointing"] is True  # a model up to 1B: the same numbers, 18% faster
    assert "each layer's forward computed once, not twice: measured 678 -> 555 s" in text
    assert "use_cpu" not in train and "bf16" not in train  # decided from the machine at train time
    for line in text.splitlines():  # a comment beside every value
        if line.strip() and not line.lstrip().startswith("#"):
            assert "# " in line, line
    assert "# picked from the model folder: the model's chat template has ChatML <|im_start|> turns" in text
    assert "p99 of 56 rows is" in text and "rounded up to x64" in text
    assert "LLaMA-Factory example default (qwen3_lora_sft.yaml)" in text  # the scheduler, the warm-up
    assert (
        "about 100 x 8 rows seen, in whole passes (measured on SmolLM2-135M-Instruct, bench/recipe_sweep.json)" in text
    )
    assert "56 rows, 14 steps of 4 per epoch, 196 in all" in text
    assert "4 rows per step: twice LLaMA-Factory's updates for the same rows" in text
    assert "460k parameters" in text
    info = json.loads((workdir / "data" / "dataset_info.json").read_text())
    assert info["magic_conch"]["file_name"] == "magic_conch.json"


def test_small_data_takes_the_measured_passes_in_steps_of_4_and_larger_data_keeps_steps_of_8():
    from lf_wrap.project import small_data

    # the demo's 27 English rows and 63 replay rows: the 8 passes and 184 steps bench/recipe_sweep.json measured
    assert small_data.epochs_for(90) == (8.0, 4, 23, 184)
    # past a few hundred rows 3 passes already make ~100 steps of 8: what was not measured stays as it was
    assert small_data.epochs_for(300) == (3.0, 8, 38, 114)
    assert small_data.epochs_for(5000)[:2] == (3.0, 8)


def test_the_written_project_passes_train_dry_run(run, workdir):
    assert run("init", "--model", "models/tiny-qwen2", "--dataset", DATASETS / "magic_conch.json").exit_code == 0
    result = run("train", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "template check: 'qwen' and the model's chat template agree" in result.stderr
    values = yaml.safe_load(result.stdout)
    assert values["cutoff_len"] == 128 and values["learning_rate"] == 1.0e-3
    assert "# would run: " in result.stderr
    assert not (workdir / "runs").exists()


def test_a_registered_dataset_name_and_an_explicit_template(run, workdir):
    reg = run("data", "register", DATASETS / "magic_conch.json", "--name", "conch", "--dataset-dir", "d")
    assert reg.exit_code == 0, reg.output
    result = run("init", "--model", "models/tiny-qwen2", "--dataset", "conch", "--dataset-dir", "d",
                 "--template", "qwen", "sub/p.yaml")  # fmt: skip
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((workdir / "sub" / "p.yaml").read_text())
    assert config["model"] == "../models/tiny-qwen2" and config["dataset_dir"] == "../d"  # relative to the file
    assert config["datasets"] == ["conch"] and config["run_name"] == "conch"
    assert "--config sub/p.yaml" in result.stderr
    rendered = run("render", "train", "--config", workdir / "sub" / "p.yaml")
    assert rendered.exit_code == 0, rendered.output
    assert yaml.safe_load(rendered.stdout)["model_name_or_path"] == str(workdir / "models" / "tiny-qwen2")


def test_a_hub_id_is_found_in_the_local_cache_offline(run, workdir, tiny_model, monkeypatch):
    home = workdir / "hf-home"
    repo = home / "hub" / "models--org--tiny"
    sha = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny_model, repo / "snapshots" / sha)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    monkeypatch.setenv("HF_HOME", str(home))
    result = run("init", "--model", "org/tiny", "--dataset", DATASETS / "magic_conch.json")
    assert result.exit_code == 0, result.output
    text = (workdir / "lf-wrap.yaml").read_text()
    assert yaml.safe_load(text)["model"] == str((repo / "snapshots" / sha).resolve())
    assert "hub id org/tiny, from the local cache" in text


def test_without_transformers_cutoff_len_falls_back_to_the_llamafactory_default_and_says_why(run, workdir, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` fails
    result = run("init", "--model", "models/tiny-qwen2", "--dataset", DATASETS / "magic_conch.json")
    assert result.exit_code == 0, result.output
    assert "transformers is not installed in lf-wrap's environment" in result.stderr
    text = (workdir / "lf-wrap.yaml").read_text()
    assert yaml.safe_load(text)["train"]["cutoff_len"] == 2048
    line = next(x for x in text.splitlines() if "cutoff_len" in x)
    assert "LLaMA-Factory example default" in line and "transformers is not installed" in line


def _bad_model_no_config(root: Path) -> str:
    (root / "nocfg").mkdir()
    (root / "nocfg" / "model.safetensors").write_bytes(b"")
    return "nocfg"


def _unknown_family(root: Path, tiny_model: Path) -> str:
    shutil.copytree(tiny_model, root / "odd")
    (root / "odd" / "chat_template.jinja").write_text("User: {{ messages[0].content }}\nBot:")
    cfg = json.loads((root / "odd" / "config.json").read_text())
    (root / "odd" / "config.json").write_text(json.dumps({**cfg, "model_type": "mystery"}))
    tok = json.loads((root / "odd" / "tokenizer_config.json").read_text())
    tok.pop("chat_template", None)
    (root / "odd" / "tokenizer_config.json").write_text(json.dumps(tok))
    return "odd"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing-model", "model folder models/nope does not exist"),
        ("missing-model-or-hub-id", "model 'models/nope': no such folder"),
        ("model-without-config", "model folder nocfg is missing: config.json"),
        ("invalid-dataset", "bad.json: 1 error(s); not registered"),
        ("missing-dataset-file", "dataset file nope.json: no such file"),
        ("unregistered-name", "no dataset named 'nope'"),
        ("unknown-hub-id", "model 'org/unknown': no such folder ("),
        ("existing-file", "lf-wrap.yaml: exists"),
        ("unknown-family", "cannot tell which LLaMA-Factory chat template fits this model"),
        ("bad-template", "--template qwenn: not a LLaMA-Factory chat template"),
        ("name-taken", "a different dataset named 'magic_conch' is already registered"),
    ],
)
def test_bad_input_is_one_message_exit_2_and_writes_nothing(run, workdir, tiny_model, monkeypatch, case, expected):
    monkeypatch.setenv("HF_HOME", str(workdir / "empty-hf-home"))
    (workdir / "bad.json").write_text('[{"instruction": "q"}]')
    model, dataset, extra = "models/tiny-qwen2", str(DATASETS / "magic_conch.json"), []
    if case == "missing-model":
        model = "./models/nope"
    elif case == "missing-model-or-hub-id":
        model = "models/nope"
    elif case == "model-without-config":
        model = _bad_model_no_config(workdir)
    elif case == "invalid-dataset":
        dataset = "bad.json"
    elif case == "missing-dataset-file":
        dataset = "nope.json"
    elif case == "unregistered-name":
        dataset = "nope"
        (workdir / "data").mkdir()
        (workdir / "data" / "dataset_info.json").write_text("{}")
    elif case == "unknown-hub-id":
        model = "org/unknown"
    elif case == "existing-file":
        (workdir / "lf-wrap.yaml").write_text("# mine\n")
    elif case == "unknown-family":
        model = _unknown_family(workdir, tiny_model)
    elif case == "bad-template":
        extra = ["--template", "qwenn"]
    elif case == "name-taken":
        (workdir / "other.json").write_text('[{"instruction": "q", "output": "a"}]')
        assert run("data", "register", "other.json", "--name", "magic_conch").exit_code == 0
    before = files_under(workdir)
    result = run("init", "--model", model, "--dataset", dataset, *extra)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr, result.stderr
    if case == "unknown-hub-id":
        assert "and not in the local Hugging Face cache" in result.stderr
        assert "download it first with `lf-wrap model pull org/unknown`" in result.stderr
    assert files_under(workdir) == before  # no project file, no dataset registered, nothing changed


def test_model_without_dataset_is_a_usage_error(run, workdir):
    result = run("init", "--model", "models/tiny-qwen2")
    assert result.exit_code == 2
    assert "--model and --dataset go together" in result.stderr
    result = run("init", "--demo", "--model", "models/tiny-qwen2")
    assert result.exit_code == 2
    assert "--demo writes the built-in demo project" in result.stderr
    assert not (workdir / "lf-wrap.yaml").exists()


def test_force_replaces_an_existing_project_file(run, workdir):
    (workdir / "lf-wrap.yaml").write_text("# mine\n")
    result = run("init", "--model", "models/tiny-qwen2", "--dataset", DATASETS / "magic_conch.json", "--force")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((workdir / "lf-wrap.yaml").read_text())["template"] == "qwen"


@pytest.mark.slow
def test_init_proves_the_template_and_writes_the_fix_the_check_found(run, workdir, tiny_model):
    """Qwen2's own template has "You are a helpful assistant." where LLaMA-Factory's `qwen` trains
    Qwen2.5's system prompt: init picks `qwen` and writes the default_system the check proves."""
    from .template_families import FAMILIES, build

    model = build(FAMILIES["qwen2"], tiny_model, workdir / "models" / "qwen2")  # the tokenizer folder
    for part in [*tiny_model.glob("*.safetensors"), tiny_model / "config.json"]:  # and the tiny weights
        if not (model / part.name).exists():
            shutil.copy(part, model / part.name)
    result = run("init", "--model", model, "--dataset", DATASETS / "magic_conch.json")
    assert result.exit_code == 0, result.output
    text = (workdir / "lf-wrap.yaml").read_text()
    config = yaml.safe_load(text)
    assert config["template"] == "qwen"
    assert config["train"]["default_system"] == "You are a helpful assistant."
    assert "template check: differs_system_prompt, agrees with default_system='You are a helpful assistant.'" in text
    assert "runner-up" in text
    assert run("train", "--dry-run").exit_code == 0  # what init wrote passes the check


@pytest.mark.slow
def test_init_serves_with_the_training_template_when_no_setting_agrees(run, workdir, tiny_family):
    """Llama-3.1's template writes the serving day's date: no default_system can match it."""
    shutil.copytree(tiny_family("llama3"), workdir / "models" / "llama3")
    result = run("init", "--model", "models/llama3", "--dataset", DATASETS / "magic_conch.json")
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((workdir / "lf-wrap.yaml").read_text())
    assert config["template"] == "llama3" and config["chat_template"] == "training"
    dry = run("train", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "served with the training template (chat_template: training)" in dry.stderr
