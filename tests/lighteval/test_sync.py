"""The synchronous tracker: lighteval's attribute API on a background event loop."""

from __future__ import annotations

import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from evalstream import ModelInfo, RunStateError, SyncEvaluationTracker

from _workload import TASKS, sample


def test_lighteval_style_calls_produce_the_same_files(tmp_path: Path) -> None:
    """The drop-in sequence of logger calls writes results and details like the async API."""
    rng = random.Random(3)
    tracker = SyncEvaluationTracker(output_dir=str(tmp_path), save_details=True)
    tracker.general_config_logger.log_args_info(
        num_fewshot_seeds=1, override_batch_size=None, max_samples=10, job_id="12"
    )
    tracker.general_config_logger.log_model_info(ModelInfo(model_name="org/sync"))
    tracker.task_config_logger.log({t.name: t for t in TASKS[:2]})
    for t in TASKS[:2]:
        tracker.versions_logger.log(t.name, 9)
    sent: dict[str, list[float]] = {t.name: [] for t in TASKS[:2]}
    for i in range(600):
        task = TASKS[i % 2]
        doc, outputs, metrics = sample(rng, task, i)
        tracker.details_logger.log(task.name, task, doc, outputs, metrics)
        tracker.metrics_logger.log(task.name, metrics)
        sent[task.name].append(metrics["acc"])
    tracker.metrics_logger.aggregate(task_dict={t.name: t for t in TASKS[:2]}, bootstrap_iters=10)
    preview = tracker.metrics_logger.metric_aggregated
    assert preview[TASKS[0].name]["acc"] == pytest.approx(sum(sent[TASKS[0].name]) / 300)
    assert tracker.versions_logger.versions == {t.name: 9 for t in TASKS[:2]}
    details = tracker.details_logger.details
    assert len(details[TASKS[1].name]) == 300
    compiled = tracker.details_logger.compiled_details
    assert compiled[TASKS[0].name]["non_truncated"] + compiled[TASKS[0].name]["truncated"] == 300
    overall = tracker.details_logger.compiled_details_over_all_tasks
    assert set(overall["hashes"]) == {
        "hash_examples",
        "hash_full_prompts",
        "hash_input_tokens",
        "hash_cont_tokens",
    }
    assert set(tracker.task_config_logger.tasks_configs) == {t.name for t in TASKS[:2]}
    tracker.general_config_logger.log_end_time()
    result = tracker.save()
    data = json.loads(Path(result.results_path).read_text())
    assert data["config_general"]["max_samples"] == 10
    assert data["results"][TASKS[0].name]["acc"] == pytest.approx(preview[TASKS[0].name]["acc"])
    assert tracker.generate_final_dict() == result.results
    assert pq.read_metadata(result.details_paths[TASKS[0].name]).num_rows == 300
    assert tracker._portal is None, "save() stops the background event loop"
    with pytest.raises(RunStateError):
        tracker.details_logger.log(TASKS[0].name, TASKS[0], *sample(rng, TASKS[0], 0))


def test_snapshots_are_copies(tmp_path: Path) -> None:
    """Mutating a snapshot attribute does not change the tracker's state."""
    with SyncEvaluationTracker(str(tmp_path)) as tracker:
        tracker.general_config_logger.log_model_info({"model_name": "org/m"})
        tracker.task_config_logger.log({TASKS[0].name: TASKS[0]})
        versions = tracker.versions_logger.versions
        versions[TASKS[0].name] = 99
        assert tracker.versions_logger.versions[TASKS[0].name] == TASKS[0].version
        assert tracker.general_config_logger.model_name == "org/m"


def test_first_calls_from_many_threads_at_once(tmp_path: Path) -> None:
    """8 threads whose first calls race to start the tracker all log; every sample is kept."""
    threads, per_thread = 8, 3000
    tracker = SyncEvaluationTracker(
        output_dir=str(tmp_path), save_details=True, details_layout="flat"
    )
    task = TASKS[0]
    start = threading.Barrier(threads)
    sent: list[float] = []

    def work(k: int) -> None:
        rng = random.Random(k)
        made = [sample(rng, task, k * per_thread + i) for i in range(per_thread)]
        sent.extend(metrics["acc"] for _, _, metrics in made)
        start.wait()
        for doc, outputs, metrics in made:
            tracker.details_logger.log(task.name, task, doc, outputs, metrics)
            tracker.metrics_logger.log(task.name, metrics)

    with ThreadPoolExecutor(threads) as pool:
        for done in [pool.submit(work, k) for k in range(threads)]:
            done.result(timeout=240)  # raises what the thread raised
    total = threads * per_thread
    tracker.general_config_logger.log_model_info(ModelInfo(model_name="org/threads"))
    tracker.log_num_docs(task.name, total, total)
    assert len(tracker.metrics_logger.metrics_values[task.name]["acc"]) == total
    result = tracker.save()
    assert result.incomplete_tasks == {}
    assert result.results["results"][task.name]["acc"] == pytest.approx(sum(sent) / total)
    details = pq.read_table(result.details_paths[task.name])
    assert details.num_rows == total
    assert len(set(details.column("example").to_pylist())) == total, "each sample once"


@pytest.mark.parametrize("layout", ["flat", "lighteval"])
def test_mid_run_details_are_the_rows_logged_kept_or_abandoned(tmp_path: Path, layout: str) -> None:
    """``details`` mid-run reads each task's segment, for a task whose live parquet file is kept
    and for one whose file a schema change gave up: every row logged so far, in order, with its
    own metrics, in either layout (what a segment written only on demand must also give)."""
    rng = random.Random(5)
    tracker = SyncEvaluationTracker(
        output_dir=str(tmp_path), save_details=True, details_layout=layout
    )
    tracker.general_config_logger.log_model_info(ModelInfo(model_name="org/mid"))
    kept, changed = TASKS[0], TASKS[1]
    tracker.task_config_logger.log({t.name: t for t in (kept, changed)})
    sent: dict[str, list[dict[str, object]]] = {kept.name: [], changed.name: []}

    def log(count: int, start: int) -> None:
        for i in range(start, start + count):
            for task in (kept, changed):
                doc, outputs, metrics = sample(rng, task, i)
                if task is changed and start:  # a metric turned to text: the schema changes
                    metrics = {**metrics, "acc": "yes"}
                tracker.details_logger.log(task.name, task, doc, outputs, metrics)
                sent[task.name].append(metrics)

    def metrics_read() -> dict[str, list[object]]:
        details = tracker.details_logger.details
        key = "metrics" if layout == "flat" else "metric"
        return {name: [row[key] for row in rows] for name, rows in details.items()}

    log(300, 0)
    assert metrics_read() == sent
    log(300, 300)
    assert metrics_read() == sent  # one task's live file given up, the other's kept
    result = tracker.save()
    for task in (kept, changed):
        assert pq.read_metadata(result.details_paths[task.name]).num_rows == 600
