"""``evalstream demo``: a realistic async evaluation, tracked end to end.

A simulated model answers with random latency while 64 requests are in flight, over a benchmark
suite of MMLU-like subtasks plus multiple-choice and generative tasks; every scored sample is
logged as it completes, and the run is saved at the end.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from evalstream._types import Doc, MetricCategory, ModelInfo, ModelResponse, TaskSpec
from evalstream.run.tracker import EvaluationTracker

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from evalstream._summary import RunResult


@dataclass(frozen=True)
class DemoTask:
    spec: TaskSpec
    docs: int
    skill: float
    generative: bool = False


def demo_tasks(total: int) -> list[DemoTask]:
    """Eight tasks: a four-subject MMLU suite, ARC, HellaSwag, TruthfulQA and GSM8K."""
    mc: list[MetricCategory] = ["multichoice"]
    gen: list[MetricCategory] = ["generative"]
    layout = [
        ("leaderboard|mmlu:abstract_algebra|5", 0.45, False),
        ("leaderboard|mmlu:anatomy|5", 0.62, False),
        ("leaderboard|mmlu:astronomy|5", 0.70, False),
        ("leaderboard|mmlu:college_physics|5", 0.51, False),
        ("leaderboard|arc:challenge|25", 0.66, False),
        ("leaderboard|hellaswag|10", 0.80, False),
        ("leaderboard|truthfulqa:mc|0", 0.48, False),
        ("leaderboard|gsm8k|5", 0.40, True),
    ]
    per_task = max(1, total // len(layout))
    out = []
    for name, skill, generative in layout:
        config = {
            "hf_repo": "demo/" + name.split("|")[1].split(":")[0],
            "evaluation_splits": ["test"],
            "few_shots_split": "dev",
            "generation_size": 256 if generative else 1,
            "stop_sequence": ["\n\n"] if generative else [],
            "metrics": ["em"] if generative else ["acc", "acc_norm"],
        }
        spec = TaskSpec(name=name, version=1, config=config, categories=gen if generative else mc)
        out.append(DemoTask(spec, per_task, skill, generative))
    return out


async def fake_model(rng: random.Random, task: DemoTask, doc: Doc) -> list[ModelResponse]:
    """A model behind a network: random latency, then log-likelihoods or a generation."""
    await anyio.sleep(rng.uniform(0.002, 0.02))
    prompt = random.Random(doc.ctx)  # the prompt's tokens depend on the prompt only
    tokens = [prompt.randrange(32000) for _ in range(40)]
    right = rng.random() < task.skill
    gold = doc.gold_index if isinstance(doc.gold_index, int) else doc.gold_index[0]
    if task.generative:
        answer = doc.choices[gold] if right else str(rng.randrange(1000))
        return [
            ModelResponse(
                result=[answer],
                input_tokens=tokens,
                generated_tokens=[rng.randrange(32000) for _ in range(12)],
            )
        ]
    logprobs = [rng.uniform(-12.0, -2.0) for _ in doc.choices]
    if right:
        logprobs[gold] = max(logprobs) + rng.uniform(0.1, 1.0)
    return [
        ModelResponse(
            result=[lp],
            input_tokens=tokens,
            generated_tokens=[rng.randrange(99)],
            truncated_tokens_count=int(rng.random() < 0.01),
        )
        for lp in logprobs
    ]


def make_doc(task: DemoTask, i: int) -> Doc:
    """Doc ``i`` of ``task``: a ~160-character prompt and four choices, the same in every run
    (whatever the seed), so two demo runs can be compared doc by doc."""
    rng = random.Random(f"{task.spec.name}/{i}")
    words = " ".join(
        rng.choice(["model", "energy", "cell", "river", "number", "theory", "law"])
        for _ in range(22)
    )
    question = f"Question {i}: {words}?"
    choices = [str(rng.randrange(1000))] if task.generative else ["A", "B", "C", "D"]
    return Doc(
        query=question,
        choices=choices,
        gold_index=0 if task.generative else i % 4,
        ctx=f"The following are questions (with answers).\n\n{question}\nAnswer:",
        num_asked_few_shots=5,
        num_effective_few_shots=5 if rng.random() > 0.02 else 4,
        id=str(i),
        task_name=task.spec.name,
    )


def score(task: DemoTask, doc: Doc, outputs: list[ModelResponse]) -> dict[str, float]:
    """Per-sample metrics: accuracy for multiple choice, exact match for generation."""
    gold = doc.gold_index if isinstance(doc.gold_index, int) else doc.gold_index[0]
    if task.generative:
        return {"em": float(outputs[0].result[0] == doc.choices[gold])}
    lls = [o.result[0] for o in outputs]
    best = max(range(len(lls)), key=lls.__getitem__)
    # length-normalised choice, with a little per-choice noise standing in for token counts
    norm = max(range(len(lls)), key=lambda k: lls[k] / (1.0 + 0.1 * (hash((doc.id, k)) % 7)))
    return {"acc": float(best == gold), "acc_norm": float(norm == gold)}


async def run_demo(
    output_dir: str,
    *,
    samples: int = 20_000,
    concurrency: int = 64,
    seed: int = 0,
    on_progress: Callable[[int, int, str], None] | None = None,
    on_started: Callable[[Path], None] | None = None,
) -> RunResult:
    """Evaluate the demo tasks with ``concurrency`` requests in flight and save the run.

    ``on_progress(done, total, phase)`` is called a few times a second while samples are
    logged, then once with phase ``"saving"`` (the command line draws a bar on a terminal).
    ``on_started(workdir)`` gets the run's folder once the run has started (the command line
    names it when the demo is interrupted).
    """
    report = on_progress or (lambda done, total, phase: None)
    rng = random.Random(seed)
    tasks = demo_tasks(samples)
    work = [(t, i) for t in tasks for i in range(t.docs)]
    rng.shuffle(work)
    done = 0
    async with EvaluationTracker(output_dir, save_details=True) as tracker:
        if on_started is not None:
            on_started(tracker.workdir)
        await tracker.log_args_info(num_fewshot_seeds=1, max_samples=None, job_id="demo")
        await tracker.log_model_info(
            ModelInfo(
                model_name="demo-org/simulated-7b",
                model_sha="0" * 40,
                model_dtype="bfloat16",
                model_size="13.5 GB",
            )
        )
        await tracker.log_tasks([t.spec for t in tasks])
        send, receive = anyio.create_memory_object_stream[tuple[DemoTask, int]](len(work))
        for item in work:
            send.send_nowait(item)
        send.close()

        async def worker() -> None:
            nonlocal done
            async with receive.clone() as items:
                async for task, i in items:
                    doc = make_doc(task, i)
                    outputs = await fake_model(rng, task, doc)
                    await tracker.log_sample(
                        task.spec.name, doc, outputs, score(task, doc, outputs)
                    )
                    done += 1

        async def progress() -> None:
            while True:
                report(done, len(work), "logging")
                await anyio.sleep(0.2)

        async with anyio.create_task_group() as tg:
            tg.start_soon(progress)
            async with anyio.create_task_group() as workers:
                for _ in range(concurrency):
                    workers.start_soon(worker)
            tg.cancel_scope.cancel()
        receive.close()
        for t in tasks:
            await tracker.log_num_docs(t.spec.name, t.docs, t.docs)
        report(done, len(work), "saving")
        return await tracker.save()


def format_results(result: RunResult) -> str:
    """The results as an aligned text table, then the files written."""
    lines = [f"{'Task':<40} {'Metric':<18} {'Value':>8} {'Stderr':>8}", "-" * 77]
    for task, row in result.results["results"].items():
        for metric, value in row.items():
            if metric.endswith("_stderr") or value is None:
                continue
            stderr = row.get(f"{metric}_stderr")
            err = f"{stderr:8.4f}" if isinstance(stderr, float) else "       -"
            lines.append(f"{task:<40} {metric:<18} {value:8.4f} {err}")
            task = ""
    lines.append("")
    lines.append(f"results: {result.results_path}")
    lines.append(
        f"details: {len(result.details_paths)} parquet files in "
        f"{result.details_paths and next(iter(result.details_paths.values())).rsplit('/', 1)[0]}"
    )
    for outcome in result.outputs:
        lines.append(
            f"output {outcome.name}: {'ok' if outcome.ok else 'FAILED: ' + str(outcome.error)}"
        )
    return "\n".join(lines)
