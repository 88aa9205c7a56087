"""lf-wrap.yaml and --set: validated up front, every problem named with file:line and key."""

from __future__ import annotations

import yaml

from lf_wrap.config import init_text


def test_render_train_with_no_project_file_uses_the_demo_settings(run, tmp_path):
    (tmp_path / "models" / "tiny-qwen2").mkdir(parents=True)
    result = run("render", "train")
    assert result.exit_code == 0, result.output
    values = yaml.safe_load(result.stdout)
    assert values["model_name_or_path"] == str(tmp_path / "models" / "tiny-qwen2")
    assert values["dataset"] == "magic_conch"
    assert values["template"] == "qwen"
    assert values["output_dir"] == str(tmp_path / "runs" / "magic-conch" / "output")
    assert values["finetuning_type"] == "lora"


def test_init_writes_a_project_file_that_loads_and_refuses_to_overwrite(run, tmp_path):
    assert run("init").exit_code == 0
    assert (tmp_path / "lf-wrap.yaml").read_text() == init_text()
    again = run("init")
    assert again.exit_code == 2
    assert "lf-wrap.yaml: exists" in again.stderr
    assert run("render", "train").exit_code == 0


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
    cfg = write("p.yaml", "run_name: demo\nmodle: x\ntemplate: qwenn\ntrain:\n  learning_rate: fast\n  lora_rnak: 8\n")
    result = run("render", "train", "--config", cfg)
    assert result.exit_code == 2
    err = result.stderr
    assert "4 problems in the settings:" in err
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
    assert "Traceback" not in result.output


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
