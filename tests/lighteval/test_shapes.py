"""lighteval 0.13's call shapes and objects, and the ``lighteval`` details layout.

lighteval is not installed here: its objects are the field-for-field look-alikes of
``_lighteval013``; the real Pipeline runs in ``lighteval/test_pipeline.py`` (``-m lighteval``).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import statistics
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import xxhash

import _lighteval013 as lv
from evalstream import (
    ConfigError,
    DetailsNotFoundError,
    Doc,
    EvaluationTracker,
    InputError,
    ModelInfo,
    ModelResponse,
    SyncEvaluationTracker,
    TaskSpec,
    recover,
)


def _samples(task: str, n: int) -> list[tuple[lv.Doc, lv.ModelResponse, dict[str, int]]]:
    out = []
    for i in range(n):
        logprobs = [-((i * 7 + k * 3) % 5) / 2 for k in range(3)]
        gold = i % 3
        doc = lv.Doc(
            query=f"{task} q{i}",
            choices=[" A", " B", " C"],
            gold_index=gold,
            id=str(i),
            task_name=task,
            sampling_methods=[lv.SamplingMethod.LOGPROBS],
            stop_sequences=[],
        )
        response = lv.ModelResponse(
            input=doc.query,
            input_tokens=[i, i + 1, 7],
            output_tokens=[[10 + k] for k in range(3)],
            logprobs=logprobs,
            argmax_logits_eq_gold=[False] * 3,
            text_post_processed=[],
        )
        out.append((doc, response, {"acc": int(int(np.argmax(logprobs)) == gold)}))
    return out


def _lighteval_hash(digests: list[str]) -> str:
    """0.13's ``DetailsLogger.aggregate``: xxh64 of the sorted per-sample hex digests."""
    return xxhash.xxh64("".join(sorted(digests)).encode()).hexdigest()


def _run_013(tmp_path: Path, layout: str = "lighteval") -> tuple[SyncEvaluationTracker, dict]:
    """The Pipeline's call sequence, in its order, with 0.13's objects and keywords."""
    tracker = SyncEvaluationTracker(output_dir=str(tmp_path), details_layout=layout)
    tasks = {
        t.full_name: t
        for t in (
            lv.Task(
                lv.TaskConfig("quiz:easy", [lv.Metric("acc", lv.SamplingMethod.LOGPROBS, np.mean)])
            ),
            lv.Task(
                lv.TaskConfig("quiz:hard", [lv.Metric("acc", lv.SamplingMethod.LOGPROBS, np.mean)])
            ),
        )
    }
    tracker.general_config_logger.log_model_info(model_config=lv.ModelConfig("org/m013", seed=1))
    tracker.task_config_logger.log(tasks)
    tracker.general_config_logger.log_args_info(num_fewshot_seeds=1, max_samples=None, job_id="0")
    sent = {name: _samples(name, 9 + 4 * k) for k, name in enumerate(tasks)}
    for name, rows in sent.items():
        for doc, response, metrics in rows:
            tracker.metrics_logger.log(name, metrics)
            tracker.details_logger.log(name, doc, response, metrics)
    tracker.general_config_logger.log_end_time()
    tracker.metrics_logger.aggregate(task_dict=tasks, bootstrap_iters=100)
    tracker.details_logger.aggregate()
    tracker.save()
    return tracker, sent


