"""lighteval 0.13's side of scripts/bench.py: one measurement per process, printed as RESULT json.

Per sample it does what ``Pipeline`` does (``metrics_logger.log`` + ``details_logger.log``, timed
as the caller-side cost), and at the end what ``Pipeline.evaluate`` does (``log_end_time``, both
``aggregate()`` calls, then ``save()``), on the same content as the evalstream side: one
ModelResponse holding the 40 input tokens, 4 continuation tokens and 4 logprobs. Inputs and
measurement loops come from bench.py. In W2 the synchronous calls run on the event loop (each
producer yields after every sample, since lighteval never yields) and save() blocks the loop.

Usage (by bench.py): bench_lighteval_worker.py PARAMS_JSON
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import anyio
from bench import Raw, check_outputs, doc_fields, emit, measure, response_fields, task_names
from lighteval.logging.evaluation_tracker import EvaluationTracker
from lighteval.metrics.metrics import Metrics
from lighteval.models.abstract_model import ModelConfig
from lighteval.models.model_output import ModelResponse
from lighteval.tasks.lighteval_task import LightevalTask, LightevalTaskConfig
from lighteval.tasks.requests import Doc, SamplingMethod


def prompt_fn(line: Any, task_name: str) -> Any:  # never called: Docs are built directly
    raise NotImplementedError


def make_task(full_name: str) -> LightevalTask:
    """A real lighteval task (no download) whose full name is ``full_name`` (``name|fewshot``)."""
    name, fewshot = full_name.rsplit("|", 1)
    cfg = LightevalTaskConfig(
        name=name,
        prompt_function=prompt_fn,
        hf_repo="bench/fake",
        hf_subset="default",
        metrics=[Metrics.loglikelihood_acc],
        evaluation_splits=["test"],
        num_fewshots=int(fewshot),
    )
    return LightevalTask(cfg)


def build(task: str, r: Raw) -> tuple[Doc, ModelResponse, dict[str, int]]:
    """lighteval 0.13's Doc and single ModelResponse for one sample."""
    doc = Doc(**doc_fields(task, r), sampling_methods=[SamplingMethod.LOGPROBS])
    return doc, ModelResponse(**response_fields(r)), {"acc": r.acc}


async def run(p: dict[str, Any]) -> dict[str, Any]:
    """One lighteval measurement of workload ``p["workload"]``."""
    out = Path(p["out"])
    tracker = EvaluationTracker(output_dir=str(out), save_details=True)
    tracker.general_config_logger.log_model_info(ModelConfig(model_name="org/model"))
    tracker.general_config_logger.log_args_info(num_fewshot_seeds=1, max_samples=None, job_id="0")
    tasks = {t.full_name: t for t in map(make_task, task_names(p["workload"], p["tasks"]))}
    tracker.task_config_logger.log(tasks)
    for name, task in tasks.items():
        tracker.versions_logger.log(name, task.version)
    metrics_log, details_log = tracker.metrics_logger.log, tracker.details_logger.log

    def log(name: str, doc: Doc, resp: ModelResponse, metrics: dict[str, int]) -> None:
        metrics_log(name, metrics)
        details_log(name, doc, resp, metrics)

    async def save() -> None:
        tracker.general_config_logger.log_end_time()
        tracker.metrics_logger.aggregate(task_dict=tasks, bootstrap_iters=1000)
        tracker.details_logger.aggregate()
        tracker.save()

    return check_outputs(out, await measure(p, build, log, save))


if __name__ == "__main__":
    logging.getLogger("lighteval").setLevel(logging.WARNING)
    emit(anyio.run(run, json.loads(sys.argv[1])))
