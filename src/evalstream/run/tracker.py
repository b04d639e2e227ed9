"""EvaluationTracker: the async front door of a run.

``log_sample`` validates in the caller (so a bad value fails where it was made), encodes the
sample once, appends it to a small pending batch and returns; every ``batch_size`` samples the
batch is journaled and routed to the actors, and only then can the caller wait (back-pressure).
``flush()`` returns when everything logged before it is fsynced in the journal. ``save()``
closes the inboxes, lets each actor compile, aggregates, and runs the outputs concurrently.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import anyio

from evalstream._errors import ConfigError, RunStateError
from evalstream._messages import (
    ModelInfoLogged,
    RunMessage,
    SampleBatch,
    Scope,
    Score,
    TasksDeclared,
)
from evalstream.durability.resume import ResumeState, load_resume, replay_journal
from evalstream.durability.runstate import RunSettings
from evalstream.durability.storage import OutputStore
from evalstream.run.batcher import Batcher
from evalstream.run.coerce import check_layout
from evalstream.run.config import RunConfigCalls, check_options
from evalstream.run.host import RunHost
from evalstream.run.hub_calls import HubTargets, make_publisher
from evalstream.run.intake import Prepared, learn_kinds, prepare_sample
from evalstream.run.runtime import ProgressCalls, Runtime
from evalstream.run.save import (
    SaveProgress,
    compile_final,
    plan_for,
    retryable,
    save_run,
    steps_for,
)
from evalstream.shards.writer import ShardInfo, shard_writer
from evalstream.sinks.tensorboard import LiveScalars, run_info_from
from evalstream.stats.compute import AggregationRegistry, default_registry

if TYPE_CHECKING:
    import os
    from collections.abc import Mapping, Sequence
    from types import TracebackType

    from evalstream._summary import RunResult
    from evalstream._types import DetailsLayout, Doc, ModelInfo, ModelResponse, TaskSpec
    from evalstream.actors.base import ActorStats
    from evalstream.durability.journal import JournalStats
    from evalstream.run.checks import Kind
    from evalstream.run.coordinator import Coordinator
    from evalstream.sinks.retry import RetryPolicy

State = Literal["new", "running", "saving", "unsaved", "saved", "closed"]
"""``unsaved``: a save() failed (disk full, ...) and can be called again."""
YIELD_EVERY = 16


class EvaluationTracker(RunConfigCalls, HubTargets, ProgressCalls):
    """Records one evaluation run; use as ``async with EvaluationTracker(...) as tracker``.

    Durability: ``flush()`` returns once every sample logged before it is fsynced. In the
    background the journal is written as batches ship and fsynced every ``flush_every`` samples
    or ``flush_interval`` seconds; with ``durable=True`` every ``log_sample`` returns only once
    its sample is fsynced (concurrent callers share one fsync). See docs/design/durability.md.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike[str],
        save_details: bool = True,
        push_to_hub: bool = False,
        push_to_tensorboard: bool = False,
        hub_results_org: str | None = "",
        tensorboard_metric_prefix: str = "eval",
        public: bool = False,
        nanotron_run_info: Any = None,
        *,
        bootstrap_iters: int = 1000,
        seed: int = 1234,
        batch_size: int = 256,
        inbox_capacity: int = 16,
        registry: AggregationRegistry | None = None,
        keep_workdir: bool = False,
        flush_every: int = 4096,
        flush_interval: float = 1.0,
        durable: bool = False,
        resume_from: str | os.PathLike[str] | None = None,
        hub_token: str | None = None,
        hub_endpoint: str | None = None,
        hub_retry: RetryPolicy | None = None,
        live_scalars_every: int | None = None,
        details_workers: int | None = None,
        shard: ShardInfo | None = None,
        details_layout: DetailsLayout = "flat",
        runtime: Runtime | None = None,
    ) -> None:
        check_options(batch_size, inbox_capacity, flush_every, bootstrap_iters, flush_interval)
        check_layout(details_layout)
        self.store = OutputStore(output_dir)
        self.save_details = save_details
        self.push_to_hub = push_to_hub
        self.push_to_tensorboard = push_to_tensorboard
        self.hub_results_org = hub_results_org or ""
        self.tensorboard_metric_prefix = tensorboard_metric_prefix
        self.public = public
        self.nanotron_run_info = nanotron_run_info
        self.run_info = run_info_from(nanotron_run_info)
        self.bootstrap_iters = bootstrap_iters
        self.seed = seed
        self.batch_size = batch_size
        self.inbox_capacity = inbox_capacity
        self.registry = registry if registry is not None else default_registry()
        self.keep_workdir = keep_workdir
        self.durable = durable
        self.resume_from = Path(resume_from) if resume_from is not None else None
        self.start_time = time.time()
        self._host = RunHost(
            self.store,
            RunSettings(
                output_dir=self.store.target,
                save_details=save_details,
                bootstrap_iters=bootstrap_iters,
                seed=seed,
                tensorboard_metric_prefix=tensorboard_metric_prefix,
                details_layout=details_layout,
            ),
            self.registry,
            start_time=self.start_time,
            inbox_capacity=inbox_capacity,
            flush_every_frames=max(1, flush_every // batch_size),
            flush_interval=flush_interval,
            workers=details_workers,
            runtime=runtime,
        )
        self.run_id = self._host.run_id
        self.workdir = self._host.workdir
        self.journal = self._host.journal
        self._shard = shard_writer(  # a shard of a run: streams to the object store
            shard,
            output_dir=self.store.target,
            attempt=self.run_id,
            journal=self.journal,
            settings=self._host.settings,
            start_time=self.start_time,
        )
        self.partial: dict[str, Any] | None = None
        self._live = (
            LiveScalars(
                self.store.root,
                every=live_scalars_every,
                prefix=tensorboard_metric_prefix,
                run_info=self.run_info,
            )
            if live_scalars_every
            else None
        )
        self.publisher = make_publisher(
            push_to_hub or (push_to_tensorboard and bool(self.hub_results_org)),
            self.hub_results_org,
            hub_token,
            endpoint=hub_endpoint,
            public=public,
            retry=hub_retry,
        )
        self._state: State = "new"
        self._tasks: dict[str, TaskSpec] = {}
        self._kinds: dict[str, dict[str, Kind]] = {}  # the first value's kind per task and metric
        self._model: ModelInfo | None = None
        self._batch = Batcher(self._host, on_shipped=self._observe)
        self._logged = 0
        self._resume: ResumeState | None = None
        self._coordinator: Coordinator | None = None
        self._result: RunResult | None = None
        self._progress = SaveProgress()
        self.contain_faults = False  # recovery: what actors cannot replay is skipped and counted

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise RunStateError("a tracker runs once; create a new EvaluationTracker per run")
        self.resume_from = await self._shard.start(self.resume_from)
        resume = (
            await anyio.to_thread.run_sync(load_resume, self.resume_from)
            if self.resume_from is not None
            else None
        )
        self._coordinator = await self._host.start()
        self._state = "running"
        try:
            if self._live is not None:
                await self._live.__aenter__()
            if resume is not None:
                await self._replay(resume)
            await self._shard.resumed()
        except BaseException as exc:
            self._state = "closed"
            await self._host.abort(exc)
            raise
        return self

    async def _observe(self, batch: list[Score]) -> None:
        if self._live is not None:
            for task, metrics, scope in batch:
                if scope != "details":
                    await self._live.observe(task, metrics)

    async def _close_live(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            await live.__aexit__(None, None, None)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        state, self._state = self._state, "closed"  # "unsaved": save() marked the run already
        ship = self._ship if state in ("running", "saving", "unsaved") else None
        shard = partial(self._shard.close, exc)
        await self._host.exit(ship, self._close_live, exc, mark=state != "unsaved", then=shard)

    # -- logging -----------------------------------------------------------------------------

    def _running(self, *, healthy: bool = True) -> Coordinator:
        if self._state != "running" or self._coordinator is None:
            if self._state == "new":
                raise RunStateError("use the tracker inside 'async with EvaluationTracker(...)'")
            fix = (
                "fix the error and call save() again"
                if self._state == "unsaved"
                else "start a new tracker"
            )
            raise RunStateError(
                f"the run is {self._state}; nothing can be logged after save(): {fix}"
            )
        if healthy:
            failure = self._host.failure(faults=not self.contain_faults)
            if failure is not None:
                raise failure
        return self._coordinator

    async def _send(self, message: RunMessage) -> None:
        self._running()
        await self._host.send(message)

    async def log_sample(
        self,
        task_name: str,
        doc: Doc,
        outputs: Sequence[ModelResponse] | ModelResponse,
        metrics: Mapping[str, Any],
        llm_as_prompt_judgement: tuple[str, str] | None = None,
        *,
        scope: Scope = "both",
    ) -> None:
        """Log one scored sample; waits only when a full batch meets a full inbox.

        In a resumed run, a sample whose (task, doc id) the dead run already logged is skipped,
        so every sample counts once.
        """
        self._running()
        prepared = self.make_sample(
            task_name, doc, outputs, metrics, llm_as_prompt_judgement, scope
        )
        await self.log_samples((prepared,))

    def make_sample(
        self,
        task_name: str,
        doc: Doc,
        outputs: Sequence[ModelResponse] | ModelResponse,
        metrics: Mapping[str, Any],
        judgement: tuple[str, str] | None = None,
        scope: Scope = "both",
    ) -> Prepared:
        """Validate and encode one sample (no I/O; any thread); outputs: a list or one response."""
        return prepare_sample(
            self._tasks, task_name, doc, outputs, metrics, judgement, scope, self._kinds
        )

    async def log_samples(self, prepared: Sequence[Prepared]) -> None:
        """Log samples built by ``make_sample`` (one hop for many, as the sync tracker does)."""
        self._running()
        resume = self._resume
        for sample, encoded in prepared:
            if resume is not None and resume.seen(sample):
                continue
            self._batch.add(sample, encoded)
            self._logged += 1
        if self._logged % YIELD_EVERY == 0:
            # a producer that never waits would hold the loop for a whole batch
            await anyio.lowlevel.checkpoint()
        if self.durable:
            seq = await self._ship()
            await self.journal.wait_synced(seq)
            await self._shard.sync(seq)
        elif len(self._batch) >= self.batch_size:
            await self._ship()

    def is_declared(self, task_name: str) -> bool:
        """Whether ``task_name`` was declared with ``log_tasks``."""
        return task_name in self._tasks

    async def _ship(self) -> int:
        return await self._batch.ship()

    async def flush(self) -> None:
        """Return once every sample logged before is fsynced in the journal.

        After a storage failure, log_sample raises until a flush() succeeds: flush retries the
        writes that failed, so fixing the disk and flushing resumes the run with nothing lost.
        """
        coordinator = self._running(healthy=False)
        await self._ship()
        await self.journal.wait_synced()
        await self._shard.sync()
        await coordinator.flush()
        if coordinator.details.failure is not None:
            raise coordinator.details.failure

    def stats(self) -> tuple[ActorStats, ...]:
        """Snapshots of every actor: inbox depth, waiting producers, buffered rows."""
        return self._coordinator.stats() if self._coordinator else ()

    def journal_stats(self) -> JournalStats:
        """A snapshot of the journal: appended, written and fsynced sequence numbers."""
        return self.journal.stats()

    @property
    def samples_logged(self) -> int:
        """Samples accepted by ``log_sample`` so far (in a resumed run, replayed ones too)."""
        return self._logged

    # -- resume ------------------------------------------------------------------------------

    async def replay(self, message: RunMessage) -> None:
        """Feed one message read back from a journal (recovery and resume)."""
        match message:
            case TasksDeclared(tasks=tasks):
                self._tasks.update((t.name, t) for t in tasks)
            case ModelInfoLogged(info=info):
                self._model = info
            case SampleBatch(samples=samples):
                self._logged += len(samples)
                learn_kinds(self._kinds, samples)
            case _:
                pass
        await self._send(message)

    async def _replay(self, resume: ResumeState) -> None:
        """Feed a dead run's journal into this run (faults skipped), remember its samples' keys."""
        await self._host.replay(partial(replay_journal, resume, self.replay, self.run_id))
        self._resume = resume

    def logged_keys(self) -> frozenset[tuple[str, str]]:
        """(task, doc key) pairs a resumed run already holds: skip them in the harness."""
        return self._resume.keys() if self._resume is not None else frozenset()

    # -- save --------------------------------------------------------------------------------

    async def save(self) -> RunResult:
        """Compile, aggregate and write every output; returns the run's frozen summary.

        If the caller is cancelled, the run is marked cancelled and stays recoverable from its
        journal (``evalstream recover``). A save that failed on storage (a full disk: a raised
        StorageError, or a failed ``local`` outcome) can be called again once that is fixed.
        """
        coordinator = self._coordinator if self._state == "unsaved" else self._running()
        if self._model is None or coordinator is None:
            raise ConfigError(
                "no model was logged; call log_model_info(ModelInfo(model_name=...))"
                " before save() — the logged samples are kept"
            )
        self._state = "saving"
        steps = steps_for(self, self._host, coordinator)
        try:
            result = await save_run(steps, plan_for(self, self._model.model_name), self._progress)
        except BaseException as exc:
            self._state = "unsaved" if retryable(exc) else "closed"
            raise
        self._state = "saved" if result.outputs[0].ok else "unsaved"
        self._result = result
        return result

    async def preview(self) -> dict[str, Any]:
        """The final dict as it would be saved now, without ending the run."""
        coordinator = self._running()
        await self.flush()
        return (await compile_final(coordinator, self.bootstrap_iters, self.seed)).final

    @property
    def result(self) -> RunResult | None:
        """The summary of the last ``save()``, if any."""
        return self._result
