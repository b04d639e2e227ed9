"""SQL over runs (``evalstream query``, ``evalstream.query``): the views agree with the files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import fsspec
import pyarrow.parquet as pq
import pytest

import evalstream
from evalstream import Doc, EvaluationTracker, ModelInfo, ModelResponse, QueryError, TaskSpec
from evalstream.cli.main import main

from _runs import TASKS, killed_run, saved_run

if TYPE_CHECKING:
    from evalstream import RunResult

pytest.importorskip("duckdb")


async def _layout_run(out: Path, layout: str, counts: dict[str, int]) -> RunResult:
    """A run of ``counts`` samples per task, its details written in ``layout``."""
    async with EvaluationTracker(out, bootstrap_iters=0, details_layout=layout) as tracker:  # type: ignore[arg-type]
        await tracker.log_model_info(ModelInfo(model_name=f"org/{layout}"))
        await tracker.log_tasks([TaskSpec(name=t) for t in counts])
        for task, n in counts.items():
            for i in range(n):
                doc = Doc(query=f"q{i}", choices=["A", "B"], gold_index=0, id=str(i))
                out_ = [ModelResponse(result=[0.0], input_tokens=[1, i])]
                await tracker.log_sample(task, doc, out_, {"acc": float(i % 3 == 0)})
        return await tracker.save()


def test_the_results_view_is_the_results_files(tmp_path: Path) -> None:
    """Every task and metric of every saved run, with the value and stderr of its file."""
    runs = [saved_run(tmp_path, skill, docs=60, seed=seed) for skill, seed in ((0.4, 0), (0.7, 1))]
    table = evalstream.query(str(tmp_path), "SELECT * FROM results")
    by_run = {r["run_id"] for r in table.to_pylist()}
    assert len(by_run) == 2
    got = {
        (r["date_id"], r["task"], r["metric"]): (r["value"], r["stderr"]) for r in table.to_pylist()
    }
    want = {}
    for run in runs:
        data = json.loads(Path(run.results_path).read_text())
        date_id = Path(run.results_path).stem.removeprefix("results_")
        for task, row in data["results"].items():
            for key, value in row.items():
                if not key.endswith("_stderr"):
                    want[(date_id, task, key)] = (value, row.get(f"{key}_stderr"))
    assert got == want
    assert evalstream.results_df(str(tmp_path)).num_rows == len(want)
    listed = evalstream.runs_df(str(tmp_path)).to_pylist()
    assert [r["status"] for r in listed] == ["saved", "saved"]
    assert {r["samples"] for r in listed} == {60 * len(TASKS)}


@pytest.mark.parametrize("layout", ["flat", "lighteval"])
def test_the_samples_view_counts_every_details_row(tmp_path: Path, layout: str) -> None:
    """Rows per task equal the details files' rows and RunResult.samples, in both layouts."""
    counts = {"s|a|0": 7, "s|b|0": 23, "t|c|0": 1}
    run = anyio.run(_layout_run, tmp_path, layout, counts)
    got = evalstream.query(
        str(tmp_path), "SELECT run_id, task, count(*) AS n FROM samples GROUP BY ALL"
    ).to_pylist()
    assert {r["task"]: r["n"] for r in got} == run.samples == counts
    (listed,) = evalstream.runs_df(str(tmp_path)).to_pylist()
    assert {r["run_id"] for r in got} == {listed["run_id"]} != {None}
    files = {t: pq.read_metadata(p).num_rows for t, p in run.details_paths.items()}
    assert files == counts
    columns = evalstream.samples_df(str(tmp_path)).column_names
    if layout == "lighteval":
        assert {"doc", "metric", "model_response"} <= set(columns)
        acc = "avg(metric.acc)"
    else:
        assert {"metrics", "predictions", "full_prompt"} <= set(columns)
        acc = "avg(metrics.acc)"
    means = evalstream.query(str(tmp_path), f"SELECT task, {acc} AS acc FROM samples GROUP BY task")
    assert {r["task"]: r["acc"] for r in means.to_pylist()} == pytest.approx(
        {t: sum(i % 3 == 0 for i in range(n)) / n for t, n in counts.items()}
    )


