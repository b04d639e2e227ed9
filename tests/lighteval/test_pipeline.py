"""lighteval 0.13's real ``Pipeline``, offline, once with its own tracker and once with ours.

Run by ``scripts/ci/lighteval.sh`` (``pytest -m lighteval``) in a venv with lighteval 0.13. The
test writes a small local dataset and a custom-task file, and drives the Pipeline with a
deterministic model (lighteval's ``DummyModel`` with fixed answers). The only patch is at the
network boundary: lighteval's registry imports every built-in task module, one of which downloads
a file at import, so the built-in modules are not loaded (custom tasks only).
"""

from __future__ import annotations

import json
import math
import os
import zlib
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.lighteval

TASKS = "quiz:easy|0,quiz:hard|0,echo|0"
TASK_FILE = """
import os
from lighteval.metrics.metrics import Metrics
from lighteval.tasks.lighteval_task import LightevalTaskConfig
from lighteval.tasks.requests import Doc

DATA = os.environ["EVALSTREAM_LV_DATA"]


def mc_prompt(line, task_name=None):
    return Doc(task_name=task_name, query=line["question"], choices=line["choices"],
               gold_index=int(line["gold"]), id=str(line["idx"]))


def gen_prompt(line, task_name=None):
    return Doc(task_name=task_name, query=line["question"], choices=[line["answer"]],
               gold_index=0, id=str(line["idx"]))


def _cfg(name, prompt, subdir, metrics, **kw):
    return LightevalTaskConfig(name=name, prompt_function=prompt, hf_repo=os.path.join(DATA, subdir),
                               hf_subset="default", evaluation_splits=["test"], few_shots_split=None,
                               few_shots_select=None, metrics=metrics, **kw)


TASKS_TABLE = [
    _cfg("quiz:easy", mc_prompt, "easy", [Metrics.loglikelihood_acc, Metrics.loglikelihood_f1]),
    _cfg("quiz:hard", mc_prompt, "hard", [Metrics.loglikelihood_acc]),
    _cfg("echo", gen_prompt, "echo", [Metrics.exact_match], generation_size=8, stop_sequence=["\\n"]),
]
"""


def _write_data(root: Path) -> None:
    for sub, n in (("easy", 40), ("hard", 25), ("echo", 15)):
        (root / sub).mkdir(parents=True)
        with (root / sub / "test.jsonl").open("w") as f:
            for i in range(n):
                if sub == "echo":
                    row: dict[str, Any] = {"idx": i, "question": f"Say {i}:", "answer": str(i)}
                else:
                    gold = zlib.crc32(f"{sub}{i}".encode()) % 3
                    row = {
                        "idx": i,
                        "question": f"{sub} question {i}?",
                        "choices": [" A", " B", " C"],
                        "gold": gold,
                    }
                f.write(json.dumps(row) + "\n")


def _models() -> tuple[type, type]:
    from lighteval.models.dummy.dummy_model import DummyModel
    from lighteval.models.model_output import ModelResponse

    class Deterministic(DummyModel):  # type: ignore[misc]
        """Answers from a crc of the query: the same in every run."""

        def greedy_until(self, docs: list[Any]) -> list[Any]:
            out = []
            for d in docs:
                h = zlib.crc32(d.query.encode())
                text = d.choices[0] if h % 2 else "nope"
                out.append(
                    ModelResponse(
                        input=d.query,
                        input_tokens=[h % 97, h % 89],
                        text=[text],
                        output_tokens=[[h % 83, 7]],
                    )
                )
            return out

        def loglikelihood(self, docs: list[Any]) -> list[Any]:
            out = []
            for d in docs:
                h = zlib.crc32(d.query.encode())
                logprobs = [-(((h >> (4 * k)) % 16) / 4.0) for k in range(len(d.choices))]
                out.append(
                    ModelResponse(
                        input=d.query,
                        input_tokens=[h % 97, h % 89, 5],
                        output_tokens=[[k + 10] for k in range(len(d.choices))],
                        logprobs=logprobs,
                        argmax_logits_eq_gold=[False] * len(d.choices),
                    )
                )
            return out

    class Refusing(DummyModel):  # type: ignore[misc]
        """A re-scoring run must not ask the model anything."""

        def greedy_until(self, docs: list[Any]) -> list[Any]:
            raise AssertionError("the model was called: responses were not loaded from details")

        loglikelihood = greedy_until

    return Deterministic, Refusing


