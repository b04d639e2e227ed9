"""The async tracker end to end: every row, every number and every hash checked independently."""

from __future__ import annotations

import json
import math
import random
import statistics
from pathlib import Path
from typing import Any

import anyio
import pyarrow.parquet as pq
import pytest
import xxhash

from evalstream import EvaluationTracker, ModelInfo

from _workload import TASKS, Sent, sample
from conftest import BACKENDS

N_PER_TASK = 2000
PRODUCERS = 64


def _hex(text: str) -> str:
    return xxhash.xxh64(text.encode()).hexdigest()


async def _run(tmp_path: Path) -> tuple[Any, dict[str, Sent]]:
    sent = {t.name: Sent() for t in TASKS}
    rng = random.Random(7)
    work = [(t, i) for t in TASKS for i in range(N_PER_TASK)]
    rng.shuffle(work)
    samples = [(t, *sample(rng, t, i)) for t, i in work]
    with anyio.fail_after(120):
        return await _track(tmp_path, sent, samples)


async def _track(
    tmp_path: Path, sent: dict[str, Sent], samples: list[Any]
) -> tuple[Any, dict[str, Sent]]:
    async with EvaluationTracker(tmp_path, batch_size=64, inbox_capacity=4) as tracker:
        await tracker.log_args_info(num_fewshot_seeds=1, job_id="7")
        await tracker.log_model_info(ModelInfo(model_name="org/model", model_sha="abc"))
        await tracker.log_tasks(TASKS)

        async def producer(k: int) -> None:
            for task, doc, outputs, metrics in samples[k::PRODUCERS]:
                await tracker.log_sample(task.name, doc, outputs, metrics)
                s = sent[task.name]
                s.docs.append(doc)
                s.outputs.append(outputs)
                s.metrics.append(metrics)

        async with anyio.create_task_group() as tg:
            for k in range(PRODUCERS):
                tg.start_soon(producer, k)
        for task in TASKS:
            await tracker.log_num_docs(task.name, N_PER_TASK + 5, N_PER_TASK)
        result = await tracker.save()
    return result, sent


@pytest.fixture(scope="module", params=BACKENDS)
def run(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> tuple[Any, dict[str, Sent], Path]:
    out = tmp_path_factory.mktemp("run")
    result, sent = anyio.run(_run, out, backend=request.param)
    return result, sent, out


def test_paths_follow_lighteval_layout(run: tuple[Any, dict[str, Sent], Path]) -> None:
    """Results and details land at lighteval's paths, with the model name as folders."""
    result, _, out = run
    date_id = result.date_id
    assert Path(result.results_path) == out / "results/org/model" / f"results_{date_id}.json"
    for task in TASKS:
        expected = out / "details/org/model" / date_id / f"details_{task.name}_{date_id}.parquet"
        assert Path(result.details_paths[task.name]) == expected
        assert expected.exists()
    assert not list(out.rglob(".tmp-*")), "no temporary file may be left behind"


def test_every_parquet_row_matches_what_was_sent(run: tuple[Any, dict[str, Sent], Path]) -> None:
    """Each details parquet holds exactly the logged samples, field by field."""
    result, sent, _ = run
    for task in TASKS:
        table = pq.read_table(result.details_paths[task.name])
        assert table.column_names == sorted(table.column_names)
        rows = {r["example"]: r for r in table.to_pylist()}
        s = sent[task.name]
        assert len(rows) == len(s.docs) == N_PER_TASK
        for doc, outputs, metrics in zip(s.docs, s.outputs, s.metrics, strict=True):
            row = rows[doc.query]
            assert row["full_prompt"] == doc.ctx
            assert row["instruction"] == doc.instruction
            assert row["input_tokens"] == [o.input_tokens for o in outputs]
            assert row["cont_tokens"] == [o.generated_tokens for o in outputs]
            assert row["truncated"] == [o.truncated_tokens_count for o in outputs]
            assert row["padded"] == [o.padded_tokens_count for o in outputs]
            assert row["predictions"] == [r for o in outputs for r in o.result]
            assert row["num_effective_few_shots"] == doc.num_effective_few_shots
            assert row["specifics"] == doc.specific
            assert {k: v for k, v in row["metrics"].items() if v is not None} == metrics
            if "generative" in task.categories:
                assert row["gold"] == [doc.choices[doc.gold_index]]  # type: ignore[index]
                assert row["choices"] == []
            else:
                assert row["choices"] == doc.choices
                assert row["gold_index"] == [doc.gold_index]


def _mean_se(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values))


