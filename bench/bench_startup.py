"""Start-up: `lf-wrap --help` and `lf-wrap data validate` (10 rows) vs `llamafactory-cli version`.

Target: lf-wrap at most 1/10 of LLaMA-Factory's start-up.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from common import LF_CLI, LFW, compile_lf_wrap, median_time, save, table


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    runs = 1 if args.quick else 5
    compile_lf_wrap()  # as installed: byte-compiled (this environment sets PYTHONDONTWRITEBYTECODE)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "ten.json"
        data.write_text(json.dumps([{"instruction": f"q{i}", "output": f"a{i}"} for i in range(10)]))
        help_s = median_time([LFW, "--help"], runs)
        validate_s = median_time([LFW, "data", "validate", str(data)], runs)
        lf_s = median_time([str(LF_CLI), "version"], runs)
    ratio_help, ratio_validate = help_s / lf_s, validate_s / lf_s
    table(
        [
            ("lf-wrap --help", f"{help_s:.3f} s"),
            ("lf-wrap data validate (10 rows)", f"{validate_s:.3f} s"),
            ("llamafactory-cli version", f"{lf_s:.3f} s"),
            ("ratio help / LLaMA-Factory", f"{ratio_help:.3f}"),
            ("ratio validate / LLaMA-Factory", f"{ratio_validate:.3f}"),
        ]
    )
    save(
        "startup",
        {
            "compares": "`lf-wrap --help` / `data validate` vs `llamafactory-cli version`",
            "summary": f"help {ratio_help:.3f}x, validate {ratio_validate:.3f}x of LLaMA-Factory's start-up",
            "target": "<= 0.1x",
            "met": max(ratio_help, ratio_validate) <= 0.1,
            "seconds": {"lf_wrap_help": help_s, "lf_wrap_validate": validate_s, "llamafactory_version": lf_s},
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main()
