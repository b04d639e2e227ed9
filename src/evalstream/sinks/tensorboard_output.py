"""The TensorBoard output: one event file for this run and checkpoint, pushed to the Hub too.

Owns the options ``push_to_tensorboard`` and ``tensorboard_metric_prefix`` (and the run info,
nanotron's ``GeneralArgs`` or a ``RunInfo``). With a Hub publisher (``hub_results_org`` set) the
event files also go to ``{org}/tensorboard_logs`` (private) under ``tb/``, in one commit, as
lighteval does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
import msgspec

from evalstream._errors import UnsafeNameError
from evalstream.sinks.outputs import outcome
from evalstream.sinks.tensorboard import event_files_for_hub, write_tensorboard

if TYPE_CHECKING:
    from collections.abc import Mapping

    from evalstream._summary import OutputOutcome
    from evalstream.durability.storage import OutputStore
    from evalstream.sinks.hub import HubPublisher
    from evalstream.sinks.outputs import OutputContext, SavedRun
    from evalstream.sinks.tensorboard import RunInfo

NAME = "tensorboard"


class EventsWritten(msgspec.Struct, frozen=True, kw_only=True):
    """The TensorBoard output's outcome: where the events went, how many scalars, the push."""

    logdir: str
    scalars: int
    hub: dict[str, Any] | None = None


class TensorBoardOutput:
    """The run's scalars and config text as a TensorBoard event file (``tb/`` under the folder)."""

    name: ClassVar[str] = NAME
    owns: ClassVar[tuple[str, ...]] = ("push_to_tensorboard", "tensorboard_metric_prefix")
    after: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        store: OutputStore,
        prefix: str,
        run_info: RunInfo | None,
        publisher: HubPublisher | None,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.run_info = run_info
        self.publisher = publisher

    async def write(self, run: SavedRun, before: Mapping[str, OutputOutcome]) -> OutputOutcome:
        """Write the event file, copy it to a remote folder, then push it when configured."""
        store, final = self.store, run.results
        try:
            store.local("tb")  # refuses a symbolic link there
        except UnsafeNameError as exc:
            return outcome(NAME, ok=False, error=str(exc))
        tb = await write_tensorboard(
            output_dir=store.root,
            results=final["results"],
            config_general=final["config_general"],
            summary_tasks=final["summary_tasks"],
            prefix=self.prefix,
            run_info=self.run_info,
        )
        rels = [Path(f).relative_to(store.root).as_posix() for f in tb.files]
        error, pushed = tb.error, None
        if tb.ok:
            await anyio.to_thread.run_sync(store.upload_sync, rels)
            if self.publisher is not None:
                files = event_files_for_hub([Path(f) for f in tb.files], store.root)
                push = await self.publisher.push_files(
                    f"{self.publisher.org}/tensorboard_logs",
                    files,
                    message=f"Add TensorBoard events ({len(files)} file(s))",
                    private=True,
                )
                pushed, error = msgspec.structs.asdict(push), push.error
        return outcome(
            NAME,
            EventsWritten(logdir=tb.logdir, scalars=tb.scalars, hub=pushed),
            ok=tb.ok and error is None,
            error=error,
            paths=[store.url(r) for r in rels],
        )


def build(context: OutputContext) -> TensorBoardOutput | None:
    """With ``push_to_tensorboard``; the publisher when ``hub_results_org`` is set."""
    options = context.options
    if not options.push_to_tensorboard:
        return None
    return TensorBoardOutput(
        context.store, options.tensorboard_metric_prefix, context.run_info, context.publisher
    )