def test_pipeline_call_shapes_of_0_13(tmp_path: Path) -> None:
    """0.13's calls record the same numbers and hashes 0.13 computes, and its model config."""
    tracker, sent = _run_013(tmp_path)
    final = tracker.generate_final_dict()
    for name, rows in sent.items():
        accs = [m["acc"] for _, _, m in rows]
        assert final["results"][name]["acc"] == pytest.approx(statistics.mean(accs))
        assert final["results"][name]["acc_stderr"] == pytest.approx(
            statistics.stdev(accs) / len(accs) ** 0.5
        )
        hashes = final["summary_tasks"][name]["hashes"]
        assert hashes["hash_examples"] == _lighteval_hash(
            [xxhash.xxh64(d.query.encode()).hexdigest() for d, _, _ in rows]
        )
        assert hashes["hash_input_tokens"] == _lighteval_hash(
            [xxhash.xxh64(str(r.input_tokens).encode()).hexdigest() for _, r, _ in rows]
        )
        assert hashes["hash_cont_tokens"] == _lighteval_hash(
            [xxhash.xxh64(str(r.output_tokens).encode()).hexdigest() for _, r, _ in rows]
        )
    general = final["config_general"]
    assert general["model_name"] == "org/m013"
    assert general["model_config"] == {"model_name": "org/m013", "system_prompt": None, "seed": 1}
    assert final["config_tasks"]["quiz:easy|0"]["metrics"][0]["corpus_level_fn"] == "mean"


def test_lighteval_layout_round_trips_model_response(tmp_path: Path) -> None:
    """Each row's ``model_response`` rebuilds the logged 0.13 ModelResponse, in logged order."""
    tracker, sent = _run_013(tmp_path)
    result = tracker.result
    assert result is not None
    for name, rows in sent.items():
        table = pq.read_table(result.details_paths[name])
        assert table.column_names == ["doc", "metric", "model_response"]
        fields = [f.name for f in table.schema.field("model_response").type]
        assert fields == [f.name for f in dataclasses.fields(lv.ModelResponse)]
        doc_fields = [f.name for f in table.schema.field("doc").type]
        assert doc_fields == [f.name for f in dataclasses.fields(lv.Doc)]
        back = table.to_pylist()
        assert [lv.ModelResponse(**r["model_response"]) for r in back] == [r for _, r, _ in rows]
        assert [r["metric"] for r in back] == [m for _, _, m in rows]
        first = back[0]["doc"]
        assert first["sampling_methods"] == ["LOGPROBS"]
        assert first["instruction"] is None and first["images"] is None
    loaded = tracker.load_details_datasets("last", ["quiz:easy|0"])  # 0.13 itself needs "quiz:easy"
    assert list(loaded) == ["quiz:easy|0"]
    assert [lv.ModelResponse(**r["model_response"]) for r in loaded["quiz:easy|0"]] == [
        r for _, r, _ in sent["quiz:easy|0"]
    ]
    assert set(tracker.load_details_datasets("last", ["quiz:easy", "quiz:hard"])) == set(sent)
    with pytest.raises(DetailsNotFoundError, match="quiz:medium"):
        tracker.load_details_datasets("last", ["quiz:medium|0"])
    with pytest.raises(FileNotFoundError):
        tracker.load_details_datasets("2001-01-01T00-00-00", ["quiz:easy|0"])


def test_flat_layout_is_refused_for_re_scoring(tmp_path: Path) -> None:
    """Flat files cannot rebuild a ModelResponse: the loader says which layout to save with."""
    tracker, _ = _run_013(tmp_path, layout="flat")
    with pytest.raises(InputError, match="details_layout='lighteval'"):
        tracker.load_details_datasets("last", ["quiz:easy|0"])


def test_flat_layout_with_0_13_responses(tmp_path: Path) -> None:
    """In the flat layout a 0.13 response fills predictions and cont_tokens."""
    tracker, sent = _run_013(tmp_path, layout="flat")
    assert tracker.result is not None
    rows = pq.read_table(tracker.result.details_paths["quiz:hard|0"]).to_pylist()
    _, response, _ = sent["quiz:hard|0"][0]
    assert rows[0]["predictions"] == pytest.approx(response.logprobs)
    assert rows[0]["cont_tokens"] == response.output_tokens
    assert rows[0]["input_tokens"] == [response.input_tokens]