class Runs:
    """What the three pipeline runs produced."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.outcomes: dict[str, dict[str, Any]] = {}


def _run(
    runs: Runs, label: str, tracker: Any, model_cls: type, tasks: str, date_id: str | None = None
) -> None:
    from lighteval.models.dummy.dummy_model import DummyModelConfig
    from lighteval.pipeline import ParallelismManager, Pipeline, PipelineParameters

    params = PipelineParameters(
        launcher_type=ParallelismManager.NONE,
        custom_tasks_directory=str(runs.root / "tasks_custom.py"),
        bootstrap_iters=100,
        load_responses_from_details_date_id=date_id,
    )
    config = DummyModelConfig(
        model_name="org/det", seed=1, cache_dir=str(runs.root / f"cache-{label}")
    )
    pipeline = Pipeline(
        tasks=tasks, pipeline_parameters=params, evaluation_tracker=tracker, model=model_cls(config)
    )
    pipeline.evaluate()
    pipeline.save_and_push_results()
    pipeline.show_results()
    runs.outcomes[label] = {"final": pipeline.get_results(), "details": pipeline.get_details()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("lighteval")
    _write_data(root / "data")
    (root / "tasks_custom.py").write_text(TASK_FILE)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EVALSTREAM_LV_DATA", str(root / "data"))
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_HOME", str(root / "hf_home"))
        from lighteval.logging.evaluation_tracker import EvaluationTracker
        from lighteval.tasks.registry import Registry

        from evalstream import SyncEvaluationTracker

        mp.setattr(Registry, "_load_from_files", staticmethod(lambda files, prefix: {}))
        mp.setattr(Registry, "_load_from_subdirs", staticmethod(lambda dirs: {}))
        deterministic, refusing = _models()
        runs = Runs(root)
        # the user's code, word for word, under either import: only the class differs
        _run(
            runs, "lighteval", _users_tracker(EvaluationTracker, root / "lv"), deterministic, TASKS
        )
        ours = _users_tracker(SyncEvaluationTracker, root / "es")
        _run(runs, "evalstream", ours, deterministic, TASKS)
        runs.outcomes["evalstream"]["tracker"] = ours
        again = _users_tracker(SyncEvaluationTracker, root / "es")
        date_id = ours.result.date_id
        _run(runs, "rescored", again, refusing, "quiz:easy|0", date_id=date_id)
        runs.outcomes["rescored"]["tracker"] = again
    return runs


def _users_tracker(evaluation_tracker: type, output_dir: Path) -> Any:
    """A lighteval user's tracker line, as written for lighteval's own class: swapping the
    import (``from evalstream import SyncEvaluationTracker as EvaluationTracker``) is the only
    change, so no evalstream option may appear here."""
    return evaluation_tracker(output_dir=str(output_dir), save_details=True)


def _results_json(root: Path) -> dict[str, Any]:
    """The first run's results under ``root``."""
    return json.loads(min((root / "results").rglob("results_*.json")).read_text())


def _details(root: Path) -> dict[str, Path]:
    return {
        p.name.split("_20")[0].removeprefix("details_"): p
        for p in (root / "details").rglob("*.parquet")
    }


