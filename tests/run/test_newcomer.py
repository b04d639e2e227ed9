"""What a newcomer trips over: file modes, incomplete tasks, one-sample stderr, empty columns."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evalstream import Doc, EvaluationTracker, ModelInfo, ModelResponse, RunResult, TaskSpec

GEN = TaskSpec(name="lb|gen|0", categories=["generative"])


def _doc(i: int) -> Doc:
    return Doc(query=f"q{i}", choices=["a"], gold_index=0, id=str(i))


def _out() -> list[ModelResponse]:
    return [ModelResponse(result=["a"], input_tokens=[1, 2], generated_tokens=[3])]


async def _one_sample_run(tmp_path: Path, *, declared: int) -> RunResult:
    async with EvaluationTracker(tmp_path) as tracker:
        await tracker.log_model_info(ModelInfo(model_name="org/m"))
        await tracker.log_tasks([GEN])
        await tracker.log_sample(GEN.name, _doc(0), _out(), {"em": 1.0})
        await tracker.log_num_docs(GEN.name, declared, declared)
        result = await tracker.save()
    return result


@pytest.mark.parametrize("umask", [0o022, 0o077])
async def test_written_files_honour_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        result = await _one_sample_run(tmp_path, declared=1)
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files
    want = 0o666 & ~umask
    modes = {str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode) for p in files}
    assert all(m == want for m in modes.values()), modes
    assert result.results_path


async def test_incomplete_task_is_a_warning_and_in_the_summary(tmp_path: Path) -> None:
    result = await _one_sample_run(tmp_path, declared=135)
    assert result.incomplete_tasks == {GEN.name: {"logged": 1, "effective_num_docs": 135}}
    assert any("incomplete" in w and "1 of its 135" in w for w in result.warnings)


async def test_complete_task_has_no_incomplete_warning(tmp_path: Path) -> None:
    result = await _one_sample_run(tmp_path, declared=1)
    assert result.incomplete_tasks == {}
    assert not any("incomplete" in w for w in result.warnings)


async def test_one_sample_writes_a_null_stderr_with_a_warning(tmp_path: Path) -> None:
    result = await _one_sample_run(tmp_path, declared=1)
    written = json.loads(Path(result.results_path).read_text())
    row = written["results"][GEN.name]
    assert row["em"] == 1.0
    assert "em_stderr" in row and row["em_stderr"] is None
    assert any("one sample" in w and "em" in w for w in result.warnings)


async def test_empty_variable_columns_have_real_types(tmp_path: Path) -> None:
    result = await _one_sample_run(tmp_path, declared=1)
    (path,) = result.details_paths.values()
    schema = pq.read_schema(path)
    assert schema.field("pred_logits").type == pa.list_(pa.float64())
    # a dict column with no keys has no struct to be; null, not a map (datasets refuses maps)
    assert schema.field("specifics").type == pa.null()
    assert [f.name for f in schema if pa.types.is_null(f.type)] == ["specifics"]
    table = pq.read_table(path)
    assert table.num_rows == 1
    assert table.column("specifics").to_pylist() == [None]
