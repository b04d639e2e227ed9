"""The parts of one run, wired together: what ``EvaluationTracker`` is built from.

Construction does no I/O: every part here is an object waiting for ``__aenter__`` (the host
opens the folder, the journal and the actors; the live scalars open their writer). Keeping the
wiring here leaves the tracker with its public calls and the order they run in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from evalstream._errors import RunStateError
from evalstream.durability.runstate import RunSettings, update_status
from evalstream.run.baseline import as_baseline
from evalstream.run.batcher import Batcher
from evalstream.run.config import RunConfig
from evalstream.run.control import RunControl
from evalstream.run.host import RunHost
from evalstream.run.hub_calls import HubCalls, make_publisher, retry_hint
from evalstream.run.save import SavePlan, SaveSteps, shard_write
from evalstream.shards.writer import shard_writer
from evalstream.sinks.local import finished_save
from evalstream.sinks.outputs import OutputContext, build_outputs
from evalstream.sinks.tensorboard import LiveScalars, run_info_from

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from evalstream._messages import Score
    from evalstream._options import Options
    from evalstream.durability.resume import ResumeState
    from evalstream.durability.storage import OutputStore
    from evalstream.run.baseline import Baseline
    from evalstream.run.coordinator import Coordinator
    from evalstream.run.progress import Meter
    from evalstream.run.runtime import Runtime
    from evalstream.shards.info import ShardInfo
    from evalstream.shards.writer import NoShard, ShardWriter
    from evalstream.sinks.hub import HubPublisher
    from evalstream.sinks.outputs import Output
    from evalstream.sinks.retry import RetryPolicy
    from evalstream.sinks.tensorboard import RunInfo
    from evalstream.stats.aggregations import AggregationRegistry
    from evalstream.stats.live import BaselineDocs


@dataclass(kw_only=True)
class RunParts:
    """The collaborators behind one tracker."""

    store: OutputStore
    host: RunHost
    shard: ShardWriter | NoShard
    config: RunConfig
    control: RunControl
    hub: HubCalls
    outputs: list[Output]
    publisher: HubPublisher | None
    run_info: RunInfo | None
    live: LiveScalars | None
    baseline: Baseline | None = None
    batch: Batcher = field(init=False)

    def __post_init__(self) -> None:
        options = self.control.options
        self.batch = Batcher(
            self.host,
            batch_size=options.batch_size,
            durable=options.durable,
            synced=self.shard.sync,
            on_shipped=self.observe,
        )
        self.host.drain = self.batch.ship  # the runtime's shutdown ships the pending batch

    async def observe(self, batch: list[Score]) -> None:
        """A shipped batch's scores, for the live running-mean scalars (if on)."""
        if self.live is not None:
            for task, metrics, scope, _ in batch:
                if scope != "details":
                    await self.live.observe(task, metrics)

    async def load_baseline(self) -> BaselineDocs | None:
        """The baseline's per-doc values, read in a worker thread (None without a baseline:
        no thread hop for nothing)."""
        if self.baseline is None:
            return None
        return await anyio.to_thread.run_sync(as_baseline, self.baseline, self.store)

    def compare(self, coordinator: Coordinator, baseline: BaselineDocs | None) -> None:
        """Have the metrics actor pair every sample with ``baseline``'s (before any sample)."""
        if baseline is not None:
            coordinator.metrics.compare_with(baseline, self.control.options.baseline_margin)

    async def close_live(self) -> None:
        """Close the live scalars' writer once (save, or leaving the run)."""
        live, self.live = self.live, None
        if live is not None:
            await live.__aexit__(None, None, None)

    async def adopt(self, resume: ResumeState) -> None:
        """A dead run that died inside its save: if that save had written its results file, it
        is marked ``saved`` and there is nothing to resume (RunStateError); otherwise this run
        saves under the same date, over the details that save had written, so no orphan
        details folder is left beside this run's. What reading the dead run found lost goes in
        this run's warnings."""
        self.control.notes.extend(
            f"resume of {resume.run_dir}: {problem}" for problem in resume.problems
        )
        status = resume.status
        intent = status.saving if status is not None else None
        if status is None or intent is None:
            return
        template = self.control.options.results_path_template
        done = await anyio.to_thread.run_sync(finished_save, self.store, intent, "", template)
        if done is None:
            self.control.date_id = intent.date_id
            return
        await anyio.to_thread.run_sync(
            lambda: update_status(
                resume.run_dir, status, state="saved", results_path=done.results_path, saving=None
            )
        )
        raise RunStateError(
            f"the run in {resume.run_dir} had finished its save (results: {done.results_path}): "
            "nothing to resume"
        )

    def save_steps(
        self, coordinator: Coordinator, ship: Callable[[], Awaitable[int]], meter: Meter
    ) -> SaveSteps:
        """What ``save_run`` drives: the host, the actors, the tracker's pending batch (and
        its meter: what was routed, which the results must count exactly)."""
        return SaveSteps(
            host=self.host,
            coordinator=coordinator,
            ship=ship,
            close_live=self.close_live,
            keep_workdir=self.control.options.keep_workdir,
            write=shard_write(self.shard),
            strict=not self.control.contain_faults,
            date_id=self.control.date_id,
            meter=meter,
        )

    def save_plan(self, model_name: str) -> SavePlan:
        """Where and what ``save_run`` writes: the registry's outputs for these options."""
        options = self.control.options
        return SavePlan(
            store=self.store,
            model_name=model_name,
            bootstrap_iters=options.bootstrap_iters,
            seed=options.seed,
            outputs=self.outputs,
            partial=self.control.partial,
            notes=tuple(self.control.notes),
        )


def assemble(
    store: OutputStore,
    options: Options,
    registry: AggregationRegistry,
    *,
    start_time: float,
    nanotron_run_info: Any,
    hub_token: str | None,
    hub_retry: RetryPolicy | None,
    shard: ShardInfo | None,
    runtime: Runtime | None,
    baseline: Baseline | None = None,
) -> RunParts:
    """Build every part of a run with ``options`` (the Hub publisher fails fast here)."""
    run_info = run_info_from(nanotron_run_info)
    publisher = make_publisher(options, hub_token, hub_retry)
    host = RunHost(
        store,
        RunSettings.of(store.target, options),
        registry,
        start_time=start_time,
        inbox_capacity=options.inbox_capacity,
        flush_every_frames=max(1, options.flush_every // options.batch_size),
        flush_interval=options.flush_interval,
        workers=options.details_workers,
        runtime=runtime,
    )
    if shard is not None:
        host.shard = f"{shard.run} {shard.index}/{shard.count}"
    config = RunConfig(
        registry,
        store,
        publisher if options.push_to_hub else None,
        options.results_path_template,
    )
    context = OutputContext(
        store=store,
        options=options,
        publisher=publisher,
        run_info=run_info,
        retry_hint=retry_hint(publisher, host.workdir, options.public),
    )
    every = options.live_scalars_every
    return RunParts(
        store=store,
        host=host,
        shard=shard_writer(  # a shard of a run: streams to the object store
            shard,
            output_dir=store.target,
            attempt=host.run_id,
            journal=host.journal,
            settings=host.settings,
            start_time=start_time,
        ),
        config=config,
        control=RunControl(host, config, options),
        hub=HubCalls(publisher, store),
        outputs=build_outputs(context),
        publisher=publisher,
        run_info=run_info,
        live=LiveScalars(
            store.root, every=every, prefix=options.tensorboard_metric_prefix, run_info=run_info
        )
        if every
        else None,
        baseline=baseline,
    )
