"""The hardware check: GPUs from nvidia-smi, bf16 from the training environment's torch,
CPU training when there is none, and a warning with the arithmetic for big models on CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lf_wrap.model.folder import count_parameters
from lf_wrap.project.hardware import FAKE_ENV, Gpu, detect, parse_gpus
from tests.helpers import fake_safetensors, shell_script

H100 = "NVIDIA H100 80GB HBM3, 81559 MiB, 9.0"
V100 = "Tesla V100-SXM2-16GB, 16384 MiB, 7.0"


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """PATH holding only what a test puts there (a fake nvidia-smi or none)."""
    monkeypatch.delenv(FAKE_ENV, raising=False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def test_nvidia_smi_lines_are_parsed_with_or_without_units():
    gpus = parse_gpus(f"{H100}\nTesla T4, 15360, 7.5\n\n")
    assert gpus == (Gpu("NVIDIA H100 80GB HBM3", 81559, "9.0"), Gpu("Tesla T4", 15360, "7.5"))
    assert gpus[0].bf16_capable and not gpus[1].bf16_capable


def test_no_nvidia_smi_means_cpu_training_decided_at_once(machine):
    hw = detect(Path("/nonexistent/python"))
    assert hw.use_cpu and not hw.bf16
    assert hw.summary() == "hardware: no CUDA GPU (nvidia-smi not found): training on CPU"
    values = hw.train_values()
    assert (values["use_cpu"].value, values["bf16"].value, values["fp16"].value) == (True, False, False)
    assert all(v.source.startswith("hardware: ") for v in values.values())


def test_a_gpu_the_training_torch_can_use_trains_in_bf16(machine, tmp_path):
    shell_script(machine / "nvidia-smi", f"echo '{H100}'")
    python = shell_script(tmp_path / "env" / "python", """echo '{"cuda": true, "bf16": true, "torch": "2.7.1"}'""")
    hw = detect(python)
    assert hw.cuda and hw.bf16 and not hw.use_cpu
    assert hw.summary() == (
        "hardware: 1 x NVIDIA H100 80GB HBM3 (81559 MiB, compute 9.0) "
        "(nvidia-smi, torch 2.7.1 in the training environment): training on GPU with bf16"
    )
    values = hw.train_values()
    assert (values["use_cpu"].value, values["bf16"].value, values["fp16"].value) == (False, True, False)


def test_an_older_gpu_gets_fp16_and_a_bf16_model_gets_a_caveat(machine, tmp_path):
    shell_script(machine / "nvidia-smi", f"echo '{V100}'")
    python = shell_script(tmp_path / "env" / "python", """echo '{"cuda": true, "bf16": false, "torch": "2.7.1"}'""")
    values = detect(python).train_values(model_dtype="bfloat16")
    assert (values["bf16"].value, values["fp16"].value) == (False, True)
    assert "compute capability below 8.0" in values["bf16"].source
    assert "watch the loss for overflow" in values["fp16"].source


def test_gpus_that_the_training_torch_cannot_use_mean_cpu(machine, tmp_path):
    shell_script(machine / "nvidia-smi", f"echo '{H100}'")
    python = shell_script(
        tmp_path / "env" / "python", """echo '{"cuda": false, "bf16": false, "torch": "2.7.1+cpu"}'"""
    )
    hw = detect(python)
    assert hw.use_cpu
    assert "torch 2.7.1+cpu in the training environment cannot use them" in hw.summary()
    assert hw.summary().endswith("training on CPU")


def test_a_failing_nvidia_smi_means_no_gpu(machine):
    shell_script(
        machine / "nvidia-smi",
        "echo 'NVIDIA-SMI has failed because it could not communicate with the driver' >&2; exit 9",
    )
    hw = detect(None)
    assert hw.use_cpu and "nvidia-smi failed: NVIDIA-SMI has failed" in hw.summary()


def test_fake_gpus_from_the_environment(monkeypatch):
    monkeypatch.setenv(FAKE_ENV, f"{H100};{H100}")
    hw = detect(None)
    assert hw.cuda and hw.bf16 and hw.describe_gpus() == "2 x NVIDIA H100 80GB HBM3 (81559 MiB, compute 9.0)"
    monkeypatch.setenv(FAKE_ENV, "none")
    assert detect(None).use_cpu


USER_PROJECT = "model: m\ntemplate: qwen\ndatasets: [d]\n"


def test_render_on_a_gpu_machine_trains_on_the_gpu_in_bf16(run, write, monkeypatch):
    monkeypatch.setenv(FAKE_ENV, H100)
    result = run("render", "train", "--config", write("p.yaml", USER_PROJECT))
    assert result.exit_code == 0, result.output
    assert "hardware: 1 x NVIDIA H100 80GB HBM3" in result.stderr and "training on GPU with bf16" in result.stderr
    values = yaml.safe_load(result.stdout)
    assert (values["use_cpu"], values["bf16"], values["fp16"]) == (False, True, False)
    assert "bf16: true                                # hardware: 1 x NVIDIA H100" in result.stdout


def test_render_on_a_cpu_machine_trains_on_the_cpu(run, write, monkeypatch):
    monkeypatch.setenv(FAKE_ENV, "none")
    result = run("render", "train", "--config", write("p.yaml", USER_PROJECT))
    assert result.exit_code == 0, result.output
    assert "hardware: no CUDA GPU (LF_WRAP_FAKE_GPUS=none): training on CPU" in result.stderr
    values = yaml.safe_load(result.stdout)
    assert (values["use_cpu"], values["bf16"], values["fp16"]) == (True, False, False)


def test_the_project_file_wins_over_the_hardware(run, write, monkeypatch):
    monkeypatch.setenv(FAKE_ENV, H100)
    cfg = write("p.yaml", USER_PROJECT + "train:\n  use_cpu: true\n")
    values = yaml.safe_load(run("render", "train", "--config", cfg).stdout)
    assert (values["use_cpu"], values["bf16"], values["fp16"]) == (True, False, False)
    values = yaml.safe_load(
        run("render", "train", "--config", cfg, "--set", "use_cpu=false", "--set", "fp16=true").stdout
    )
    assert (values["use_cpu"], values["bf16"], values["fp16"]) == (False, False, True)


def test_parameters_are_counted_from_safetensors_headers(tiny_model, tmp_path):
    assert count_parameters(tiny_model) == 460_160  # what `lf-wrap model tiny` reports
    fake_safetensors(tmp_path / "model-00001-of-00002.safetensors", {"a": [1000, 2000], "b": [7]})
    fake_safetensors(tmp_path / "model-00002-of-00002.safetensors", {"c": [3, 4, 5]})
    assert count_parameters(tmp_path) == 2_000_000 + 7 + 60
    (tmp_path / "broken.safetensors").write_bytes(b"\xff" * 8)
    assert count_parameters(tmp_path) is None
    assert count_parameters(tmp_path / "nothing") is None


def test_a_big_model_on_cpu_is_warned_about_with_an_estimate(project, run, monkeypatch):
    monkeypatch.setenv(FAKE_ENV, "none")
    model = project / "models" / "tiny-qwen2"
    fake_safetensors(model / "extra.safetensors", {"big": [100_000, 2_000]})  # +200M parameters
    result = run("train", "--dry-run", "--no-template-check", "--set", "num_train_epochs=3")
    assert result.exit_code == 0, result.output
    err = result.stderr
    assert "warning: training a 200M-parameter model on CPU" in err
    assert "56 rows x ~" in err and "x 3 epochs" in err
    assert "x 6 x 200M parameters" in err and "GFLOP/s per core" in err
    assert "tokens counted as characters / 4" in err
    assert "Train on a machine with a CUDA GPU, or pick a smaller model." in err
    assert not (project / "runs").exists()


def test_a_small_model_on_cpu_is_not_warned_about(project, run, monkeypatch):
    monkeypatch.setenv(FAKE_ENV, "none")
    result = run("train", "--dry-run", "--no-template-check")
    assert result.exit_code == 0, result.output
    assert "warning: training a" not in result.stderr
    assert "hardware: no CUDA GPU (LF_WRAP_FAKE_GPUS=none): training on CPU" in result.stderr
