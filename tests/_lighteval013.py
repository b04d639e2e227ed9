"""Look-alikes of lighteval 0.13's data objects, field for field (lighteval itself is not installed).

The same names, order and defaults as ``lighteval.tasks.requests.Doc``, ``lighteval.models.
model_output.ModelResponse``, a pydantic-like model config and a task with ``config``,
``version`` and ``aggregation()``; the real ones are driven by ``tests/lighteval/test_pipeline.py``
(``-m lighteval``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable


class SamplingMethod(StrEnum):
    GENERATIVE = "GENERATIVE"
    LOGPROBS = "LOGPROBS"
    PERPLEXITY = "PERPLEXITY"


@dataclass(slots=True)
class Doc:
    query: str
    choices: list[str]
    gold_index: int | list[int]
    instruction: str | None = None
    images: list[Any] | None = None
    specific: dict[str, Any] | None = None
    unconditioned_query: str | None = None
    original_query: str | None = None
    id: str = ""
    task_name: str = ""
    fewshot_samples: list[Any] = field(default_factory=list)
    sampling_methods: list[SamplingMethod] = field(default_factory=list)
    fewshot_sorting_class: str | None = None
    generation_size: int | None = None
    stop_sequences: list[str] | None = None
    use_logits: bool = False
    num_samples: int = 1
    generation_grammar: Any = None


@dataclass
class ModelResponse:
    input: str | list[Any] | None = None
    input_tokens: list[int] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    output_tokens: list[list[int]] = field(default_factory=list)
    text_post_processed: list[str] | None = None
    reasonings: list[str | None] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    argmax_logits_eq_gold: list[bool] = field(default_factory=list)
    logits: list[list[float]] | None = None
    unconditioned_logprobs: list[float] | None = None
    truncated_tokens_count: int = 0
    padded_tokens_count: int = 0


class ModelConfig:
    """Like 0.13's pydantic ``ModelConfig``: read through ``model_dump()``."""

    def __init__(self, model_name: str, **extra: Any) -> None:
        self.model_name = model_name
        self.extra = extra

    def model_dump(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "system_prompt": None, **self.extra}


@dataclass
class Metric:
    metric_name: str
    category: SamplingMethod
    corpus_level_fn: Callable[[list[Any]], Any]


@dataclass
class CorpusLevelMetric(Metric):
    """Its per-sample values are objects its corpus function reads by attribute."""


@dataclass
class LogprobCorpusMetricInput:
    golds: list[int]
    preds: list[float]


@dataclass
class TaskConfig:
    name: str
    metrics: list[Metric]
    hf_repo: str = "local/data"
    prompt_function: Callable[..., Any] | None = None
    num_fewshots: int = 0
    version: int = 0


class Task:
    """Like 0.13's ``LightevalTask``: ``config``, ``version``, ``full_name``, ``aggregation()``."""

    def __init__(self, config: TaskConfig) -> None:
        self.config = config
        self.version = config.version
        self.full_name = f"{config.name}|{config.num_fewshots}"
        self.metrics = config.metrics

    def aggregation(self) -> dict[str, Callable[[list[Any]], Any]]:
        return {m.metric_name: m.corpus_level_fn for m in self.metrics}
