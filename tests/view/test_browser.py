"""The live view in a real headless chromium (Debian's package), driven by Playwright, while a
run is being logged.

Run by ``scripts/ci/browser.sh``. The view is served by uvicorn on loopback over a ``Runtime``
whose run the test logs in steps; after each step the page must show the new sample counts (the
server-sent events arrived and were drawn), the estimate charts must gain points and their
interval narrow, the page must load nothing from anywhere else and log no console error. Once
saved, the sample browser pages and filters the run's details. The screenshot of the page
mid-run is ``build/browser/view.png`` (the README's ``docs/view.png`` is one of these).

The run is compared live with a saved baseline run of the same docs (accuracy 0.5 on both
tasks): the page's estimates are the run's own confidence sequences (``Progress.estimates``)
and its verdicts the paired ones (``Progress.baseline``), one task better, one worse.
"""

from __future__ import annotations

import io
import random
import socket
from pathlib import Path

import anyio
import pytest
import uvicorn

from evalstream import (
    Doc,
    EvaluationTracker,
    ModelInfo,
    ModelResponse,
    Runtime,
    TaskSpec,
    view_app,
)

from _browser import FLAGS, chromium

pytestmark = pytest.mark.browser

SCREENSHOT = Path(__file__).parents[2] / "build" / "browser" / "view.png"
TASKS = ["suite|arc:easy|0", "suite|hellaswag|0"]
SKILL = {TASKS[0]: 0.72, TASKS[1]: 0.3}


def _doc(task: str, i: int) -> Doc:
    return Doc(query=f"{task} question {i}?", choices=["A", "B"], gold_index=0, id=str(i))


async def _baseline(folder: Path, docs: int) -> str:
    """A saved run of the same docs, right on every other one (accuracy 0.5 on each task)."""
    async with EvaluationTracker(folder, bootstrap_iters=0) as base:
        await base.log_model_info(ModelInfo(model_name="org/checkpoint-3000"))
        await base.log_tasks([TaskSpec(name=t) for t in TASKS])
        for task in TASKS:
            for i in range(docs):
                acc = float(i % 2 == 0)
                await base.log_sample(
                    task, _doc(task, i), [ModelResponse(text=["A"])], {"acc": acc}
                )
        result = await base.save()
    assert result.ok and result.results_path is not None
    return str(result.results_path)


async def test_the_live_view_follows_a_run_in_chromium(tmp_path: Path) -> None:
    async_api = pytest.importorskip(
        "playwright.async_api", reason="playwright is not installed (scripts/ci/browser.sh)"
    )
    image = pytest.importorskip("PIL.Image")
    binary = chromium()
    rng = random.Random(7)
    baseline = await _baseline(tmp_path / "base", 300)
    out = tmp_path / "view"
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    origin = f"http://127.0.0.1:{port}"
    problems: list[str] = []
    with anyio.fail_after(180):
        async with Runtime() as runtime, anyio.create_task_group() as tg:
            server = uvicorn.Server(
                uvicorn.Config(view_app(str(out), runtime=runtime, interval=0.1),
                               log_level="warning")
            )  # fmt: skip
            tg.start_soon(server.serve, [sock])
            while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag only
                await anyio.sleep(0.01)
            async with (
                EvaluationTracker(
                    out, runtime=runtime, bootstrap_iters=0, baseline=baseline
                ) as tracker,
                async_api.async_playwright() as pw,
            ):
                await tracker.log_model_info(ModelInfo(model_name="org/checkpoint-4000"))
                await tracker.log_tasks([TaskSpec(name=t) for t in TASKS])
                for task in TASKS:
                    await tracker.log_num_docs(task, 400, 400)
                browser = await pw.chromium.launch(executable_path=binary, args=FLAGS)
                page = await browser.new_page(viewport={"width": 1400, "height": 1000})
                page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: problems.append(str(e)))
                page.on(
                    "request",
                    lambda r: None if r.url.startswith(origin) else problems.append(r.url),
                )
                await page.goto(f"{origin}/#run={tracker.run_id}", wait_until="load")
                await page.wait_for_function(
                    "document.querySelector('#state').textContent === 'running'"
                )
                widths: list[float] = []
                logged = 0
                for step in (20, 40, 60, 100, 140, 200):
                    for i in range(logged, logged + step):
                        task = TASKS[i % 2]
                        acc = float(rng.random() < SKILL[task])
                        await tracker.log_sample(
                            task, _doc(task, i // 2), [ModelResponse(text=["A"])], {"acc": acc}
                        )
                    logged += step
                    await tracker.flush()  # the estimates follow shipped batches: ship the last
                    await page.wait_for_function(
                        f"document.querySelector('#samples').textContent === '{logged}'"
                    )
                    chart = page.locator(f'.chart[data-task="{TASKS[0]}"][data-metric="acc"]')
                    await page.wait_for_function(
                        "n => Number(document.querySelector('.chart')?.dataset.n ?? 0) >= n",
                        arg=logged // 2,
                    )
                    widths.append(float(await chart.get_attribute("data-width") or "nan"))
                    count = page.locator(f'.task[data-task="{TASKS[0]}"] .count')
                    assert await count.text_content() == str(logged // 2)
                assert widths[-1] == min(widths) and widths[-1] < widths[0] / 2  # it narrows
                canvas = chart.locator("canvas")
                box = await canvas.bounding_box()
                assert box is not None and box["width"] > 300 and box["height"] > 100
                shot = image.open(io.BytesIO(await canvas.screenshot())).convert("RGB")
                colours = shot.getcolors(maxcolors=1 << 20) or []
                drawn = sum(n for n, rgb in colours if max(rgb) - min(rgb) > 60)
                assert drawn > 200, "the estimate chart has no coloured marks"
                verdicts = await page.locator("#baseline tbody td.verdict").all_text_contents()
                assert verdicts == ["better", "worse"]
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(SCREENSHOT), full_page=True)

                await tracker.save()
                await page.wait_for_function(
                    "document.querySelector('#state').textContent === 'saved'"
                )
                rows = page.locator("#sample-rows tbody tr")
                await rows.first.wait_for()
                assert await rows.count() == 20
                await page.select_option("#filters [name=correct]", "0")
                await page.fill("#filters [name=q]", "question 1")
                await page.click("#filters button[type=submit]")
                await page.wait_for_function(
                    "[...document.querySelectorAll('#sample-rows tbody tr td:nth-child(5)')]"
                    ".every(td => td.textContent.includes('\"acc\":0'))"
                )
                texts = await page.locator("#sample-rows tbody td:nth-child(2)").all_text_contents()
                assert texts and all("question 1" in t for t in texts)
                await browser.close()
            server.should_exit = True
    sock.close()
    assert problems == []
    assert SCREENSHOT.stat().st_size > 30_000
