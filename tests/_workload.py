"""Deterministic workloads shared by the tests: docs, outputs and metrics from a seed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evalstream import Doc, ModelResponse, TaskSpec

if TYPE_CHECKING:
    import random


@dataclass
class Sent:
    """What a test logged for one task, to compare with what was written."""

    docs: list[Doc] = field(default_factory=list)
    outputs: list[list[ModelResponse]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)


TASKS = [
    TaskSpec(name="lb|mmlu:anatomy|5", version=1, config={"k": 1}, categories=["multichoice"]),
    TaskSpec(name="lb|mmlu:astronomy|5", version=2, categories=["multichoice"]),
    TaskSpec(name="lb|mmlu:virology|5", version=0, categories=["multichoice"]),
    TaskSpec(name="lb|gsm8k|5", version=3, categories=["generative"]),
    TaskSpec(name="arc:easy|25", version=1, categories=["multichoice"]),
]


def sample(
    rng: random.Random, task: TaskSpec, i: int
) -> tuple[Doc, list[ModelResponse], dict[str, Any]]:
    """One sample of ``task``: a doc, its outputs and metrics."""
    generative = "generative" in task.categories
    doc = Doc(
        query=f"{task.name} question {i} {rng.random():.6f}",
        choices=["A", "B", "C", "D"],
        gold_index=i % 4,
        ctx=f"few-shot context\n{task.name} question {i}",
        instruction="Answer.",
        num_asked_few_shots=5,
        num_effective_few_shots=5 if i % 17 else 3,
        specific={"row": i} if i % 3 == 0 else None,
        id=str(i),
    )
    n_out = 1 if generative else 4
    outputs = [
        ModelResponse(
            result=[f"answer {i}"] if generative else [rng.uniform(-9, -1)],
            input_tokens=[rng.randrange(1000) for _ in range(rng.randrange(1, 8))],
            generated_tokens=[rng.randrange(1000) for _ in range(2)],
            truncated_tokens_count=1 if i % 11 == 0 else 0,
            padded_tokens_count=2 if i % 13 == 0 else 0,
        )
        for _ in range(n_out)
    ]
    metrics: dict[str, Any] = (
        {"em": float(rng.random() < 0.3)}
        if generative
        else {"acc": float(rng.random() < 0.6), "loss": rng.gauss(1.0, 0.5)}
    )
    return doc, outputs, metrics
