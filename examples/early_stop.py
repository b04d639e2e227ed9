"""Deciding early against a baseline: stop evaluating a checkpoint once its answer is known.

An eval daemon scores each new checkpoint on the same tasks as a saved baseline run. With
``baseline=`` the tracker pairs every sample with the baseline's on the same doc and keeps a
confidence sequence of the difference, valid however often it is looked at; this script stops a
task as soon as it is decided better, worse or equivalent (within ``--margin``), and prints how
many samples that saved::

    python examples/early_stop.py /tmp/evals

It first records the baseline run in OUTPUT_DIR (a daemon would have it already). The "models"
are stand-ins that answer deterministically: the checkpoint is better on one task, the same on
another, and worse on the third.
"""

from __future__ import annotations

import argparse
import os
import random

import anyio

from evalstream import Doc, EvaluationTracker, ModelInfo, ModelResponse, TaskSpec

TASKS = [TaskSpec(name=f"demo|{name}|0") for name in ("arithmetic", "trivia", "logic")]
DOCS_PER_TASK = int(os.environ.get("DOCS_PER_TASK", "3000"))
BASELINE_SKILL = 0.6
CHECKPOINT_SKILL = {"demo|arithmetic|0": 0.72, "demo|trivia|0": 0.6, "demo|logic|0": 0.52}


def dataset(task: TaskSpec) -> list[Doc]:
    """A task's docs; a real harness loads them."""
    return [
        Doc(query=f"{task.name} question {i}", choices=["A", "B"], gold_index=0, id=str(i))
        for i in range(DOCS_PER_TASK)
    ]


def correct(doc: Doc, skill: float, model: str) -> bool:
    """The stand-in model: a doc's difficulty is fixed, so two models agree on most docs, but
    each model also slips on its own docs (5 % of them, either way)."""
    right = random.Random(doc.query).random() < skill
    return right != (random.Random(model + doc.query).random() < 0.05)


async def record_baseline(output_dir: str) -> str:
    """Evaluate the baseline on every doc and save it; returns its results file."""
    async with EvaluationTracker(output_dir) as tracker:
        await tracker.log_model_info(ModelInfo(model_name="demo/baseline"))
        await tracker.log_tasks(TASKS)
        for task in TASKS:
            for doc in dataset(task):
                acc = float(correct(doc, BASELINE_SKILL, "baseline"))
                await tracker.log_sample(task.name, doc, ModelResponse(text=["A"]), {"acc": acc})
        result = await tracker.save()
    return result.results_path


async def evaluate_checkpoint(output_dir: str, baseline: str, margin: float) -> dict[str, int]:
    """Evaluate the checkpoint task by task, each until it is decided; returns docs used."""
    used: dict[str, int] = {}
    async with EvaluationTracker(
        output_dir, baseline=baseline, baseline_margin=margin, batch_size=50
    ) as tracker:
        await tracker.log_model_info(ModelInfo(model_name="demo/checkpoint"))
        await tracker.log_tasks(TASKS)
        for task in TASKS:
            skill = CHECKPOINT_SKILL[task.name]
            for i, doc in enumerate(dataset(task), start=1):
                acc = float(correct(doc, skill, "checkpoint"))
                await tracker.log_sample(task.name, doc, ModelResponse(text=["A"]), {"acc": acc})
                used[task.name] = i
                if i % 50 == 0:
                    await tracker.flush()  # the shipped samples are in the estimates
                    versus = tracker.progress().baseline.get(task.name, {}).get("acc")
                    if versus is not None and versus.verdict != "undecided":
                        break
            versus = tracker.progress().baseline[task.name]["acc"]
            print(
                f"{task.name:20} {versus.verdict:10} after {used[task.name]:5} docs: "
                f"new - baseline = {versus.diff:+.4f}, 95% sequence "
                f"[{versus.low:+.4f}, {versus.high:+.4f}]"
            )
        await tracker.save()  # the run holds the samples it evaluated
    return used


async def main(output_dir: str, margin: float) -> None:
    baseline = await record_baseline(output_dir)
    used = await evaluate_checkpoint(output_dir, baseline, margin)
    total = DOCS_PER_TASK * len(TASKS)
    spent = sum(used.values())
    print(f"evaluated {spent} of {total} samples: saved {total - spent} ({1 - spent / total:.0%})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir")
    parser.add_argument("--margin", type=float, default=0.05, help="equivalence margin")
    args = parser.parse_args()
    anyio.run(main, args.output_dir, args.margin)
