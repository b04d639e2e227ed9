"""The HTML report in a real headless chromium (Debian's package), driven by Playwright.

Run by ``scripts/ci/browser.sh``, which installs chromium with apt and Playwright into its own
venv. Checks that the page loads with no console error, that every plot is a drawn SVG (a
visible box, many paths, coloured pixels in its own screenshot), that the sample browser opens,
and writes the full-page screenshot to ``build/browser/report.png`` (the README's picture,
``docs/report.png``, is one of these).
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from evalstream.cli.main import main

from _browser import FLAGS, chromium
from _runs import saved_run

pytestmark = pytest.mark.browser

SCREENSHOT = Path(__file__).parents[2] / "build" / "browser" / "report.png"


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (scripts/ci/browser.sh)"
    )
    image = pytest.importorskip("PIL.Image")
    binary = chromium()
    out = tmp_path / "out"
    for step, skill in enumerate((0.45, 0.55, 0.6, 0.7)):  # four checkpoints
        saved_run(
            out, skill, docs=150, model=f"org/model-step{1000 * (step + 1)}", score_noise=step
        )
    report = tmp_path / "report.html"
    assert main(["report", str(out), "-o", str(report), "--samples", "8"]) == 0
    problems: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=binary, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on(
                "request", lambda r: None if r.url.startswith("file:") else problems.append(r.url)
            )
            page.goto(report.as_uri(), wait_until="load")
            plots = page.locator("figure.plot svg")
            assert plots.count() == 4  # scores of acc and of score, suites, run over run
            for i in range(plots.count()):
                svg = plots.nth(i)
                box = svg.bounding_box()
                assert box is not None and box["width"] > 300 and box["height"] > 100
                page_width = svg.evaluate("s => s.closest('body').clientWidth")
                assert box["width"] >= page_width - 48 - 1, "a plot is narrower than the page"
                assert svg.evaluate("s => s.querySelectorAll('path').length") > 20
                shot = image.open(io.BytesIO(svg.screenshot())).convert("RGB")
                colours = shot.getcolors(maxcolors=1 << 20) or []
                drawn = sum(n for n, rgb in colours if max(rgb) - min(rgb) > 60)  # not grey/white
                assert drawn > 200, f"plot {i} has no coloured marks"
            first = page.locator("details summary", has_text="suite|bench:alpha|0").first
            first.click()
            rows = page.locator("details[open] table tbody tr")
            assert rows.count() >= 8
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert SCREENSHOT.stat().st_size > 50_000
