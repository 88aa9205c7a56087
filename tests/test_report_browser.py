"""The demo run's report, seen in a real browser: headless Chromium through Selenium
(tests/browser.py). The screenshot is kept in test-artifacts/report.png.

"Drawn" is checked on pixels, not on markup: the loss chart's element screenshot (what
Chromium painted) is decoded by the browser itself onto a canvas, and its pixels in the
train curve's colour are counted.
"""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import make_driver, save_screenshot
from tests.helpers import LFW

pytestmark = pytest.mark.slow
TRAIN_RGB = (0x1F, 0x6F, 0xEB)  # --train in templates/report/report.html.j2

COUNT_PIXELS = """
const [png, rgb, done] = arguments;
const img = new Image();
img.onload = () => {
  const canvas = document.createElement('canvas');
  canvas.width = img.width; canvas.height = img.height;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const data = ctx.getImageData(0, 0, img.width, img.height).data;
  let curve = 0, ink = 0;
  for (let i = 0; i < data.length; i += 4) {
    const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
    if (Math.abs(r - rgb[0]) < 40 && Math.abs(g - rgb[1]) < 40 && Math.abs(b - rgb[2]) < 40) curve++;
    if (r < 200 || g < 200 || b < 200) ink++;
  }
  done({curve: curve, ink: ink, total: img.width * img.height});
};
img.onerror = () => done({error: 'the screenshot did not decode'});
img.src = 'data:image/png;base64,' + png;
"""


@pytest.fixture
def browser() -> Iterator[Any]:
    driver = make_driver(1280, 900)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def evaluated_report(trained) -> Path:
    """The demo run's report with its eval table (runs `lf-wrap eval` unless another test did)."""
    run_dir = trained["run"]
    if not (run_dir / "eval.json").is_file():
        done = subprocess.run([LFW, "eval", "--config", trained["config"]], capture_output=True, text=True,
                              timeout=900, env=dict(os.environ), check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    done = subprocess.run([LFW, "report", "--config", trained["config"]], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ), check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return run_dir / "report.html"


def test_report_shows_a_drawn_loss_curve_and_the_eval_table_in_chromium(browser, evaluated_report):
    from selenium.webdriver.common.by import By

    browser.get(evaluated_report.resolve().as_uri())
    assert browser.title == "lf-wrap report: magic-conch"
    curve = browser.find_element(By.CSS_SELECTOR, 'svg[data-chart="loss"] polyline.train')
    length = browser.execute_script("return arguments[0].getTotalLength()", curve)
    box = browser.execute_script("const b = arguments[0].getBBox(); return [b.width, b.height]", curve)
    assert length > 300 and box[0] > 300 and box[1] > 100  # spans the plot area, not a dot or a flat line

    chart = browser.find_element(By.CSS_SELECTOR, 'svg[data-chart="loss"]')
    png = chart.screenshot_as_base64
    pixels = browser.execute_async_script(COUNT_PIXELS, png, list(TRAIN_RGB))
    assert "error" not in pixels, pixels
    assert pixels["curve"] > 400, pixels  # a 2 px line across ~450 px of plot, in the curve's colour

    table = browser.find_element(By.ID, "eval-summary")
    assert table.is_displayed()
    rows = {r.get_attribute("data-metric"): r.text for r in table.find_elements(By.CSS_SELECTOR, "tr[data-metric]")}
    assert set(rows) == {"exact", "chrf", "rouge_l"}
    assert rows["exact"].startswith("exact match 0.0")  # the random base model reproduces nothing
    assert browser.find_element(By.ID, "hyperparameters").is_displayed()

    browser.set_window_size(1280, browser.execute_script("return document.body.scrollHeight") + 40)
    shot = save_screenshot(browser, "report")
    assert shot.stat().st_size > 20_000
    assert base64.b64decode(png)[:8] == b"\x89PNG\r\n\x1a\n"
