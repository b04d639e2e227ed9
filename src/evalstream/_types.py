"""Domain inputs: what a harness hands the tracker. Frozen msgspec Structs, fields as lighteval's.

Fields are added only at the end and with defaults, so journals and segments written by an older
evalstream still decode (msgspec schema evolution). Per-sample structs are not tracked by the
garbage collector (``gc=False``: they hold no cycles), so a million logged samples do not make
every full collection slower.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    # lighteval 0.13's Doc fields. Their empty defaults are tuples: a ``[]`` default is a new
    # GC-tracked list per instance, which made every Doc and ModelResponse 3x dearer to build and
    # decode, and GC passes 2.5x.
    fewshot_samples: Sequence[Any] = ()
    sampling_methods: Sequence[str] = ()
    generation_size: int | None = None
    stop_sequences: list[str] | None = None
    use_logits: bool = False
    num_samples: int = 1
    generation_grammar: Any = None
    images: Sequence[bytes] | None = None
    """Encoded image files (PNG, JPEG, ...); a lighteval Doc's PIL images are stored as PNG."""

    def golds(self) -> list[str]:
        """The choices at the gold indices, as lighteval's ``Doc.get_golds``."""
        indices = [self.gold_index] if isinstance(self.gold_index, int) else self.gold_index
        return [self.choices[i] for i in indices if 0 <= i < len(self.choices)]


class ModelResponse(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """A model's output for a doc, in either of lighteval's shapes.

    Seed-era: several responses per doc, each with ``result`` and ``generated_tokens``.
    lighteval 0.13: **one** response per doc with ``text`` / ``logprobs`` / ``output_tokens``
    (one token list per choice or sample) and the other fields below. Both are stored as given.
    """

    result: Any = None
    input_tokens: list[int] = []
    generated_tokens: list[int] = []
    truncated_tokens_count: int = 0
    padded_tokens_count: int = 0
    logits: list[Any] | None = None
    # lighteval 0.13's fields (empty defaults are tuples: see Doc)
    input: str | list[Any] | None = None
    text: Sequence[str] = ()
    output_tokens: Sequence[list[int]] = ()
    text_post_processed: list[str] | None = None
    reasonings: Sequence[str | None] = ()
    logprobs: Sequence[float] = ()
    argmax_logits_eq_gold: Sequence[bool] = ()
    unconditioned_logprobs: list[float] | None = None

    @property
    def is_v013(self) -> bool:
        """Whether this is a lighteval 0.13 response (no seed-era ``result`` or tokens)."""
        return self.result is None and not self.generated_tokens

    def predictions(self) -> list[Any]:
        """What the model predicted: ``result`` (seed-era), else the texts, else the logprobs."""
        if not self.is_v013:
            return self.result if isinstance(self.result, list) else [self.result]
        return list(self.text) if self.text else list(self.logprobs)

    def continuation_tokens(self) -> list[list[int]]:
        """The continuation token lists: one per choice or sample."""
        return [self.generated_tokens] if not self.is_v013 else list(self.output_tokens)


class ModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The evaluated model; everything but the name is optional."""

    model_name: str
    model_sha: str | None = None
    model_dtype: str | None = None
    model_size: str | None = None
    model_config: dict[str, Any] | None = None
    """The model's configuration (lighteval 0.13's ``model_config.model_dump()``)."""


DetailsLayout = Literal["flat", "lighteval"]
"""Details parquet columns: ``flat`` (the reference format) or ``lighteval`` (0.13's structs)."""
DETAILS_LAYOUTS: frozenset[str] = frozenset(DetailsLayout.__args__)  # type: ignore[attr-defined]


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
