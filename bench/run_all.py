"""`make bench`: run every benchmark in bench/, print their tables, write results.json/.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["startup", "validation", "time_to_error", "overhead", "serving", "readiness", "eval", "pipeline", "gguf"]


def main() -> int:
    extra = sys.argv[1:]
    failed = []
    for name in ORDER:
        print(f"== {name}", flush=True)
        done = subprocess.run([sys.executable, str(HERE / f"bench_{name}.py"), *extra], check=False)
        if done.returncode != 0:
            failed.append(name)
    print((HERE / "results.md").read_text() if (HERE / "results.md").exists() else "")
    # the README's table is generated from results.json (docs/docgen.py), dated, with the machine
    subprocess.run([sys.executable, str(HERE.parent / "docs" / "docgen.py"), "--bench"], check=False)
    if failed:
        print(f"benchmarks that failed to run: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