def test_results_agree_with_lighteval_tracker(runs: Runs) -> None:
    lv = _results_json(runs.root / "lv")["results"]
    es = _results_json(runs.root / "es")["results"]
    tasks = ["quiz:easy|0", "quiz:hard|0", "echo|0"]
    assert set(tasks) <= set(lv) and set(lv) <= set(es)
    logged = {  # what each task's metrics produce (loglikelihood_f1: a corpus metric whose
        "quiz:easy|0": {"acc", "loglikelihood_f1"},  # per-sample values are lighteval objects)
        "quiz:hard|0": {"acc"},
        "echo|0": {"em"},
    }
    # 0.13's _average takes its metrics from the first subtask and counts a missing one as 0.0;
    # ours averages each metric over the tasks that have it
    # (the Pipeline's task order comes from a set, so 0.13's "first subtask" varies by run)
    f1 = lv["quiz:easy|0"]["loglikelihood_f1"]
    if "loglikelihood_f1" in lv["quiz:_average|0"]:
        assert lv["quiz:_average|0"]["loglikelihood_f1"] == pytest.approx(f1 / 2)
    assert es["quiz:_average|0"]["loglikelihood_f1"] == pytest.approx(f1)
    for task, metrics in logged.items():  # per-task rows: every value, stderr of means too
        assert {k for k in es[task] if not k.endswith("_stderr")} == metrics
        for metric in metrics:
            assert es[task][metric] == pytest.approx(lv[task][metric], rel=1e-12), (task, metric)
            theirs, ours = lv[task][f"{metric}_stderr"], es[task][f"{metric}_stderr"]
            if metric == "loglikelihood_f1":  # bootstrap: ours std(replicates), 0.13's /sqrt(100)
                assert 4 < ours / theirs < 25, (ours, theirs)
            else:
                assert ours == pytest.approx(theirs, rel=1e-12), (task, metric)
    for row in ("quiz:_average|0", "all"):  # derived rows: same means; stderr as documented
        members = ["quiz:easy|0", "quiz:hard|0"] if row != "all" else tasks
        shared = set.intersection(*(logged[t] for t in members)) if row != "all" else {"acc", "em"}
        for metric in shared:
            having = [t for t in members if metric in logged[t]]
            assert es[row][metric] == pytest.approx(lv[row][metric], rel=1e-12), (row, metric)
            theirs = [lv[t][f"{metric}_stderr"] for t in having]
            ours = [es[t][f"{metric}_stderr"] for t in having]
            assert lv[row][f"{metric}_stderr"] == pytest.approx(sum(theirs) / len(theirs))
            assert es[row][f"{metric}_stderr"] == pytest.approx(
                math.sqrt(sum(s * s for s in ours)) / len(ours)
            )
    # what the Pipeline shows: lighteval's final dict is keyed "task:fewshot", ours "task|fewshot"
    lv_final = runs.outcomes["lighteval"]["final"]["results"]
    es_final = runs.outcomes["evalstream"]["final"]["results"]
    for task in tasks:
        assert es_final[task]["acc" if "quiz" in task else "em"] == pytest.approx(
            lv_final[task.replace("|", ":")]["acc" if "quiz" in task else "em"]
        )


def test_summary_hashes_agree(runs: Runs) -> None:
    lv = _results_json(runs.root / "lv")
    es = _results_json(runs.root / "es")
    for task, summary in lv["summary_tasks"].items():
        for key in ("hash_examples", "hash_input_tokens", "hash_cont_tokens"):
            assert es["summary_tasks"][task]["hashes"][key] == summary["hashes"][key], (task, key)
    assert es["config_general"]["model_config"]["model_name"] == "org/det"


def test_details_have_lighteval_shapes_and_values(runs: Runs) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from evalstream.details.lighteval_layout import DOC_TYPES, RESPONSE_TYPES

    lv_files, es_files = _details(runs.root / "lv"), _details(runs.root / "es")
    assert set(lv_files) == set(es_files) == {"quiz:easy|0", "quiz:hard|0", "echo|0"}
    for task, path in lv_files.items():
        theirs, ours = pq.read_table(path), pq.read_table(es_files[task])
        assert ours.column_names == theirs.column_names == ["doc", "metric", "model_response"]
        for column, declared in (
            ("doc", DOC_TYPES),
            ("model_response", RESPONSE_TYPES),
            ("metric", {}),
        ):
            their_type, our_type = theirs.schema.field(column).type, ours.schema.field(column).type
            assert [f.name for f in our_type] == [f.name for f in their_type], (task, column)
            for their_field, our_field in zip(their_type, our_type, strict=True):
                if "null" in str(their_field.type):  # 0.13 writes null where it saw no value
                    assert our_field.type in (their_field.type, declared.get(their_field.name)), (
                        task,
                        column,
                        their_field,
                    )
                else:
                    assert our_field.type.equals(their_field.type), (
                        task,
                        column,
                        their_field,
                        our_field,
                    )
        assert ours.to_pylist() == theirs.to_pylist(), task
        assert isinstance(ours.schema.field("metric").type, pa.StructType)


