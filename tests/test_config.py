"""lf-wrap.yaml and --set: validated up front, every problem named with file:line and key."""

from __future__ import annotations

import yaml

from lf_wrap.util.paths import demo_project

DEMO = demo_project().read_text()


def _demo_line(key: str) -> int:
    return next(i for i, line in enumerate(DEMO.splitlines(), 1) if line.strip().startswith(f"{key}:"))


def comments(text: str) -> dict[str, str]:
    """key -> the comment beside its value in rendered YAML."""
    return {
        line.split(":", 1)[0]: line.split("  # ", 1)[1]
        for line in text.splitlines()
        if "  # " in line and not line.startswith("#")
    }


def test_render_train_with_no_project_file_uses_the_demo_file_and_says_so(run, tmp_path):
    (tmp_path / "models" / "tiny-qwen2").mkdir(parents=True)
    result = run("render", "train")
    assert result.exit_code == 0, result.output
    assert "using the built-in demo project (examples/magic_conch.yaml)" in result.stderr
    assert "lf-wrap init" in result.stderr
    values = yaml.safe_load(result.stdout)
    assert values["model_name_or_path"] == str(tmp_path / "models" / "tiny-qwen2")  # relative to the cwd
    assert values["dataset"] == "magic_conch"
    assert values["template"] == "qwen"
    assert values["output_dir"] == str(tmp_path / "runs" / "magic-conch" / "output")
    assert values["finetuning_type"] == "lora"
    demo = yaml.safe_load(DEMO)
    for key, value in demo["train"].items():
        assert values[key] == value, key
    assert f"# demo file examples/magic_conch.yaml:{_demo_line('learning_rate')}" in result.stdout


def test_the_bundled_demo_file_given_with_config_resolves_against_the_cwd_and_a_copy_against_its_folder(run, tmp_path):
    given = run("render", "train", "--config", demo_project())
    assert given.exit_code == 0, given.output
    assert "built-in demo" not in given.stderr  # given explicitly: no note
    assert yaml.safe_load(given.stdout)["dataset_dir"] == str(tmp_path / "data")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "copy.yaml").write_text(DEMO)
    copy = run("render", "train", "--config", "sub/copy.yaml")
    assert copy.exit_code == 0, copy.output
    assert yaml.safe_load(copy.stdout)["dataset_dir"] == str(tmp_path / "sub" / "data")
    assert "# sub/copy.yaml:" in copy.stdout


def test_init_demo_writes_the_demo_file_and_refuses_to_overwrite(run, tmp_path):
    result = run("init", "--demo")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "lf-wrap.yaml").read_text() == DEMO
    again = run("init", "--demo")
    assert again.exit_code == 2
    assert "lf-wrap.yaml: exists" in again.stderr and "--force" in again.stderr
    assert run("init", "--demo", "--force").exit_code == 0
    rendered = run("render", "train")
    assert rendered.exit_code == 0
    assert "built-in demo" not in rendered.stderr
    assert f"# lf-wrap.yaml:{_demo_line('learning_rate')}" in rendered.stdout


def test_init_without_model_dataset_or_demo_is_a_usage_error(run, tmp_path):
    result = run("init")
    assert result.exit_code == 2
    assert "pass --model DIR_OR_HUB_ID --dataset FILE_OR_NAME for your own project, or --demo" in result.stderr
    assert not (tmp_path / "lf-wrap.yaml").exists()


def test_a_user_project_gets_llamafactory_example_defaults_not_the_demo_values(run, write):
    cfg = write("p.yaml", "model: m\ntemplate: qwen\ndatasets: [my_data]\ndataset_dir: data\n")
    result = run("render", "train", "--config", cfg)
    assert result.exit_code == 0, result.output
    values = yaml.safe_load(result.stdout)
    expected = {
        "lora_rank": 8, "lora_alpha": 16, "lora_target": "all", "learning_rate": 1.0e-4, "num_train_epochs": 3.0,
        "lr_scheduler_type": "cosine", "warmup_ratio": 0.1, "per_device_train_batch_size": 1,
        "gradient_accumulation_steps": 8, "cutoff_len": 2048, "logging_steps": 10, "save_steps": 500,
    }  # fmt: skip
    assert {k: values[k] for k in expected} == expected
    assert values["output_dir"].endswith("/runs/my-data/output")  # run_name from the dataset name
    why = comments(result.stdout)
    assert why["learning_rate"] == "LLaMA-Factory example default (qwen3_lora_sft.yaml)"
    assert why["model_name_or_path"] == f"{cfg}:1"
    assert why["lora_alpha"].startswith("LLaMA-Factory default: 2 x lora_rank")
    assert why["use_cpu"].startswith("hardware: ")


def test_every_rendered_value_says_where_it_came_from(run, write):
    cfg = write("p.yaml", "model: m\ntemplate: qwen\ndatasets: [d]\ntrain:\n  lora_rank: 16\n")
    result = run("render", "train", "--config", cfg, "--set", "learning_rate=2e-4", "--set", "seed=7")
    assert result.exit_code == 0, result.output
    keys = [line for line in result.stdout.splitlines() if line and not line.startswith("#")]
    assert all("  # " in line for line in keys), [line for line in keys if "  # " not in line]
    text = result.stdout
    assert "lora_rank: 16" in text and f"# {cfg}:5" in text
    assert "lora_alpha: 32" in text  # follows the rank actually used
    assert "learning_rate: 0.0002" in text and "seed: 7" in text
    assert text.count("# --set") == 2
    assert "# hardware: " in text


