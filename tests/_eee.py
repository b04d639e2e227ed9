"""A real saved run for the every_eval_ever export tests, made with the real tracker.

Three tasks of different kinds, each with a standard error on every metric: a multiple-choice
task scored by log-probabilities (``acc`` 0/1 and a continuous ``margin``), a generative task
of a Hugging Face dataset (``em`` 0/1, sampling settings), and a perplexity task (lower is
better). Responses are lighteval 0.13's shape, so both details layouts hold the same samples.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import anyio

from evalstream import Doc, EvaluationTracker, ModelInfo, ModelResponse, TaskSpec

if TYPE_CHECKING:
    from pathlib import Path

    from evalstream import RunResult
    from evalstream._types import DetailsLayout

MODEL = "org/tiny-model"
MC, GEN, PPL = "suite|mc:alpha|0", "suite|gen:beta|3", "other|ppl|0"
TASKS = [MC, GEN, PPL]
GEN_CONFIG = {
    "hf_repo": "org/beta-dataset",
    "hf_subset": "default",
    "evaluation_splits": ["test"],
    "generation_size": 16,
    "stop_sequence": ["\n"],
}


async def make_eee_run(
    output_dir: Path, *, docs: int = 120, layout: DetailsLayout = "flat"
) -> RunResult:
    """Save the run: ``docs`` samples per task, seeded (the same run every time)."""
    rng = random.Random(7)
    async with EvaluationTracker(output_dir, bootstrap_iters=100, details_layout=layout) as tracker:
        await tracker.log_model_info(
            ModelInfo(
                model_name=MODEL,
                model_sha="abc123",
                model_dtype="bfloat16",
                model_config={"generation_parameters": {"temperature": 0.7, "top_p": 0.9}},
            )
        )
        await tracker.log_tasks(
            [
                TaskSpec(name=MC, version=2, categories=["multichoice"]),
                TaskSpec(name=GEN, version=1, config=GEN_CONFIG, categories=["generative"]),
                TaskSpec(name=PPL, version=0, categories=["perplexity"]),
            ]
        )
        for i in range(docs):
            right = rng.random() < 0.6
            logprobs = [-0.5, -1.5] if right else [-1.5, -0.5]
            doc = Doc(
                query=f"Which letter {i}?",
                choices=["A", "B"],
                gold_index=0,
                ctx=f"Q{i}",
                id=f"mc-{i}",
            )
            await tracker.log_sample(
                MC,
                doc,
                [ModelResponse(logprobs=logprobs, input=f"Q{i}\nA:")],
                {"acc": float(right), "margin": logprobs[0] - logprobs[1] + rng.gauss(0, 0.1)},
            )
            answer = str(i) if rng.random() < 0.5 else "?"
            doc = Doc(
                query=f"Say {i}", choices=[str(i)], gold_index=0, ctx=f"Say {i}:", id=f"gen-{i}"
            )
            await tracker.log_sample(
                GEN,
                doc,
                [ModelResponse(text=[answer], input=f"Say {i}:")],
                {"em": float(answer == str(i))},
            )
            doc = Doc(query=f"Some text {i}.", id=f"ppl-{i}")
            await tracker.log_sample(
                PPL,
                doc,
                [ModelResponse(logprobs=[-rng.random()])],
                {"word_perplexity": 1 + rng.random() * 9},
            )
        for task in TASKS:
            await tracker.log_num_docs(task, docs, docs)
        return await tracker.save()


def saved_eee_run(output_dir: Path, **kwargs: object) -> RunResult:
    """``make_eee_run`` from synchronous code."""
    return anyio.run(lambda: make_eee_run(output_dir, **kwargs))  # type: ignore[arg-type]


async def make_odd_run(output_dir: Path, *, save_details: bool = True) -> RunResult:
    """A run of a model named without its organisation, one task, a metric NaN on one sample
    and one NaN on all (their results are NaN: no score), and ``acc`` fine."""
    async with EvaluationTracker(
        output_dir, bootstrap_iters=0, save_details=save_details
    ) as tracker:
        await tracker.log_model_info(ModelInfo(model_name="tiny"))
        await tracker.log_tasks([TaskSpec(name="t|a|0")])
        for i in range(5):
            metrics = {
                "acc": float(i % 2),
                "odd": float("nan") if i == 0 else 0.5,
                "allnan": float("nan"),
            }
            doc = Doc(query=f"q{i}", choices=["A", "B"], gold_index=0)
            await tracker.log_sample("t|a|0", doc, [ModelResponse(text=["A"])], metrics)
        return await tracker.save()


def saved_odd_run(output_dir: Path, **kwargs: object) -> RunResult:
    """``make_odd_run`` from synchronous code."""
    return anyio.run(lambda: make_odd_run(output_dir, **kwargs))  # type: ignore[arg-type]
