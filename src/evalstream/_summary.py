"""What ``save()`` returns: a frozen summary of the run, with one typed outcome per output."""

from __future__ import annotations

from typing import Any

import msgspec

__version__ = "0.1.0"
"""evalstream's version (also pyproject.toml's): stamped into every run's ``config_general``."""


class OutputOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """How one output (local files, Hub, TensorBoard) went; a failure is data, not a crash."""

    name: str
    ok: bool
    error: str | None = None
    paths: list[str] = []
    detail: dict[str, Any] = {}


class RunResult(msgspec.Struct, frozen=True, kw_only=True):
    """The saved run: the results dict as written, where every file went, and what failed."""

    date_id: str
    model_name: str
    results: dict[str, Any]
    results_path: str
    details_paths: dict[str, str]
    outputs: list[OutputOutcome]
    samples: dict[str, int]
    nonfinite_values: int = 0
    warnings: list[str] = []
    #: tasks that logged fewer samples than their declared effective_num_docs
    incomplete_tasks: dict[str, dict[str, int]] = {}
    workdir: str = ""

    @property
    def ok(self) -> bool:
        """True when every output succeeded."""
        return all(o.ok for o in self.outputs)

    def output(self, name: str) -> OutputOutcome | None:
        """The outcome of the output called ``name``, if it ran."""
        return next((o for o in self.outputs if o.name == name), None)
