"""The tracker's options: one frozen record, its defaults and its checks, in one place.

``EvaluationTracker``'s signature takes its defaults from ``DEFAULTS``; the settings a run
persists for recovery (``durability.runstate.RunSettings``) and the outputs (``sinks.outputs``)
read the same record, so a default changes here and nowhere else. No secret lives here: the Hub
token goes straight to the publisher and never into a record that could be written or logged.
"""

from __future__ import annotations

import msgspec

from evalstream._errors import ConfigError
from evalstream._naming import check_results_template
from evalstream._types import DETAILS_LAYOUTS, DetailsLayout


class Options(msgspec.Struct, frozen=True, kw_only=True):
    """Every option of a tracker but its collaborators (registry, runtime, shard, run info)."""

    save_details: bool = True
    push_to_hub: bool = False
    push_to_tensorboard: bool = False
    hub_results_org: str = ""
    tensorboard_metric_prefix: str = "eval"
    public: bool = False
    bootstrap_iters: int = 1000
    seed: int = 1234
    batch_size: int = 256
    inbox_capacity: int = 16
    keep_workdir: bool = False
    flush_every: int = 4096
    flush_interval: float = 1.0
    durable: bool = False
    hub_endpoint: str | None = None
    live_scalars_every: int | None = None
    details_workers: int | None = None
    details_layout: DetailsLayout = "flat"
    results_path_template: str = ""  # lighteval 0.13's; "" is results/MODEL
    use_wandb: bool = False
    baseline_margin: float = 0.01  # |new - baseline| under it counts as equivalent

    def __post_init__(self) -> None:
        """Checked at construction, so a bad option fails before the run starts."""
        if self.batch_size < 1 or self.inbox_capacity < 1 or self.flush_every < 1:
            raise ConfigError("batch_size, inbox_capacity and flush_every must be at least 1")
        if self.bootstrap_iters < 0 or self.bootstrap_iters == 1:
            raise ConfigError("bootstrap_iters must be 0 (no stderr) or at least 2")
        if self.flush_interval <= 0:
            raise ConfigError("flush_interval must be positive (seconds)")
        if not 0.0 <= self.baseline_margin < 1.0:
            raise ConfigError(
                f"baseline_margin must be in [0, 1) (a difference of means in [0, 1]), "
                f"not {self.baseline_margin!r}"
            )
        if self.results_path_template:
            check_results_template(self.results_path_template)
        if self.details_layout not in DETAILS_LAYOUTS:
            raise ConfigError(
                f"details_layout must be 'flat' or 'lighteval', not {self.details_layout!r}"
            )

    @property
    def needs_publisher(self) -> bool:
        """Whether anything is pushed to the Hub (the run, or the TensorBoard events)."""
        return self.push_to_hub or (self.push_to_tensorboard and bool(self.hub_results_org))


DEFAULTS = Options()
"""The defaults, as the tracker's signature shows them."""