def test_both_call_shapes_in_one_run(tmp_path: Path) -> None:
    """Seed-era and 0.13 calls mix; seed-era responses fold into one 0.13 response."""
    tracker = SyncEvaluationTracker(output_dir=str(tmp_path), details_layout="lighteval")
    tracker.general_config_logger.log_model_info(ModelInfo(model_name="org/mixed"))
    spec = TaskSpec(name="mix|0")
    seed_doc = Doc(query="q0", choices=["A", "B"], gold_index=1, ctx="ctx q0", id="0")
    seed_outputs = [
        ModelResponse(result=(-1.5, False), input_tokens=[1, 2], generated_tokens=[5]),
        ModelResponse(result=(-0.5, True), input_tokens=[1, 2], generated_tokens=[6]),
    ]
    tracker.details_logger.log("mix|0", spec, seed_doc, seed_outputs, {"acc": 1})
    gen_doc = lv.Doc(query="q1", choices=["yes"], gold_index=0, id="1")
    gen = lv.ModelResponse(text=["yes"], output_tokens=[[9, 9]], reasonings=["because"])
    tracker.details_logger.log(
        task_name="mix|0", doc=gen_doc, model_response=gen, metrics={"acc": 0}
    )
    tracker.details_logger.log("mix|0", spec, seed_doc, seed_outputs, {"acc": 1}, ("p", "j"))
    result = tracker.save()
    rows = pq.read_table(result.details_paths["mix|0"]).to_pylist()
    folded = rows[0]["model_response"]
    assert folded["logprobs"] == [-1.5, -0.5]
    assert folded["argmax_logits_eq_gold"] == [False, True]
    assert folded["output_tokens"] == [[5], [6]]
    assert folded["input_tokens"] == [1, 2] and folded["input"] == "ctx q0"
    assert lv.ModelResponse(**rows[1]["model_response"]) == gen
    assert len(rows) == 3


def test_call_shape_errors_name_the_shapes(tmp_path: Path) -> None:
    with SyncEvaluationTracker(output_dir=str(tmp_path)) as tracker:
        with pytest.raises(InputError, match="missing"):
            tracker.details_logger.log("t|0", lv.Doc(query="q", choices=[], gold_index=0))
        with pytest.raises(InputError, match="unexpected argument 'response'"):
            tracker.details_logger.log("t|0", doc=None, response=None, metrics={})
        with pytest.raises(InputError, match="log_model_info needs"):
            tracker.general_config_logger.log_model_info()
    with pytest.raises(ConfigError, match="results_path_template"):
        SyncEvaluationTracker(output_dir=str(tmp_path), results_path_template="{output_dir}")


async def test_async_tracker_takes_one_0_13_response(tmp_path: Path) -> None:
    """``log_sample`` takes one 0.13-shaped response, ours or lighteval's, with typed checks."""
    async with EvaluationTracker(tmp_path, details_layout="lighteval") as tracker:
        await tracker.log_model_info(ModelInfo(model_name="org/async013"))
        await tracker.log_tasks([TaskSpec(name="gen|0")])
        doc = Doc(query="2+2?", choices=["4"], gold_index=0, sampling_methods=["GENERATIVE"])
        ours = ModelResponse(text=["4"], output_tokens=[[52]], input_tokens=[1, 2])
        await tracker.log_sample("gen|0", doc, ours, {"em": 1})
        theirs = lv.ModelResponse(text=["5"], output_tokens=[[53]], logits=[[0.1, 0.2]])
        await tracker.log_sample(
            "gen|0", lv.Doc(query="2+3?", choices=["5"], gold_index=0), theirs, {"em": 1}
        )
        with pytest.raises(InputError, match=r"\$\.outputs\[0\]\.text"):
            await tracker.log_sample("gen|0", doc, ModelResponse(text="4"), {"em": 1})  # type: ignore[arg-type]
        with pytest.raises(InputError, match=r"unknown field.*'txt'"):
            await tracker.log_sample("gen|0", doc, {"txt": ["4"]}, {"em": 1})  # type: ignore[arg-type]
        with pytest.raises(InputError, match="output_tokens"):
            bad = lv.ModelResponse(text=["4"], output_tokens=[[1.5]])  # type: ignore[list-item]
            await tracker.log_sample("gen|0", doc, bad, {"em": 1})
        result = await tracker.save()
    rows = pq.read_table(result.details_paths["gen|0"]).to_pylist()
    assert [r["model_response"]["text"] for r in rows] == [["4"], ["5"]]
    assert rows[1]["model_response"]["logits"] == [[0.1, 0.2]]
    assert rows[0]["doc"]["sampling_methods"] == ["GENERATIVE"]
    assert result.results["results"]["gen|0"]["em"] == 1.0