def test_a_project_without_model_template_or_datasets_says_what_to_set(run, write):
    cfg = write("p.yaml", "run_name: x\n")
    result = run("render", "train", "--config", cfg)
    assert result.exit_code == 2
    err = result.stderr
    assert "3 problems in the settings:" in err
    assert f"{cfg}: model: missing; set `model:` to your base model's folder" in err
    assert f"{cfg}: template: missing; set `template:`" in err
    assert f"{cfg}: datasets: missing; set `datasets:`" in err
    assert "lf-wrap init --model DIR --dataset FILE" in err


def test_set_overrides_any_llamafactory_key_with_its_type(run):
    result = run("render", "train", "--set", "learning_rate=1e-4", "--set", "lora_rank=4",
                 "--set", "bf16=true", "--set", "seed=3", "--set", "method=qlora")  # fmt: skip
    assert result.exit_code == 0, result.output
    values = yaml.safe_load(result.stdout)
    assert values["learning_rate"] == 1e-4 and isinstance(values["learning_rate"], float)
    assert values["lora_rank"] == 4 and values["bf16"] is True and values["seed"] == 3
    assert values["quantization_bit"] == 4


def test_unknown_set_key_suggests_the_closest_one(run):
    result = run("render", "train", "--set", "learning_rte=1e-4")
    assert result.exit_code == 2
    assert "--set learning_rte: unknown key; did you mean 'learning_rate'?" in result.stderr


def test_all_problems_in_a_project_file_are_reported_at_once_with_lines(run, write):
    cfg = write(
        "p.yaml",
        "run_name: demo\nmodle: x\ntemplate: qwenn\ntrain:\n  learning_rate: fast\n  lora_rnak: 8\ndatasets: [d]\n",
    )
    result = run("render", "train", "--config", cfg)
    assert result.exit_code == 2
    err = result.stderr
    assert "5 problems in the settings:" in err  # and `model:` is missing
    assert f"{cfg}: model: missing" in err
    assert f"{cfg}:2: modle: unknown key; did you mean 'model'?" in err
    assert f"{cfg}:3: template: 'qwenn' is not a LLaMA-Factory chat template; did you mean 'qwen'?" in err
    assert f"{cfg}:5: train.learning_rate: must be a number, got 'fast'" in err
    assert f"{cfg}:6: train.lora_rnak: not a LLaMA-Factory train argument; did you mean 'lora_rank'?" in err


def test_keys_lf_wrap_sets_itself_say_where_to_set_them(run, write):
    cfg = write("p.yaml", "train:\n  model_name_or_path: /x\n  output_dir: /tmp/o\n")
    result = run("render", "train", "--config", cfg)
    assert result.exit_code == 2
    assert (
        f"{cfg}:2: train.model_name_or_path: lf-wrap sets this key itself; set `model:` at the top level"
        in result.stderr
    )
    assert "train.output_dir: lf-wrap sets this key itself" in result.stderr


def test_invalid_yaml_names_line_and_column(run, write):
    cfg = write("p.yaml", "run_name: demo\ntrain: [unclosed\n")
    result = run("render", "train", "--config", cfg)
    assert result.exit_code == 2
    assert f"{cfg}:3:1: invalid YAML" in result.stderr


def test_wrong_types_and_bad_names(run, write):
    cfg = write("p.yaml", "run_name: 'bad name'\nmethod: lorra\ndatasets: 'not,a,list'\n")
    result = run("render", "train", "--config", cfg)
    assert result.exit_code == 2
    assert f"{cfg}:2: method: Input should be 'lora', 'qlora' or 'full'" in result.stderr
    assert f"{cfg}:3: datasets: Input should be a valid list" in result.stderr


def test_set_without_equals_is_explained(run):
    result = run("render", "train", "--set", "learning_rate")
    assert result.exit_code == 2
    assert "--set 'learning_rate': expected KEY=VALUE" in result.stderr


def test_render_export_refuses_full_fine_tuning(run):
    result = run("render", "export", "--set", "method=full")
    assert result.exit_code == 2
    assert "method `full` trains the whole model: there is no adapter to merge" in result.stderr


def test_hostile_run_name_or_model_path_cannot_add_keys(run):
    result = run("render", "train", "--set", "model=/x\nevil: 1", "--set", "datasets=a")
    assert result.exit_code == 0, result.output
    values = yaml.safe_load(result.stdout)
    assert "evil" not in values
    assert values["model_name_or_path"].endswith("/x\nevil: 1")
    bad = run("render", "train", "--set", "run_name=x\nevil: 1")
    assert bad.exit_code == 2 and "invalid run name" in bad.stderr


def test_list_templates(run):
    result = run("render", "--list-templates")
    assert result.exit_code == 0
    names = result.stdout.split()
    assert "qwen" in names and "llama3" in names and len(names) > 100
