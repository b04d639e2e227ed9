"""The sample browser: the right rows for every page and filter, reading only the groups needed.

Truth is the whole details file read by pyarrow and filtered in Python; the browser's pages,
joined, must be exactly those rows, in order. Files are the real tracker's, in both layouts,
rewritten with row groups of 25 rows so paging crosses groups (the tracker's are 8,192).
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

import anyio
import httpx
import pyarrow.parquet as pq
import pytest

from evalstream import view_app
from evalstream._errors import ViewRequestError
from evalstream.view.samples import SampleFilter, parse_filter, read_page

from _runs import TASKS, make_run, saved_run

GROUP = 25
DOCS = 120


@pytest.fixture(scope="module", params=["flat", "lighteval"])
def details(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved task's details file (``score_noise``: acc and a continuous score), in groups of
    ``GROUP`` rows."""
    out = tmp_path_factory.mktemp(request.param)
    saved_run(out, 0.6, docs=DOCS, details_layout=request.param, score_noise=1)
    (path,) = glob.glob(f"{out}/details/**/details_{TASKS[0]}_*.parquet", recursive=True)
    pq.write_table(pq.read_table(path), path, row_group_size=GROUP)
    return Path(path)


def _truth(path: Path, correct: bool | None = None, text: str = "") -> list[int]:
    """The rows a filter keeps, from the whole file."""
    rows = pq.read_table(path).to_pylist()
    keep = []
    for i, row in enumerate(rows):
        metrics = row.get("metrics") or row.get("metric")
        if correct is not None and metrics["acc"] != float(correct):
            continue
        query = row["example"] if "example" in row else row["doc"]["query"]
        prompt = row["full_prompt"] if "full_prompt" in row else row["model_response"]["input"]
        if text and text.lower() not in f"{query}\n{prompt}".lower():
            continue
        keep.append(i)
    return keep


def _pages(path: Path, **filters: Any) -> tuple[list[int], list[Any]]:
    """Every page of a filter, in turn: the rows shown, and each page's answer."""
    rows, answers, page = [], [], 0
    while True:
        answer = read_page(pq.ParquetFile(path), SampleFilter(task=TASKS[0], page=page, **filters))
        answers.append(answer)
        rows += [r["row"] for r in answer.rows]
        if not answer.more:
            return rows, answers
        page += 1


@pytest.mark.parametrize(
    "filters",
    [
        {"size": 7},
        {"size": 20, "correct": True},
        {"size": 9, "correct": False, "metric": "acc"},
        {"size": 5, "text": "QUESTION 1"},
        {"size": 3, "text": "question 1", "correct": True},
        {"size": 10, "text": "no such text"},
    ],
)
def test_pages_join_to_exactly_the_filtered_rows(details: Path, filters: dict[str, Any]) -> None:
    """Every page of every filter, joined: the file's matching rows, in order, none twice."""
    rows, answers = _pages(details, **filters)
    text, correct = filters.get("text", ""), filters.get("correct")
    assert rows == _truth(details, correct, text)
    assert all(len(a.rows) == filters["size"] for a in answers[:-1])
    assert answers[0].metrics == ["acc", "score"]


def test_an_unfiltered_page_reads_only_its_row_group(details: Path) -> None:
    """No filter: the footer's counts find the page; only the group(s) holding it are read."""
    answer = read_page(pq.ParquetFile(details), SampleFilter(task=TASKS[0], page=5, size=10))
    assert [r["row"] for r in answer.rows] == list(range(50, 60))
    assert answer.groups_read == 1 and answer.total == DOCS and answer.more
    straddle = read_page(pq.ParquetFile(details), SampleFilter(task=TASKS[0], page=2, size=10))
    assert [r["row"] for r in straddle.rows] == list(range(20, 30))
    assert straddle.groups_read == 2  # rows 20-24 and 25-29


def test_a_filtered_page_stops_reading_once_it_is_full(details: Path) -> None:
    """A filter reads groups only until the page and one row past it are found."""
    answer = read_page(pq.ParquetFile(details), SampleFilter(task=TASKS[0], size=3, correct=True))
    assert answer.groups_read == 1 and answer.total is None and answer.more


def test_rows_show_input_output_gold_and_metrics(details: Path) -> None:
    """A row carries what the browser shows, whatever the layout."""
    (row,) = read_page(pq.ParquetFile(details), SampleFilter(task=TASKS[0], page=4, size=1)).rows
    assert row["input"] == f"{TASKS[0]} question 4?"
    assert row["prompt"] == f"Q: {TASKS[0]} question 4?\nA:"
    assert row["gold"] == ["A"] and set(row["metrics"]) == {"acc", "score"}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "task is required"),
        ({"task": "t", "page": "-1"}, "page must be between 0 and"),
        ({"task": "t", "page": "two"}, "page must be a whole number, not 'two'"),
        ({"task": "t", "size": "1000"}, "size must be between 1 and 200, not 1000"),
        ({"task": "t", "correct": "maybe"}, "correct must be 1 or 0"),
    ],
)
def test_a_bad_parameter_is_named(params: dict[str, str], message: str) -> None:
    """Each bad parameter: a ViewRequestError that names it and what it takes."""
    with pytest.raises(ViewRequestError, match=message):
        parse_filter(params)


async def test_the_browser_over_http_pages_filters_and_refuses(tmp_path: Path) -> None:
    """Through the app: a page, a filter, and 400 with the reason for each bad request."""
    await make_run(tmp_path, 0.6, docs=40)
    app = view_app(str(tmp_path))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://v") as c:
        with anyio.fail_after(30):
            key = (await c.get("/api/runs")).json()["runs"][0]["key"]

            async def ask(**params: str) -> httpx.Response:
                return await c.get("/api/samples", params={"run": key, **params})

            page = (await ask(task=TASKS[1], page="1", size="15")).json()
            assert [r["row"] for r in page["rows"]] == list(range(15, 30))
            assert page["total"] == 40 and page["more"]
            right = (await ask(task=TASKS[1], correct="1", size="200")).json()
            assert right["rows"] and all(r["metrics"]["acc"] == 1.0 for r in right["rows"])
            for params, status, message in [
                ({"task": TASKS[1], "size": "0"}, 400, "size must be between 1 and 200"),
                ({"task": "nope|x|0"}, 400, "has no task 'nope|x|0'; its tasks: "),
                ({"task": TASKS[1], "metric": "f1", "correct": "1"}, 400, "has no metric 'f1'"),
                ({"run": "gone", "task": TASKS[1]}, 404, "no run 'gone'"),
            ]:
                answer = await ask(**params)
                assert answer.status_code == status and message in answer.json()["error"]


async def test_a_damaged_details_file_is_answered_with_its_name(tmp_path: Path) -> None:
    """A details file cut short after the run was saved: 422 naming the file, not a crash."""
    await make_run(tmp_path, 0.6, docs=10)
    (path,) = glob.glob(f"{tmp_path}/details/**/details_{TASKS[0]}_*.parquet", recursive=True)
    Path(path).write_bytes(Path(path).read_bytes()[:100])
    app = view_app(str(tmp_path))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://v") as c:
        key = (await c.get("/api/runs")).json()["runs"][0]["key"]
        answer = await c.get("/api/samples", params={"run": key, "task": TASKS[0]})
    assert answer.status_code == 422
    assert answer.json()["error"].startswith(f"cannot read {path}: ")
