"""Real run folders for the command-line and report tests, made with the real tracker.

Per-doc outcomes are a pure function of a doc's difficulty ``u`` (uniform, the same in every run
of a seed) and the run's skill ``p``: a doc is right when ``u < p``. Two runs of skills ``pa``
and ``pb`` on the same docs therefore differ by ``pb - pa`` in truth (the docs with
``pa <= u < pb``), which is what ``compare`` must find.

``python tests/_runs.py OUTPUT_DIR N`` is the child that dies: it logs ``N`` samples, flushes,
prints ``FLUSHED`` and waits to be SIGKILLed.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from evalstream import Doc, EvaluationTracker, ModelInfo, ModelResponse, TaskSpec

if TYPE_CHECKING:
    from evalstream import RunResult
    from evalstream._types import DetailsLayout

TASKS = ["suite|bench:alpha|0", "suite|bench:beta|0", "other|gamma|0"]
MODEL = "org/model"


def difficulties(docs: int, seed: int = 0) -> list[float]:
    """Each doc's difficulty ``u``: shared by every run of the same seed (one seed per task)."""
    rng = random.Random(seed)
    return [rng.random() for _ in range(docs)]


async def make_run(
    output_dir: Path,
    skill: float,
    *,
    docs: int = 400,
    seed: int = 0,
    model: str = MODEL,
    prompt_tag: str = "",
    score_noise: int | None = None,
    remix: int | None = None,
    token_base: int = 1,
    save_details: bool = True,
    details_layout: DetailsLayout = "flat",
) -> RunResult:
    """Save a run of ``skill`` over ``docs`` docs per task; ``prompt_tag`` changes prompts.

    Every task logs ``acc`` (0/1); with ``score_noise`` set, also a continuous ``score``
    (skill - u + 0.5 + seeded noise, not 0/1) so the paired bootstrap path is exercised. ``remix`` redraws
    the difficulty of about half the docs (seeded by it): same skill, same truth, other docs right.
    ``token_base`` changes the input tokens (another tokenizer) and nothing else.
    """
    noise = random.Random(score_noise)
    async with EvaluationTracker(
        output_dir, bootstrap_iters=100, save_details=save_details, details_layout=details_layout
    ) as tracker:
        await tracker.log_model_info(ModelInfo(model_name=model))
        await tracker.log_tasks(
            [TaskSpec(name=t, version=1, categories=["multichoice"]) for t in TASKS]
        )
        for k, task in enumerate(TASKS):
            u = difficulties(docs, 100 * seed + k)
            if remix is not None:
                rng = random.Random(100 * remix + k)
                u = [rng.random() if rng.random() < 0.5 else x for x in u]
            for i in range(docs):
                doc = Doc(
                    query=f"{task} question {i}?",
                    choices=["A", "B"],
                    gold_index=0,
                    ctx=f"{prompt_tag}Q: {task} question {i}?\nA:",
                    id=str(i),
                )
                right = u[i] < skill
                metrics = {"acc": float(right)}
                if score_noise is not None:
                    metrics["score"] = skill - u[i] + 0.5 + noise.gauss(0, 0.1)
                outputs = [
                    ModelResponse(result=[0.0 if right else -1.0], input_tokens=[token_base, 2, i]),
                    ModelResponse(result=[-1.0 if right else 0.0], input_tokens=[token_base, 3, i]),
                ]
                await tracker.log_sample(task, doc, outputs, metrics)
            await tracker.log_num_docs(task, docs, docs)
        return await tracker.save()


def saved_run(output_dir: Path, skill: float, **kwargs: object) -> RunResult:
    """``make_run`` from synchronous code."""
    return anyio.run(lambda: make_run(output_dir, skill, **kwargs))  # type: ignore[arg-type]


def killed_run(output_dir: Path, samples: int) -> Path:
    """A run SIGKILLed after ``samples`` flushed samples; returns its run folder."""
    child = subprocess.Popen(
        [sys.executable, __file__, str(output_dir), str(samples)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    workdir = child.stdout.readline().split(maxsplit=1)[1].strip()
    assert child.stdout.readline().strip() == "FLUSHED"
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL
    child.stdout.close()
    return Path(workdir)


async def _child(output_dir: str, samples: int) -> None:
    async with EvaluationTracker(output_dir, bootstrap_iters=0) as tracker:
        print("WORKDIR", tracker.workdir, flush=True)  # noqa: T201 - the parent reads it
        await tracker.log_model_info(ModelInfo(model_name=MODEL))
        await tracker.log_tasks([TaskSpec(name=t, version=1) for t in TASKS])
        for i in range(samples):
            doc = Doc(query=f"q{i}", choices=["A", "B"], gold_index=0, ctx=f"Q{i}", id=str(i))
            outputs = [ModelResponse(result=[0.0], input_tokens=[1, i])]
            await tracker.log_sample(TASKS[i % 3], doc, outputs, {"acc": float(i % 2)})
        await tracker.flush()
        print("FLUSHED", flush=True)  # noqa: T201
        await anyio.sleep_forever()


if __name__ == "__main__":
    anyio.run(_child, sys.argv[1], int(sys.argv[2]))
