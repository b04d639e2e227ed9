"""An output registered by the tests only: adding an output is this one module plus one
registry line (``sinks.outputs.REGISTRY["memory"] = "_memory_output"``, by monkeypatch)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import msgspec

from evalstream.sinks.outputs import outcome

if TYPE_CHECKING:
    from collections.abc import Mapping

    from evalstream import OutputOutcome
    from evalstream.sinks.outputs import OutputContext, SavedRun

SEEN: list[tuple[SavedRun, dict[str, OutputOutcome]]] = []
"""Every run this output was given, with the outcomes it waited for."""


class Kept(msgspec.Struct, frozen=True, kw_only=True):
    """The memory output's typed outcome."""

    tasks: list[str]
    local_results: str | None


class MemoryOutput:
    """Keeps the saved run in memory, once the local files are written."""

    name: ClassVar[str] = "memory"
    owns: ClassVar[tuple[str, ...]] = ()
    after: ClassVar[tuple[str, ...]] = ("local",)

    async def write(self, run: SavedRun, before: Mapping[str, OutputOutcome]) -> OutputOutcome:
        SEEN.append((run, dict(before)))
        local = before.get("local")
        kept = Kept(
            tasks=sorted(run.results["config_tasks"]),
            local_results=local.detail.get("results") if local is not None else None,
        )
        return outcome("memory", kept)


def build(context: OutputContext) -> MemoryOutput | None:
    """On unless the run is a dry one (no details saved): the options decide."""
    return MemoryOutput() if context.options.save_details else None