def test_unknown_layout_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="details_layout"):
        EvaluationTracker(tmp_path, details_layout="nested")  # type: ignore[arg-type]


class Spread:
    """A callable corpus aggregation, like lighteval's CorpusLevelF1Score objects."""

    def __call__(self, items: list[float]) -> float:
        return max(items) - min(items)


def _agg_run(tmp_path: Path, layout: str = "flat") -> tuple[SyncEvaluationTracker, lv.Task]:
    """A tracker with one declared task aggregated by np.mean, a callable object and ``max``."""
    metrics = [
        lv.Metric("acc", lv.SamplingMethod.LOGPROBS, np.mean),
        lv.Metric("spread", lv.SamplingMethod.LOGPROBS, Spread()),
        lv.Metric("best", lv.SamplingMethod.LOGPROBS, max),
    ]
    task = lv.Task(lv.TaskConfig("agg", metrics))
    tracker = SyncEvaluationTracker(output_dir=str(tmp_path), details_layout=layout)
    tracker.general_config_logger.log_model_info(model_config=lv.ModelConfig("org/agg"))
    tracker.task_config_logger.log({task.full_name: task})
    return tracker, task


def test_lighteval_corpus_functions_aggregate(tmp_path: Path) -> None:
    """A task's own corpus function (not a mean) aggregates its metric, as lighteval does."""
    tracker, task = _agg_run(tmp_path)
    values = [0.2, 0.9, 0.4, 0.7]
    for i, v in enumerate(values):
        tracker.metrics_logger.log(task.full_name, {"acc": v, "spread": v, "best": v})
        doc = lv.Doc(query=f"q{i}", choices=["a"], gold_index=0)
        tracker.details_logger.log(task.full_name, doc, lv.ModelResponse(logprobs=[-v]), {})
    result = tracker.save()
    assert result.ok, result.outputs
    row = json.loads(Path(result.results_path).read_text())["results"]["agg|0"]
    assert row["acc"] == pytest.approx(statistics.mean(values))
    assert row["spread"] == pytest.approx(0.7), (row, result.warnings)
    assert row["best"] == pytest.approx(0.9)


def test_corpus_metric_objects_reach_lighteval_function(tmp_path: Path) -> None:
    """Per-sample lighteval objects are stored as tuples and rebuilt for the corpus function."""
    seen: list[object] = []

    def top1(items: list[lv.LogprobCorpusMetricInput]) -> float:
        seen.extend(items)
        return statistics.mean(float(np.argmax(i.preds) in i.golds) for i in items)

    metric = lv.CorpusLevelMetric("f1ish", lv.SamplingMethod.LOGPROBS, top1)
    task = lv.Task(lv.TaskConfig("corp", [metric]))
    tracker = SyncEvaluationTracker(output_dir=str(tmp_path), details_layout="lighteval")
    tracker.general_config_logger.log_model_info(model_config=lv.ModelConfig("org/corpus"))
    tracker.task_config_logger.log({task.full_name: task})
    inputs = [lv.LogprobCorpusMetricInput(golds=[i % 2], preds=[-1.0, -0.5 * i]) for i in range(5)]
    for i, item in enumerate(inputs):
        tracker.metrics_logger.log(task.full_name, {"f1ish": item})
        doc = lv.Doc(query=f"q{i}", choices=["a", "b"], gold_index=i % 2)
        tracker.details_logger.log(
            task.full_name, doc, lv.ModelResponse(logprobs=[-1.0]), {"f1ish": item}
        )
    tracker.metrics_logger.aggregate(task_dict={task.full_name: task}, bootstrap_iters=0)
    result = tracker.save()
    assert seen == inputs, "lighteval's function got the objects back, equal and in order"
    assert result.results["results"]["corp|0"]["f1ish"] == pytest.approx(top1(inputs))
    rows = pq.read_table(result.details_paths["corp|0"]).to_pylist()
    assert rows[1]["metric"]["f1ish"] == {"golds": [1], "preds": [-1.0, -0.5]}  # asdict, as 0.13