def test_lighteval_reads_our_details(runs: Runs) -> None:
    """lighteval's own loader reads our files; rows rebuild its ModelResponse and Doc."""
    from lighteval.logging.evaluation_tracker import EvaluationTracker
    from lighteval.models.model_output import ModelResponse
    from lighteval.tasks.requests import Doc

    reader = EvaluationTracker(output_dir=str(runs.root / "es"))
    reader.general_config_logger.model_name = "org/det"
    date_id = runs.outcomes["evalstream"]["tracker"].result.date_id
    # 0.13's filter wants names without the few-shot part (its own Pipeline passes "task|0")
    loaded = reader.load_details_datasets(date_id, ["quiz:easy", "quiz:hard", "echo"])
    assert set(loaded) == {"quiz:easy|0", "quiz:hard|0", "echo|0"}
    rows = list(loaded["echo|0"])
    assert len(rows) == 15
    responses = [ModelResponse(**r["model_response"]) for r in rows]
    assert all(len(r.text) == 1 for r in responses)
    docs = [Doc(**r["doc"]) for r in rows]
    assert sorted(int(d.id) for d in docs) == list(range(15))
    ours = runs.outcomes["evalstream"]["tracker"].load_details_datasets(date_id, ["quiz:easy|0"])
    assert [ModelResponse(**r["model_response"]) for r in ours["quiz:easy|0"]] == [
        ModelResponse(**r["model_response"]) for r in loaded["quiz:easy|0"]
    ]


def test_second_run_rescores_from_our_details(runs: Runs) -> None:
    """``load_responses_from_details_date_id``: the model is not called, the numbers repeat."""
    paths = sorted((runs.root / "es" / "results").rglob("results_*.json"))
    assert len(paths) == 2  # the first run, then the re-scored one
    original = json.loads(paths[0].read_text())["results"]["quiz:easy|0"]
    rescored = json.loads(paths[1].read_text())["results"]["quiz:easy|0"]
    assert rescored == pytest.approx(original)
    details = runs.outcomes["rescored"]["details"]["quiz:easy|0"]
    assert len(details) == 40
    assert os.path.isdir(runs.root / "es" / "details" / "org" / "det")


def test_readme_lines_run_with_lighteval(
    runs: Runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's "Use it with lighteval" snippet runs as written, with lighteval's DummyModel."""
    import re

    from lighteval.models.dummy.dummy_model import DummyModelConfig
    from lighteval.pipeline import ParallelismManager, PipelineParameters
    from lighteval.tasks.registry import Registry

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    body = readme[readme.index("## Use it with lighteval") :]
    match = re.search(r"```python\n(.*?)```", body, re.DOTALL)
    assert match is not None
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EVALSTREAM_LV_DATA", str(runs.root / "data"))
    monkeypatch.setattr(Registry, "_load_from_files", staticmethod(lambda files, prefix: {}))
    monkeypatch.setattr(Registry, "_load_from_subdirs", staticmethod(lambda dirs: {}))
    params = PipelineParameters(
        launcher_type=ParallelismManager.NONE,
        custom_tasks_directory=str(runs.root / "tasks_custom.py"),
    )
    config = DummyModelConfig(model_name="org/readme", cache_dir=str(tmp_path / "cache"))
    exec(  # noqa: S102 - the README's snippet, as written, with the user's three names given
        match.group(1), {"tasks": "quiz:hard|0", "pipeline_params": params, "model_config": config}
    )
    (results,) = (tmp_path / "results" / "results" / "org" / "readme").glob("results_*.json")
    assert json.loads(results.read_text())["results"]["quiz:hard|0"]["acc"] >= 0
    (details,) = (tmp_path / "results" / "details").rglob("details_quiz:hard|0_*.parquet")
    import pyarrow.parquet as pq

    assert pq.read_table(details).column_names == ["doc", "metric", "model_response"]
