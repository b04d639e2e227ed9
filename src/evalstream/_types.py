"""Domain inputs: what a harness hands the tracker. Frozen msgspec Structs, fields as lighteval's.

Fields are added only at the end and with defaults, so journals and segments written by an older
evalstream still decode (msgspec schema evolution). Per-sample structs are not tracked by the
garbage collector (``gc=False``: they hold no cycles), so a million logged samples do not make
every full collection slower.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

MetricCategory = Literal[
    "generative",
    "generative_sampling",
    "generative_logprob",
    "multichoice",
    "multichoice_one_token",
    "multichoice_pmi",
    "perplexity",
    "target_perplexity",
    "llm_as_judge",
    "llm_as_judge_multi_turn",
    "ignored",
]
"""lighteval's metric categories, lower-cased; they decide which detail columns are filled."""

METRIC_CATEGORIES: frozenset[str] = frozenset(MetricCategory.__args__)  # type: ignore[attr-defined]


class Doc(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """One sample of a task; ``ctx`` is the full prompt after few-shot expansion."""

    query: str
    choices: list[str] = []
    gold_index: int | list[int] = 0
    original_query: str = ""
    specific: dict[str, Any] | None = None
    task_name: str = ""
    instruction: str = ""
    fewshot_sorting_class: str | None = None
    ctx: str = ""
    num_asked_few_shots: int = 0
    num_effective_few_shots: int = -1
    unconditioned_query: str | None = None
    id: str = ""

    def golds(self) -> list[str]:
        """The choices at the gold indices, as lighteval's ``Doc.get_golds``."""
        indices = [self.gold_index] if isinstance(self.gold_index, int) else self.gold_index
        return [self.choices[i] for i in indices if 0 <= i < len(self.choices)]


class ModelResponse(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """One model output for a doc; a doc may have several (one per choice, or samples)."""

    result: Any = None
    input_tokens: list[int] = []
    generated_tokens: list[int] = []
    truncated_tokens_count: int = 0
    padded_tokens_count: int = 0
    logits: list[float] | None = None


class ModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The evaluated model; everything but the name is optional."""

    model_name: str
    model_sha: str | None = None
    model_dtype: str | None = None
    model_size: str | None = None


class TaskSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A task: full name (``suite|task|fewshot`` or ``task|fewshot``), version, config, metrics.

    ``aggregations`` names, per metric, the registered aggregation turning per-sample values into
    one number; a metric absent from it is averaged (``"mean"``).
    """

    name: str
    version: int = 0
    config: dict[str, Any] = {}
    aggregations: dict[str, str] = {}
    categories: list[MetricCategory] = []

    def aggregation_of(self, metric: str) -> str:
        """The aggregation name for ``metric`` (``"mean"`` unless the spec says otherwise)."""
        return self.aggregations.get(metric, "mean")