def test_results_match_an_independent_computation(run: tuple[Any, dict[str, Sent], Path]) -> None:
    """Means, stderrs, the suite average and the all row agree with statistics.*."""
    result, sent, _ = run
    on_disk = json.loads(Path(result.results_path).read_text())
    assert list(on_disk) == [
        "config_general",
        "results",
        "versions",
        "config_tasks",
        "summary_tasks",
        "summary_general",
        "schema_version",  # evalstream's, after lighteval's keys
    ]
    res = on_disk["results"]
    expected: dict[str, dict[str, tuple[float, float]]] = {}
    for task in TASKS:
        metrics = sent[task.name].metrics
        expected[task.name] = {m: _mean_se([x[m] for x in metrics]) for m in metrics[0]}
        for m, (mean, se) in expected[task.name].items():
            assert res[task.name][m] == pytest.approx(mean, rel=1e-12)
            assert res[task.name][f"{m}_stderr"] == pytest.approx(se, rel=1e-9)
    mmlu = [t.name for t in TASKS if ":" in t.name and "mmlu" in t.name]
    for m in ("acc", "loss"):
        avg = res["lb|mmlu:_average|5"]
        assert avg[m] == pytest.approx(statistics.fmean(expected[t][m][0] for t in mmlu))
        assert avg[f"{m}_stderr"] == pytest.approx(
            math.sqrt(sum(expected[t][m][1] ** 2 for t in mmlu)) / len(mmlu)
        )
        having = [t for t in expected if m in expected[t]]
        assert res["all"][m] == pytest.approx(statistics.fmean(expected[t][m][0] for t in having))
        assert res["all"][f"{m}_stderr"] == pytest.approx(
            math.sqrt(sum(expected[t][m][1] ** 2 for t in having)) / len(having)
        )
    assert "arc:_average|25" not in res, "a suite of one task gets no average row"
    assert on_disk["versions"] == {t.name: t.version for t in TASKS}
    assert on_disk["config_tasks"]["lb|mmlu:anatomy|5"]["k"] == 1
    assert on_disk["config_tasks"]["lb|gsm8k|5"]["effective_num_docs"] == N_PER_TASK
    general = on_disk["config_general"]
    assert general["model_name"] == "org/model" and general["job_id"] == "7"
    assert float(general["total_evaluation_time_secondes"]) >= 0


def test_hashes_and_counters_match_xxhash(run: tuple[Any, dict[str, Sent], Path]) -> None:
    """Per-task and overall hashes equal xxh64 computed here; counters are counted."""
    result, sent, _ = run
    summary = result.results["summary_tasks"]
    per_task = {}
    for task in TASKS:
        s = sent[task.name]
        digests = {
            "hash_examples": [_hex(d.query) for d in s.docs],
            "hash_full_prompts": [_hex(str(d.ctx)) for d in s.docs],
            "hash_input_tokens": [_hex(str([o.input_tokens for o in out])) for out in s.outputs],
            "hash_cont_tokens": [_hex(str([o.generated_tokens for o in out])) for out in s.outputs],
        }
        want = {k: _hex("".join(sorted(v))) for k, v in digests.items()}
        assert summary[task.name]["hashes"] == want
        per_task[task.name] = want
        truncated = sum(any(o.truncated_tokens_count for o in out) for out in s.outputs)
        assert summary[task.name]["truncated"] == truncated
        assert summary[task.name]["non_truncated"] == N_PER_TASK - truncated
        few = [d for d in s.docs if d.num_effective_few_shots < d.num_asked_few_shots]
        assert summary[task.name]["num_truncated_few_shots"] == len(few)
    overall = result.results["summary_general"]["hashes"]
    for key in ("hash_examples", "hash_full_prompts", "hash_input_tokens", "hash_cont_tokens"):
        assert overall[key] == _hex("".join(per_task[t][key] for t in sorted(per_task)))


def test_saved_run_keeps_only_its_status_marker(run: tuple[Any, dict[str, Sent], Path]) -> None:
    """After a good save the journal and segments are gone; the marker says saved."""
    result, _, _ = run
    assert result.ok
    workdir = Path(result.workdir)
    assert sorted(p.name for p in workdir.iterdir()) == ["lock", "run.json", "status.json"]
    status = json.loads((workdir / "status.json").read_text())
    assert status["state"] == "saved" and status["results_path"] == result.results_path


async def test_sharded_details_workers_write_the_same_rows(tmp_path: Path) -> None:
    """With three details workers, every task's rows, hashes and counts are as with one."""
    rng = random.Random(11)
    samples = [(t, *sample(rng, t, i)) for i in range(120) for t in TASKS]
    results = []
    for workers in (1, 3):
        with anyio.fail_after(60):
            async with EvaluationTracker(tmp_path / str(workers), details_workers=workers) as tr:
                await tr.log_model_info(ModelInfo(model_name="org/model"))
                await tr.log_tasks(TASKS)
                for task, doc, outputs, metrics in samples:
                    await tr.log_sample(task.name, doc, outputs, metrics)
                results.append(await tr.save())
    one, three = results
    assert one.results["summary_tasks"] == three.results["summary_tasks"]
    for task in TASKS:
        a = pq.read_table(one.details_paths[task.name]).sort_by("example")
        b = pq.read_table(three.details_paths[task.name]).sort_by("example")
        assert a.equals(b)
