"""A real headless browser for tests: Debian's Chromium driven by Selenium through Debian's
chromium-driver (`make setup-browser` installs both), and screenshots kept as test artifacts.

Selenium rather than Playwright, measured by bench/chat_web_choice.py: nothing may download a
browser here, and Debian ships chromium-driver from the same source package as chromium, so
driver and browser always match; Playwright against a system Chromium it was not built for
works until the two drift apart. Selenium is also the smaller install.

    from tests.browser import save_screenshot   # the `browser` fixture comes with conftest.py

    def test_page(browser):
        browser.get(url)
        save_screenshot(browser, "my-page")      # -> test-artifacts/my-page.png

The fixture fails (never skips) when the browser is missing: a browser test that does not
run must not look like one that passed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
DRIVER_PATHS = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
SETUP_HINT = "run `make setup-browser` (Debian: apt-get install chromium chromium-driver)"


def artifacts_dir() -> Path:
    """Where screenshots go: $LF_WRAP_TEST_ARTIFACTS, else test-artifacts/ in the checkout."""
    path = Path(os.environ.get("LF_WRAP_TEST_ARTIFACTS") or REPO / "test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_screenshot(driver: Any, name: str) -> Path:
    """Save what the browser shows as test-artifacts/NAME.png; returns the path."""
    path = artifacts_dir() / f"{name}.png"
    if not driver.save_screenshot(str(path)):
        raise AssertionError(f"the browser could not save a screenshot to {path}")
    return path


def _find(env: str, candidates: tuple[str, ...], what: str) -> str:
    for path in (os.environ.get(env), *candidates, shutil.which(Path(candidates[0]).name)):
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return path
    pytest.fail(f"{what} not found (looked at ${env}, {', '.join(candidates)}): {SETUP_HINT}")


def make_driver(width: int = 1280, height: int = 860) -> Any:
    """A headless Chromium WebDriver; close it with driver.quit()."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is not installed: run `make setup` (it is in requirements/dev.lock)")
    binary = _find("LF_WRAP_CHROMIUM", CHROMIUM_PATHS, "Chromium")
    driver_path = _find("LF_WRAP_CHROMEDRIVER", DRIVER_PATHS, "chromedriver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--force-device-scale-factor=1"):  # fmt: skip
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver_path), options=options)


@pytest.fixture
def browser() -> Iterator[Any]:
    """A fresh headless Chromium (Selenium WebDriver) per test."""
    driver = make_driver()
    try:
        yield driver
    finally:
        driver.quit()
