"""report.html in a real browser (headless Chromium) at 1400 px: every image decodes and nothing
is wider than the page. Skipped where Chromium is not installed (Debian: apt-get install chromium)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from trainwell.experiments.compare import suite_report
from trainwell.experiments.report import write_report

from .synthetic import add_histories, result_from

BROWSER = next((b for b in ("chromium", "chromium-browser") if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="chromium not installed (apt-get install chromium): browser check skipped"
)

WIDTH = 1400  # px: a laptop browser window

CHECK = """<script>
window.addEventListener('load', () => {  // synchronous: the DOM is dumped right after the load event
  const images = [...document.images];
  const decoded = images.map(i => i.complete && i.naturalWidth > 0);  // a broken image has no natural size
  const width = document.documentElement.clientWidth;
  const over = [...document.body.querySelectorAll('*')].filter(e => e.getBoundingClientRect().right > width + 0.5)
    .map(e => e.tagName + ' ' + (e.textContent || e.alt || '').slice(0, 40));
  document.body.setAttribute('data-check',
    JSON.stringify({images: images.length, decoded: decoded.filter(Boolean).length, over: over}));
});
</script>"""


def in_browser(page: str, tmp_path) -> dict:
    """Load the page at WIDTH px with the check script added; what the script found."""
    home = Path(
        tempfile.mkdtemp(dir=tmp_path)
    )  # a fresh profile per page: a closing browser may still hold the last one
    path = home / "checked.html"
    path.write_text(page.replace("</body>", CHECK + "</body>"))
    cmd = [
        BROWSER,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={home / 'profile'}",
        f"--window-size={WIDTH},900",
        "--virtual-time-budget=30000",
        "--dump-dom",
        path.as_uri(),
    ]
    for _ in range(3):  # on a loaded machine the DOM is sometimes dumped before the script has finished
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(home)})
        found = re.search(r'data-check="([^"]*)"', done.stdout)
        if found:
            break
    assert found, f"the check script did not run: {re.search(r'<body[^>]*>', done.stdout)} {done.stderr[-500:]}"
    return json.loads(html.unescape(found.group(1)))


def demo_like(tmp_path):
    """An ablation with eight variants (small multiples, one long run) and a two-variant comparison."""
    ref = [3.42, 3.40, 3.45]
    ablation = {
        "full recipe": ref,
        **{f"no ingredient {i}": [x + 0.02 * i for x in ref] for i in range(1, 7)},
        "no early stopping": [x + 0.05 for x in ref],
    }
    baselines = [
        {"model": "linear regression", "test_mae": 3.336},
        {"model": "gradient boosting", "test_mae": 3.763},
        {"model": "generating function (noise floor)", "test_mae": 3.336},
    ]
    a = result_from(tmp_path / "ablation", ablation, name="ablation", baselines=baselines)
    add_histories(a, {"no early stopping": 200})
    b = result_from(
        tmp_path / "optimizers", {"sgd": [3.9, 4.0, 4.1], "adamw": ref}, name="optimizers", baselines=baselines[:2]
    )
    add_histories(b, {})
    for r in (a, b):
        r.out.mkdir(parents=True)
        write_report(r)
    return [a, b]


def test_report_renders_at_1400_px(tmp_path):
    results = demo_like(tmp_path)
    page = suite_report(results, tmp_path).read_text()
    found = in_browser(page, tmp_path)
    assert found["images"] == 6 and found["decoded"] == found["images"]  # differences, curves and learning rates, twice
    assert found["over"] == []
    single = in_browser((tmp_path / "ablation" / "report.html").read_text(), tmp_path)
    assert single["images"] == 3 and single["decoded"] == 3 and single["over"] == []


def test_the_check_sees_overflow_and_broken_images(tmp_path):
    page = (
        '<!DOCTYPE html><html><body><div style="width:2000px">wide</div>'
        '<img alt="broken" src="data:image/png;base64,AAAA"></body></html>'
    )
    found = in_browser(page, tmp_path)
    assert found["images"] == 1 and found["decoded"] == 0 and any(o.startswith("DIV wide") for o in found["over"])
