"""Validation throughput and memory: `lf-wrap data validate` vs a bare `json.loads`-per-line
loop over the same generated alpaca files (JSON Lines and JSON array, 50k and 200k rows).

Targets: at least 0.5x the bare loop's rows/s; JSON Lines memory flat as the file grows.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

from common import LFW, measure, save, table

ZH = "蟹堡王的神奇海螺为您服务美味蟹黄堡秘方海绵宝宝章鱼哥"
EN = [
    "the",
    "krusty",
    "krab",
    "magic",
    "conch",
    "answers",
    "questions",
    "about",
    "burgers",
    "and",
    "the",
    "secret",
    "formula",
]
BARE = {
    "jsonl": "import json, sys\nn = 0\nfor line in open(sys.argv[1], encoding='utf-8'):\n    if line.strip():\n        json.loads(line); n += 1\n",
    "array": "import json, sys\njson.load(open(sys.argv[1], encoding='utf-8'))\n",
}


def text(rng: random.Random, words: int) -> str:
    if rng.random() < 0.3:
        return "".join(rng.choice(ZH) for _ in range(words))
    return " ".join(rng.choice(EN) for _ in range(words))


def generate(path: Path, rows: int, kind: str, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        if kind == "array":
            f.write("[\n")
        for i in range(rows):
            row = {
                "instruction": text(rng, rng.randint(5, 30)),
                "input": text(rng, rng.randint(0, 20)),
                "output": text(rng, rng.randint(20, 120)),
            }
            line = json.dumps(row, ensure_ascii=False)
            if kind == "array":
                f.write(line + (",\n" if i < rows - 1 else "\n"))
            else:
                f.write(line + "\n")
        if kind == "array":
            f.write("]\n")


def best(cmd: list[str], runs: int) -> tuple[float, int]:
    results = [measure(cmd) for _ in range(runs)]
    assert all(r[0] == 0 for r in results), f"{cmd} failed"
    return min(r[1] for r in results), max(r[2] for r in results)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    sizes = [1000, 4000] if args.quick else [50_000, 200_000]
    runs = 1 if args.quick else 3
    out: dict[str, dict[str, float]] = {}
    rows_out = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("jsonl", "array"):
            for n in sizes:
                path = Path(tmp) / f"d{n}.{'jsonl' if kind == 'jsonl' else 'json'}"
                generate(path, n, kind)
                lfw_s, lfw_rss = best([LFW, "data", "validate", str(path)], runs)
                bare_s, bare_rss = best([sys.executable, "-c", BARE[kind], str(path)], runs)
                key = f"{kind}_{n}"
                out[key] = {
                    "rows": n,
                    "mb": path.stat().st_size / 1e6,
                    "lf_wrap_s": lfw_s,
                    "bare_s": bare_s,
                    "ratio": bare_s / lfw_s,
                    "lf_wrap_rows_per_s": n / lfw_s,
                    "bare_rows_per_s": n / bare_s,
                    "lf_wrap_peak_rss_mb": lfw_rss / 1024,
                    "bare_peak_rss_mb": bare_rss / 1024,
                }
                rows_out.append(
                    (
                        f"{kind} {n:,} rows ({out[key]['mb']:.0f} MB)",
                        f"lf-wrap {n / lfw_s:,.0f} rows/s, bare loop {n / bare_s:,.0f} rows/s -> "
                        f"{bare_s / lfw_s:.2f}x; peak RSS {lfw_rss / 1024:.0f} MB",
                    )
                )
    small, large = (out[f"jsonl_{n}"]["lf_wrap_peak_rss_mb"] for n in sizes)
    growth = large / small
    per_row = (large - small) * 1024 * 1024 / (sizes[1] - sizes[0])
    rows_out.append(
        (
            f"JSONL peak RSS {sizes[1]:,} / {sizes[0]:,} rows",
            f"{growth:.2f}x for {sizes[1] // sizes[0]}x the rows ({per_row:+.0f} bytes per extra row)",
        )
    )
    table(rows_out)
    worst = min(v["ratio"] for v in out.values())
    save(
        "validation",
        {
            "compares": "`lf-wrap data validate` vs a bare json.loads loop, same file",
            "summary": f"{worst:.2f}x the bare loop's speed at worst; JSONL peak RSS x{growth:.2f} for x{sizes[1] // sizes[0]} rows ({per_row:+.0f} B/row)",
            "target": ">= 0.5x; flat JSONL memory (<= 1.2x for 4x rows)",
            "met": worst >= 0.5 and growth <= 1.2,
            "bytes_per_extra_row": per_row,
            "files": out,
        },
    )


if __name__ == "__main__":
    main()
