"""The HTML page in a real headless browser (Debian's chromium), with name resolution switched off so
that anything not embedded would fail to load. Slow and needs chromium: `apt-get install -y chromium`,
then `pytest -m slow tests/report/test_browser.py`; it skips without it."""
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from viral.report.build import build_report

from .conftest import paper_runs
from .test_build import fake_features

pytestmark = pytest.mark.slow
TAB_BLUE = np.array([31, 119, 180])  # matplotlib's first colour: only the embedded figures draw it


def screenshot(page, out, width=1400, height=4000):
    """Render `page` headless to the PNG `out` (offline: every host name fails to resolve)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--host-resolver-rules=MAP * ~NOTFOUND", "--hide-scrollbars", f"--window-size={width},{height}",
                    f"--screenshot={out}", page.as_uri()], check=True, capture_output=True, timeout=180)
    return np.asarray(Image.open(out).convert("RGB"))


def test_the_page_shows_its_tables_and_embedded_figures_in_chromium(tmp_path):
    out = tmp_path / "reports"
    build_report(paper_runs(), out, fake_features())
    pixels = screenshot(out / "report.html", tmp_path / "page.png")
    assert pixels.shape[:2] == (4000, 1400)
    near_blue = (np.abs(pixels.astype(int) - TAB_BLUE).sum(axis=2) < 30).sum()
    assert near_blue > 1000  # the figures' bars and points were drawn from the data URIs
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200  # text, tables and plots, not a blank page
