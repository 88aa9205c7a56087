"""Pipeline: `make demo` (tiny model -> register -> train -> export -> serve -> check) from a
clean clone with every install included, and the pipeline alone once installed.

Targets (this 2-core machine): <= 15 min from a clean clone, <= 4 min installed.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from common import REPO, save, table


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="only check that make knows the demo (make -n)")
    ap.add_argument("--no-fresh", action="store_true", help="skip the clean-clone run (it reinstalls everything)")
    args = ap.parse_args()
    if args.quick:
        subprocess.run(["make", "-n", "demo"], cwd=REPO, check=True, capture_output=True)
        print("  make -n demo: ok (quick mode runs nothing)")
        return
    installed = timed(["make", "demo", "PORT=8765"], REPO)
    fresh = None
    if not args.no_fresh:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["git", "clone", "-q", str(REPO), f"{tmp}/clone"], check=True)
            fresh = timed(["make", "demo", "PORT=8766"], Path(tmp) / "clone")
    rows = [("make demo, installed", f"{installed / 60:.1f} min")]
    if fresh is not None:
        rows.append(("make demo, clean clone (installs included)", f"{fresh / 60:.1f} min"))
    table(rows)
    save(
        "pipeline",
        {
            "compares": "`make demo` from a clean clone (with installs) and once installed",
            "summary": f"installed {installed / 60:.1f} min" + (f"; clean clone {fresh / 60:.1f} min" if fresh else ""),
            "target": "<= 4 min installed; <= 15 min clean clone",
            "met": installed <= 240 and (fresh is None or fresh <= 900),
            "seconds": {"installed": installed, "fresh": fresh},
        },
    )


if __name__ == "__main__":
    main()