def test_both_layouts_are_read_together_by_column_name(tmp_path: Path) -> None:
    """A folder with a flat run and a lighteval-layout run: one samples view, NULL where a
    layout has no such column."""
    anyio.run(_layout_run, tmp_path, "flat", {"s|a|0": 3})
    anyio.run(_layout_run, tmp_path, "lighteval", {"s|a|0": 5})
    rows = evalstream.query(
        str(tmp_path),
        "SELECT model, count(*) AS n, count(metrics) AS flat, count(metric) AS nested "
        "FROM samples GROUP BY model ORDER BY model",
    ).to_pylist()
    assert rows == [
        {"model": "org/flat", "n": 3, "flat": 3, "nested": 0},
        {"model": "org/lighteval", "n": 5, "flat": 0, "nested": 5},
    ]


def test_a_bad_query_is_a_query_error_naming_what_is_wrong(tmp_path: Path) -> None:
    saved_run(tmp_path, 0.5, docs=5)
    with pytest.raises(QueryError, match="syntax error"):
        evalstream.query(str(tmp_path), "SELEC 1")
    with pytest.raises(QueryError, match='"no_such_column" not found'):
        evalstream.query(str(tmp_path), "SELECT no_such_column FROM samples")
    with pytest.raises(QueryError, match="no_such_view"):
        evalstream.query(str(tmp_path), "SELECT * FROM no_such_view")
    with pytest.raises(evalstream.ConfigError, match="does not exist"):
        evalstream.query(str(tmp_path / "nowhere"), "SELECT 1")


def test_the_cli_prints_json_and_csv_that_parse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved_run(tmp_path, 0.5, docs=10)
    sql = "SELECT task, count(*) AS n, avg(metrics.acc) AS acc FROM samples GROUP BY task ORDER BY task"
    assert main(["query", str(tmp_path), sql, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["task"], r["n"]) for r in rows] == [(t, 10) for t in sorted(TASKS)]
    assert main(["query", str(tmp_path), sql, "--csv"]) == 0
    parsed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["task"], int(r["n"]), float(r["acc"])) for r in parsed] == [
        (r["task"], r["n"], pytest.approx(r["acc"])) for r in rows
    ]
    assert main(["query", str(tmp_path), sql]) == 0
    assert "3 row(s)" in capsys.readouterr().out
    assert main(["query", str(tmp_path), "SELECT nope FROM runs"]) == 2
    assert 'evalstream: error: query failed: Binder Error: Referenced column "nope"' in (
        capsys.readouterr().err
    )


def test_an_fsspec_folder_is_read_through_its_filesystem(tmp_path: Path) -> None:
    """The same folder copied to fsspec's memory filesystem gives the same answers: DuckDB
    reads the details files through the registered fsspec filesystem."""
    saved_run(tmp_path / "out", 0.6, docs=20)
    memory = fsspec.filesystem("memory")
    memory.put(str(tmp_path / "out"), "/q26/out", recursive=True)
    try:
        sql = "SELECT task, count(*) AS n, avg(metrics.acc) AS acc FROM samples GROUP BY task"
        local = evalstream.query(str(tmp_path / "out"), sql).sort_by("task").to_pylist()
        remote = evalstream.query("memory://q26/out", sql).sort_by("task").to_pylist()
        assert remote == local and [r["n"] for r in remote] == [20, 20, 20]
        paths = evalstream.query("memory://q26/out", "SELECT results_path FROM runs")
        assert paths.column(0).to_pylist()[0].startswith("memory://")
    finally:
        memory.rm("/q26", recursive=True)


def test_a_dead_run_is_in_runs_only_until_it_is_recovered(tmp_path: Path) -> None:
    """A dead run is listed (its journal's counts) with no details rows; once recovered, its
    samples are queryable under its own run id. An empty folder gives empty views."""
    empty = "SELECT (SELECT count(*) FROM runs) AS runs, (SELECT count(*) FROM samples) AS n"
    assert evalstream.query(str(tmp_path), empty).to_pylist() == [{"runs": 0, "n": 0}]
    dead = killed_run(tmp_path, 30)
    (row,) = evalstream.query(str(tmp_path), "SELECT run_id, status, samples FROM runs").to_pylist()
    assert (row["status"], row["samples"]) == ("dead", 30)
    assert evalstream.query(str(tmp_path), empty).to_pylist() == [{"runs": 1, "n": 0}]
    anyio.run(lambda: evalstream.recover(dead))
    rows = evalstream.query(
        str(tmp_path), "SELECT run_id, count(*) AS n FROM samples GROUP BY run_id"
    ).to_pylist()
    assert rows == [{"run_id": row["run_id"], "n": 30}]