async def test_recovery_keeps_the_layout_and_survives_lost_functions(tmp_path: Path) -> None:
    """A dead lighteval-driven run recovers: its layout from run.json, its own functions NaN."""
    tracker, task = _agg_run(tmp_path, layout="lighteval")
    for i in range(5):
        values = {"acc": i % 2, "spread": float(i), "best": float(i)}
        tracker.metrics_logger.log(task.full_name, values)
        doc = lv.Doc(query=f"q{i}", choices=["a"], gold_index=0)
        tracker.details_logger.log(task.full_name, doc, lv.ModelResponse(text=["a"]), values)
    tracker.flush()
    run_dir = tracker.tracker.workdir
    tracker.close()  # the process "dies" here: no save
    result = await recover(run_dir)
    row = result.results["results"]["agg|0"]
    assert row["acc"] == pytest.approx(0.4)
    assert math.isnan(row["spread"])
    assert any("registered by the dead process" in w for w in result.warnings)
    table = pq.read_table(result.details_paths["agg|0"])
    assert table.column_names == ["doc", "metric", "model_response"]
    assert table.num_rows == 5


@pytest.mark.parametrize("layout", ["lighteval", "flat"])
def test_pil_images_of_a_lighteval_doc_are_stored_as_png(tmp_path: Path, layout: str) -> None:
    """lighteval's ``Doc.images`` (PIL images) are stored losslessly as ``datasets`` stores an
    image, ``{bytes, path}``, in either layout; a doc without images stores null."""
    image_module = pytest.importorskip("PIL.Image")
    red = image_module.new("RGB", (3, 2), (255, 0, 0))
    grey = image_module.new("L", (1, 4), 128)
    tracker = SyncEvaluationTracker(output_dir=str(tmp_path), details_layout=layout)
    tracker.general_config_logger.log_model_info(ModelInfo(model_name="org/vision"))
    for i, images in enumerate(([red, grey], None)):
        doc = lv.Doc(query=f"what is this {i}?", choices=["a"], gold_index=0, images=images)
        response = lv.ModelResponse(text=["a"], output_tokens=[[1]])
        tracker.details_logger.log(task_name="see|0", doc=doc, model_response=response, metrics={})
    result = tracker.save()
    rows = pq.read_table(result.details_paths["see|0"]).to_pylist()
    stored = [r["images"] if layout == "flat" else r["doc"]["images"] for r in rows]
    assert stored[1] is None
    decoded = [image_module.open(io.BytesIO(image["bytes"])) for image in stored[0]]
    assert [image["path"] for image in stored[0]] == [None, None]
    assert [(d.format, d.mode, d.size) for d in decoded] == [
        ("PNG", "RGB", (3, 2)),
        ("PNG", "L", (1, 4)),
    ]
    assert [d.tobytes() for d in decoded] == [red.tobytes(), grey.tobytes()]


def test_an_image_that_is_not_one_is_refused_where_it_is_logged(tmp_path: Path) -> None:
    """A path or a number among ``Doc.images`` fails the call that logged it, naming the image."""
    with SyncEvaluationTracker(output_dir=str(tmp_path)) as tracker:
        tracker.general_config_logger.log_model_info(ModelInfo(model_name="org/vision"))
        for images in (["/tmp/cat.png"], [b"\x89PNG", 3], "cat.png"):
            doc = lv.Doc(query="q", choices=["a"], gold_index=0, images=images)
            with pytest.raises(InputError, match=r"Doc\.images"):
                tracker.details_logger.log(
                    task_name="see|0", doc=doc, model_response=lv.ModelResponse(), metrics={}
                )
        with pytest.raises(InputError, match=r"Doc\.images\[0\]"):
            tracker.details_logger.log(
                "see|0", None, Doc(query="q", images=[1.5]), [ModelResponse(result=["a"])], {}
            )
