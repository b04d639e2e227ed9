"""The tracker's internal interface: what recovery, merge and the sync facade may reach.

They drive an ordinary ``EvaluationTracker`` but need more than its public API: recovery and
merge replay journals with faults contained and add a ``partial`` section to the results; the
sync facade reads the details segments and the metric values for lighteval's attributes, and
the logged model. They use ``tracker.control`` — this object, with these names — and nothing
private, so the tracker's insides can change without breaking them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from pathlib import Path

    from evalstream._options import Options
    from evalstream._types import ModelInfo
    from evalstream.run.config import RunConfig
    from evalstream.run.host import RunHost


class RunControl:
    """Named internal handles on one tracker's run."""

    def __init__(self, host: RunHost, config: RunConfig, options: Options) -> None:
        self._host = host
        self._config = config
        self.options = options
        self.contain_faults = False
        """Recovery: what the actors cannot replay is skipped and counted, not fatal."""
        self.partial: dict[str, Any] | None = None
        """Recovery and merge: the ``evalstream`` section of the results (what was found)."""
        self.date_id = ""
        """Recovery and merge: the date their save intent recorded (else a new one)."""
        self.notes: list[str] = []
        """Recovery and resume: what reading the dead run found lost or damaged (a missing
        journal segment, a corrupt frame, an unreadable marker), added to RunResult.warnings."""

    def serve(self, workdir: Path) -> None:
        """Recovery and merge, before ``__aenter__``: work in ``workdir``, a folder inside the
        run they serve, so their state never shows as a run of its own."""
        self._host.serve(workdir)

    @property
    def model(self) -> ModelInfo | None:
        """The model logged so far, if any."""
        return self._config.model

    def set_bootstrap_iters(self, iters: int) -> None:
        """lighteval's ``metrics_logger.aggregate(bootstrap_iters=...)``: for the next save."""
        self.options = msgspec.structs.replace(self.options, bootstrap_iters=iters)

    def details_segments(self) -> dict[str, Path]:
        """Each task's details segment in the working folder (rows as logged so far)."""
        coordinator = self._host.coordinator
        assert coordinator is not None, "the run has not started"
        return {name: t.segment for name, t in coordinator.details.tasks().items()}

    async def metric_values(self) -> dict[str, dict[str, list[object]]]:
        """Every metric value routed to the metrics actor so far, by task and metric."""
        coordinator = self._host.coordinator
        assert coordinator is not None, "the run has not started"
        await coordinator.flush()
        return coordinator.metrics.values()

    def details_pids(self) -> list[int]:
        """The details worker processes this run writes through."""
        coordinator = self._host.coordinator
        return list(coordinator.details.pids) if coordinator is not None else []
