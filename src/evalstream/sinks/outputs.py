"""The outputs of a saved run: one protocol, one registry, one way to run them.

An output is a destination of a finished run (the local files, TensorBoard, the Hub, trackio
or W&B). Each is one module holding a class of the ``Output`` shape and a ``build(context)``
factory that reads the options the output owns and returns None when they do not enable it;
``REGISTRY`` names the modules. Adding an output is that module and its line below. ``save()``
(and so recovery and merge, which save through a tracker) and ``evalstream push`` all go
through ``build_outputs`` and ``write_outputs``.

Outputs run concurrently; one that needs another's outcome names it in ``after`` (the Hub
pushes the files the local output wrote) and gets it in ``before``. An output never raises for
its own destination's failure: it returns a failed ``OutputOutcome``, so one failed upload
never loses another output's work. The registry holds module names, not modules, so a run that
does not push never imports huggingface_hub.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import anyio
import msgspec

from evalstream._summary import OutputOutcome

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from evalstream._options import Options
    from evalstream.details.protocol import DetailsWritten
    from evalstream.durability.storage import OutputStore
    from evalstream.sinks.hub import HubPublisher
    from evalstream.sinks.tensorboard import RunInfo

REGISTRY: dict[str, str] = {
    "local": "evalstream.sinks.local",
    "tensorboard": "evalstream.sinks.tensorboard_output",
    "hub": "evalstream.sinks.hub_output",
    "wandb": "evalstream.sinks.wandb_output",
}
"""Every output, by name, and the module that builds it; the local files come first."""


@dataclass(frozen=True, kw_only=True)
class OutputContext:
    """What an output may be built from: the run's options and its shared collaborators."""

    store: OutputStore
    options: Options
    publisher: HubPublisher | None = None
    run_info: RunInfo | None = None
    retry_hint: str = ""


@dataclass(frozen=True, kw_only=True)
class SavedRun:
    """A finished run as every output sees it: the final dict, its bytes, the details files."""

    model_name: str
    date_id: str
    results: Mapping[str, Any]
    results_json: bytes
    details: DetailsWritten


class Output(Protocol):
    """One destination of a saved run."""

    name: ClassVar[str]
    owns: ClassVar[tuple[str, ...]]
    """The tracker options (``Options`` fields) that configure this output and no other."""
    after: ClassVar[tuple[str, ...]]
    """The outputs whose outcomes this one needs before it starts (empty: starts at once)."""

    async def write(self, run: SavedRun, before: Mapping[str, OutputOutcome]) -> OutputOutcome:
        """Write ``run`` to this destination; a failure of the destination is a failed
        outcome, not an exception."""
        ...


def outcome(
    name: str,
    detail: msgspec.Struct | None = None,
    *,
    ok: bool = True,
    error: str | None = None,
    paths: Sequence[str] = (),
) -> OutputOutcome:
    """The public ``OutputOutcome`` of an output's own typed outcome (its ``detail``)."""
    return OutputOutcome(
        name=name,
        ok=ok,
        error=error,
        paths=list(paths),
        detail=msgspec.structs.asdict(detail) if detail is not None else {},
    )


def build_outputs(context: OutputContext, names: Sequence[str] | None = None) -> list[Output]:
    """The outputs ``context``'s options enable, among ``names`` (default: every registered)."""
    built: list[Output] = []
    for name in names if names is not None else REGISTRY:
        build: Callable[[OutputContext], Output | None] = importlib.import_module(
            REGISTRY[name]
        ).build
        output = build(context)
        if output is not None:
            built.append(output)
    return built


async def write_outputs(outputs: Sequence[Output], run: SavedRun) -> list[OutputOutcome]:
    """Run ``outputs`` concurrently, each once the ones it names in ``after`` are done.

    Outcomes come back in the order given. An output that waits on one not in ``outputs``
    does not wait for it (and sees no outcome for it).
    """
    done = {o.name: anyio.Event() for o in outputs}
    outcomes: dict[str, OutputOutcome] = {}

    async def one(output: Output) -> None:
        try:
            for name in output.after:
                if name in done:
                    await done[name].wait()
            before = {name: outcomes[name] for name in output.after if name in outcomes}
            outcomes[output.name] = await output.write(run, before)
        finally:
            done[output.name].set()

    async with anyio.create_task_group() as tg:
        for output in outputs:
            tg.start_soon(one, output)
    return [outcomes[o.name] for o in outputs]
