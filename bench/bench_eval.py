"""Eval: `lf-wrap eval` of the demo rows (base + tuned, one vLLM server with the LoRA adapter)
vs LLaMA-Factory's own way, `llamafactory-cli train` with `do_predict` + `predict_with_generate`
(HF generate), once for the base model and once with the adapter, on the same rows and model.

Both sides answer greedily with at most the same number of new tokens, and are timed as a
user runs them: whole commands, model loading and server start included. LLaMA-Factory's
settings are its example's (examples/train_lora/qwen3_lora_predict.yaml: per_device_eval_batch_size
1), plus what makes the two comparable (greedy, max_new_tokens, CPU). Target: >= 5x faster.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import LF_CLI, LFW, make_project, save, table

MAX_TOKENS = 256


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return took, done.stdout


@dataclass
class Side:
    """What LLaMA-Factory's predict run needs to ask the same rows the way lf-wrap's eval does."""

    model: Path
    template: str
    dataset: str
    dataset_dir: Path
    default_system: str | None = None


def predict_yaml(side: Side, adapter: Path | None, rows: int, out: Path) -> Path:
    lines = {
        "model_name_or_path": str(side.model),
        **({"adapter_name_or_path": str(adapter)} if adapter else {}),
        "trust_remote_code": True,
        "stage": "sft",
        "do_predict": True,
        "finetuning_type": "lora",
        "eval_dataset": side.dataset,
        "dataset_dir": str(side.dataset_dir),
        "template": side.template,
        **({"default_system": side.default_system} if side.default_system else {}),
        "cutoff_len": 256,
        "max_samples": rows,
        "overwrite_cache": True,
        "preprocessing_num_workers": 1,
        "output_dir": str(out),
        "overwrite_output_dir": True,
        "report_to": "none",
        "per_device_eval_batch_size": 1,
        "predict_with_generate": True,
        "do_sample": False,
        "max_new_tokens": MAX_TOKENS,
        "use_cpu": True,
    }
    path = out.with_suffix(".yaml")
    path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in lines.items()))
    return path


def compare(root: Path, ours_cmd: list[str], side: Side, adapter: Path, rows: int, env: dict[str, str]) -> dict:
    """Both ways on the same rows, timed as whole commands; the numbers and the table rows."""
    ours, out = timed(ours_cmd, root, env)
    result = json.loads(out)
    summary, timings = result["summary"], result["timings"]
    lf_env = {**env, "DISABLE_VERSION_CHECK": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lf_base, _ = timed([str(LF_CLI), "train", str(predict_yaml(side, None, rows, work / "p-base"))], root, lf_env)
        lf_tuned, _ = timed([str(LF_CLI), "train", str(predict_yaml(side, adapter, rows, work / "p-tuned"))], root,
                            lf_env)  # fmt: skip
        preds = (work / "p-tuned" / "generated_predictions.jsonl").read_text().splitlines()
        assert len(preds) == rows, f"LLaMA-Factory predicted {len(preds)} rows, expected {rows}"
        # generation alone: HF Trainer's predict_runtime (model loaded) vs lf-wrap's answering (server up)
        lf_gen = sum(json.loads((work / d / "predict_results.json").read_text())["predict_runtime"]
                     for d in ("p-base", "p-tuned"))  # fmt: skip
    return {"ours": ours, "lf_base": lf_base, "lf_tuned": lf_tuned, "lf_gen": lf_gen, "summary": summary,
            "timings": timings}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="8 rows, a short training run")
    ap.add_argument(
        "--real",
        type=Path,
        metavar="PROJECT",
        help="a real model instead: the project `make demo-real` writes (real/lf-wrap.yaml) and --run",
    )
    ap.add_argument("--run", help="with --real: the trained run whose adapter answers (e.g. magic-conch-en)")
    args = ap.parse_args()
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
    if args.real:
        real(args.real.resolve(), args.run, env)
        return
    rows = 8 if args.quick else 56
    epochs = "5" if args.quick else "100"
    with tempfile.TemporaryDirectory() as tmp:
        root = make_project(Path(tmp) / "project")
        subprocess.run([LFW, "train", "--set", f"num_train_epochs={epochs}"], cwd=root, env=env, check=True,
                       capture_output=True)  # fmt: skip
        side = Side(root / "models" / "tiny-qwen2", "qwen", "magic_conch", root / "data")
        ours_cmd = [
            LFW,
            "eval",
            "--rows",
            str(rows),
            "--max-tokens",
            str(MAX_TOKENS),
            "--json",
            "--no-report",
            "--no-fail-on",
        ]
        m = compare(root, ours_cmd, side, root / "runs" / "magic-conch" / "output", rows, env)
    report("eval", f"{rows} demo rows", rows, m)


def real(project: Path, run: str | None, env: dict[str, str]) -> None:
    """The same comparison on a real model: its training rows, the canary off (LLaMA-Factory has none)."""
    import yaml

    if not run:
        raise SystemExit("--real needs --run NAME: a trained run of that project")
    cfg = yaml.safe_load(project.read_text())
    root = project.parent
    dataset = cfg["datasets"][0]
    info = json.loads((root / cfg["dataset_dir"] / "dataset_info.json").read_text())
    rows = len(json.loads((root / cfg["dataset_dir"] / info[dataset]["file_name"]).read_text()))
    side = Side((root / cfg["model"]).resolve(), cfg["template"], dataset, root / cfg["dataset_dir"],
                (cfg.get("train") or {}).get("default_system"))  # fmt: skip
    ours_cmd = [LFW, "eval", "--config", str(project), "--set", f"run_name={run}", "--dataset", dataset, "--rows", "0",
                "--max-tokens", str(MAX_TOKENS), "--no-canary", "--json", "--no-report", "--no-fail-on"]  # fmt: skip
    m = compare(root, ours_cmd, side, root / cfg["runs_dir"] / run / "output", rows, env)
    report("eval_real", f"{rows} rows of {dataset}, {side.model.name}", rows, m)


def report(name: str, what: str, rows: int, m: dict) -> None:
    ours, lf_base, lf_tuned, lf_gen, summary, timings = (m[k] for k in ("ours", "lf_base", "lf_tuned", "lf_gen",
                                                                         "summary", "timings"))  # fmt: skip
    theirs = lf_base + lf_tuned
    ratio = theirs / ours
    our_gen = timings["base_answers_s"] + timings["tuned_answers_s"]
    gen_ratio = lf_gen / our_gen
    table([
        (f"lf-wrap eval, {rows} rows x base + tuned (one vLLM server, start included)", f"{ours:.1f} s"),
        ("llamafactory-cli do_predict + predict_with_generate, base", f"{lf_base:.1f} s"),
        ("llamafactory-cli do_predict + predict_with_generate, tuned", f"{lf_tuned:.1f} s"),
        ("speed-up, whole commands", f"{ratio:.1f}x"),
        ("  of which lf-wrap eval's vLLM start-up", f"{timings['server_start_s']:.1f} s"),
        ("generation alone: lf-wrap's answering vs LLaMA-Factory's predict_runtime",
         f"{our_gen:.1f} s vs {lf_gen:.1f} s = {gen_ratio:.1f}x"),
        ("tuned vs base exact match (lf-wrap eval)",
         f"{summary['metrics']['exact']['tuned']:.0f}% vs {summary['metrics']['exact']['base']:.0f}%"),
    ])  # fmt: skip
    save(
        name,
        {
            "compares": f"`lf-wrap eval` (vLLM, base + LoRA in one server) vs LLaMA-Factory do_predict + "
            f"predict_with_generate (base, then tuned), {what}, greedy, <= {MAX_TOKENS} new tokens",
            "summary": f"{ratio:.1f}x faster as whole commands ({ours:.0f} s vs {theirs:.0f} s, "
            f"{timings['server_start_s']:.0f} s of it vLLM start-up); generation alone {gen_ratio:.1f}x "
            f"({our_gen:.1f} s vs {lf_gen:.1f} s)",
            "target": ">= 5x faster",
            "met": ratio >= 5,
            "seconds": {
                "lf_wrap_eval": ours,
                "llamafactory_base": lf_base,
                "llamafactory_tuned": lf_tuned,
                "lf_wrap_answering": our_gen,
                "lf_wrap_server_start": timings["server_start_s"],
                "llamafactory_predict_runtime": lf_gen,
            },
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
