"""Validation throughput and memory: `lf-wrap data validate` vs a bare `json.loads`-per-line
loop over the same generated alpaca files (JSON Lines and JSON array, 50k and 200k rows).

Target: lf-wrap at least as fast as the bare stdlib loop (ratio >= 1.0x on every file), start-up
included; JSON Lines peak memory flat as the file grows (<= 1.2x for 4x the rows).

Also reported per file: the ratio against a bare loop with the parser lf-wrap uses (orjson), so
what the checks themselves cost is visible (below 1.0x there is expected: lf-wrap parses the
same way, then checks every row).

lf-wrap's modules are byte-compiled first (`compile_lf_wrap`), as `pip install` does for an
installed package: an editable install under PYTHONDONTWRITEBYTECODE=1 would otherwise compile
every module from source on every run, while the bare loops' stdlib is byte-compiled.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

from common import LFW, compile_lf_wrap, measure, save, table

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
BARE_ORJSON = {  # the parser lf-wrap uses, with nothing else
    "jsonl": "import orjson, sys\nn = 0\nfor line in open(sys.argv[1], 'rb'):\n    if line.strip():\n        orjson.loads(line); n += 1\n",
    "array": "import orjson, sys\norjson.loads(open(sys.argv[1], 'rb').read())\n",
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


def best_of(cmds: list[list[str]], runs: int) -> list[tuple[float, int]]:
    """(best seconds, peak RSS KiB) of each command, run in turn `runs` times: interleaved, so that
    this machine's drift over a minute does not favour whichever command went first."""
    results: list[list[tuple[int, float, int]]] = [[] for _ in cmds]
    for _ in range(runs):
        for i, cmd in enumerate(cmds):
            results[i].append(measure(cmd))
    for cmd, rs in zip(cmds, results, strict=True):
        assert all(r[0] == 0 for r in rs), f"{cmd} failed"
    return [(min(r[1] for r in rs), max(r[2] for r in rs)) for rs in results]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    sizes = [1000, 4000] if args.quick else [50_000, 200_000]
    runs = 1 if args.quick else 7  # best of 7, interleaved: a 0.2 s run on this machine varies by +-15%
    out: dict[str, dict[str, float]] = {}
    rows_out = []
    compile_lf_wrap()
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("jsonl", "array"):
            for n in sizes:
                path = Path(tmp) / f"d{n}.{'jsonl' if kind == 'jsonl' else 'json'}"
                generate(path, n, kind)
                (lfw_s, lfw_rss), (bare_s, bare_rss), (orjson_s, _) = best_of(
                    [
                        [LFW, "data", "validate", str(path)],
                        [sys.executable, "-c", BARE[kind], str(path)],
                        [sys.executable, "-c", BARE_ORJSON[kind], str(path)],
                    ],
                    runs,
                )
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
                    "bare_orjson_s": orjson_s,
                    "ratio_vs_orjson": orjson_s / lfw_s,
                }
                rows_out.append(
                    (
                        f"{kind} {n:,} rows ({out[key]['mb']:.0f} MB)",
                        f"lf-wrap {n / lfw_s:,.0f} rows/s, bare loop {n / bare_s:,.0f} rows/s -> "
                        f"{bare_s / lfw_s:.2f}x (vs an orjson loop {orjson_s / lfw_s:.2f}x); "
                        f"peak RSS {lfw_rss / 1024:.0f} MB",
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
    worst_orjson = min(v["ratio_vs_orjson"] for v in out.values())
    save(
        "validation",
        {
            "compares": "`lf-wrap data validate` vs a bare json.loads loop, same file",
            "summary": f"{worst:.2f}x the bare loop's speed at worst ({worst_orjson:.2f}x an orjson loop's); "
            f"JSONL peak RSS x{growth:.2f} for x{sizes[1] // sizes[0]} rows ({per_row:+.0f} B/row)",
            "target": ">= 1.0x; flat JSONL memory (<= 1.2x for 4x rows)",
            "met": worst >= 1.0 and growth <= 1.2,
            "worst_ratio": worst,
            "worst_ratio_vs_orjson": worst_orjson,
            "bytes_per_extra_row": per_row,
            "files": out,
        },
    )


if __name__ == "__main__":
    main()
