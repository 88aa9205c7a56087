"""Which libraries for `lf-wrap chat --web` and its browser test? Measured, not guessed.

1. The chat page: Gradio's ChatInterface (what LLaMA-Factory's webchat and most tutorials
   use) against a small static page on Starlette + Uvicorn (the ASGI stack vLLM itself
   serves with). For each: the disk a fresh virtual environment grows by when it is
   installed, and the start-up time of a minimal chat app: from `python app.py` to the
   first `GET /` answered 200 (median of --runs).
2. The browser driver for the test, both pointed at Debian's /usr/bin/chromium (neither
   may download a browser here): Playwright-python against Selenium (+ Debian's
   chromium-driver, which Selenium needs): install size, and the time to start headless
   Chromium, load a page and take a screenshot (median of --runs).

Each candidate goes into its own throwaway venv (pip, exact versions); nothing is
installed into .venv. Prints a table and writes bench/chat_web_choice.json. Not part of
`make bench` (a one-off decision, like demo_sweep.py): `python bench/chat_web_choice.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

GRADIO_APP = """
import sys, gradio as gr
def echo(message, history):
    return message
gr.ChatInterface(fn=echo, title="chat").launch(server_name="127.0.0.1", server_port=int(sys.argv[1]))
"""

STARLETTE_APP = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, StreamingResponse
from starlette.routing import Route
PAGE = "<!doctype html><title>chat</title><div id=log></div><textarea></textarea><script>/* fetch + stream */</script>"
async def page(request):
    return HTMLResponse(PAGE)
async def chat(request):
    body = await request.json()
    async def gen():
        yield body["message"]
    return StreamingResponse(gen(), media_type="application/x-ndjson")
app = Starlette(routes=[Route("/", page), Route("/api/chat", chat, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""

PLAYWRIGHT_RUN = f"""
from playwright.sync_api import sync_playwright
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path={CHROMIUM!r}, headless=True)
    page = browser.new_page()
    page.set_content("<h1>hello</h1>")
    page.screenshot(path="shot.png")
    browser.close()
"""

SELENIUM_RUN = f"""
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
opts = webdriver.ChromeOptions()
opts.binary_location = {CHROMIUM!r}
for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
    opts.add_argument(a)
driver = webdriver.Chrome(service=Service({CHROMEDRIVER!r}), options=opts)
driver.get("data:text/html,<h1>hello</h1>")
driver.save_screenshot("shot.png")
driver.quit()
"""

CANDIDATES: dict[str, dict[str, Any]] = {
    "gradio": {"pip": ["gradio==6.31.0"], "kind": "web", "app": GRADIO_APP},
    "starlette+uvicorn": {"pip": ["starlette==1.10.0", "uvicorn==0.54.0"], "kind": "web", "app": STARLETTE_APP},
    "playwright": {"pip": ["playwright==1.65.2"], "kind": "browser", "run": PLAYWRIGHT_RUN},
    "selenium": {"pip": ["selenium==4.51.0"], "kind": "browser", "run": SELENIUM_RUN, "apt": "chromium-driver"},
}


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python*/site-packages"))


def apt_size(package: str) -> int:
    """Installed-Size of a Debian package (KiB in dpkg's status), in bytes; 0 when not installed."""
    out = subprocess.run(["dpkg-query", "-W", "-f=${Installed-Size}", package], capture_output=True, text=True)
    return int(out.stdout or 0) * 1024 if out.returncode == 0 else 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def web_start(python: Path, app: Path, cwd: Path) -> float:
    """Seconds from starting the app to its first `GET /` answered 200."""
    import urllib.request

    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "NO_PROXY": "*"}
    start = time.perf_counter()
    log = (cwd / f"{app.stem}.log").open("ab")
    proc = subprocess.Popen([str(python), str(app), str(port)], cwd=cwd, env=env, stdout=log, stderr=log)
    try:
        while time.perf_counter() - start < 120:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{app} exited with {proc.returncode}: {(cwd / f'{app.stem}.log').read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("no answer within 120 s")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def browser_run(python: Path, script: Path, cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run([str(python), str(script)], cwd=cwd, check=True, capture_output=True, timeout=120)
    return time.perf_counter() - start


def save(results: dict[str, Any]) -> None:
    out = HERE / "chat_web_choice.json"
    old = json.loads(out.read_text()) if out.exists() else {}
    payload = {"cpus": os.cpu_count(), "python": sys.version.split()[0],
               "candidates": {**old.get("candidates", {}), **results}}  # fmt: skip
    out.write_text(json.dumps(payload, indent=2) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", help="comma-separated candidate names")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(CANDIDATES)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="chat-web-choice-") as tmp:
        root = Path(tmp)
        base = root / "empty"
        subprocess.run([sys.executable, "-m", "venv", str(base)], check=True)
        baseline = du(site_packages(base))
        for name in names:
            c = CANDIDATES[name]
            venv = root / name.replace("+", "_")
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            python = venv / "bin" / "python"
            t = time.perf_counter()
            subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *c["pip"]],
                           check=True)  # fmt: skip
            install_s = time.perf_counter() - t
            size = du(site_packages(venv)) - baseline + (apt_size(c["apt"]) if "apt" in c else 0)
            script = root / f"app_{venv.name}.py"  # not gradio.py: it would shadow the package
            script.write_text(c.get("app") or c["run"])
            timer = web_start if c["kind"] == "web" else browser_run
            times = [timer(python, script, root) for _ in range(args.runs)]
            results[name] = {
                "kind": c["kind"],
                "pip": c["pip"],
                **({"apt": c["apt"]} if "apt" in c else {}),
                "install_mb": round(size / 1e6, 1),
                "install_s": round(install_s, 1),
                "start_s_median": round(statistics.median(times), 2),
                "start_s_all": [round(x, 2) for x in times],
            }
            r = results[name]
            save(results)
            print(f"{name:<18} {r['install_mb']:>7.1f} MB installed   start {r['start_s_median']:.2f} s (median of "
                  f"{args.runs}; {c['kind']})", flush=True)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
    print(f"wrote {HERE / 'chat_web_choice.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
