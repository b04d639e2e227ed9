"""EvaluationTracker: the async front door of a run, and every public call in one place.

``log_sample`` (or ``log_samples``, one task's batch) validates in the caller, so a bad value
fails where it was logged, encodes each sample once and adds it to a small pending batch; every
``batch_size`` samples the batch is journaled and routed to the actors (back-pressure waits
there). ``flush()`` returns once all logged before it is fsynced; ``save()`` compiles, aggregates
and runs the outputs concurrently. Collaborators: ``RunConfig``, ``Batcher``, ``RunHost`` (folder,
journal, actors), ``run.save``, ``HubCalls``; recovery, merge and the sync facade use ``control``.
"""

from __future__ import annotations

import os
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

from evalstream._errors import RunStateError
from evalstream._messages import SampleBatch
from evalstream._options import DEFAULTS, Options
from evalstream.durability.resume import open_resume
from evalstream.durability.storage import OutputStore
from evalstream.run import forks
from evalstream.run import progress as _progress
from evalstream.run.checks import not_running
from evalstream.run.intake import zip_items
from evalstream.run.parts import assemble
from evalstream.run.save import SaveProgress, compile_final, primary_outcome, retryable, save_run
from evalstream.stats.compute import AggregationRegistry, default_registry

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
    from types import TracebackType

    from evalstream._messages import RunMessage, Scope
    from evalstream._summary import RunResult
    from evalstream._types import DetailsLayout, Doc, ModelInfo, ModelResponse, TaskSpec
    from evalstream.actors.base import ActorStats
    from evalstream.durability.journal import Journal, JournalStats
    from evalstream.run.baseline import Baseline
    from evalstream.run.coordinator import Coordinator
    from evalstream.run.intake import Prepared
    from evalstream.run.progress import Progress
    from evalstream.run.runtime import Runtime
    from evalstream.shards.info import ShardInfo
    from evalstream.sinks.hub import PushOutcome
    from evalstream.sinks.retry import RetryPolicy

State = Literal["new", "running", "saving", "unsaved", "saved", "closed"]  # unsaved: retry save()
D = DEFAULTS


class EvaluationTracker:
    """Records one evaluation run; use as ``async with EvaluationTracker(...) as tracker``.

    Durability: ``flush()`` returns once every sample logged before it is fsynced. In the
    background the journal is written as batches ship and fsynced every ``flush_every`` samples
    or ``flush_interval`` seconds; with ``durable=True`` every ``log_sample`` returns only once
    its sample is fsynced (concurrent callers share one fsync). See docs/design/durability.md.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike[str],
        save_details: bool = D.save_details,
        push_to_hub: bool = D.push_to_hub,
        push_to_tensorboard: bool = D.push_to_tensorboard,
        hub_results_org: str | None = D.hub_results_org,
        tensorboard_metric_prefix: str = D.tensorboard_metric_prefix,
        public: bool = D.public,
        nanotron_run_info: Any = None,
        use_wandb: bool = D.use_wandb,
        *,
        bootstrap_iters: int = D.bootstrap_iters,
        seed: int = D.seed,
        batch_size: int = D.batch_size,
        inbox_capacity: int = D.inbox_capacity,
        registry: AggregationRegistry | None = None,
        keep_workdir: bool = D.keep_workdir,
        flush_every: int = D.flush_every,
        flush_interval: float = D.flush_interval,
        durable: bool = D.durable,
        resume_from: str | os.PathLike[str] | None = None,
        hub_token: str | None = None,
        hub_endpoint: str | None = D.hub_endpoint,
        hub_retry: RetryPolicy | None = None,
        live_scalars_every: int | None = D.live_scalars_every,
        details_workers: int | None = D.details_workers,
        shard: ShardInfo | None = None,
        details_layout: DetailsLayout = D.details_layout,
        results_path_template: str | None = None,
        runtime: Runtime | None = None,
        baseline: Baseline | None = None,
        baseline_margin: float = D.baseline_margin,
    ) -> None:
        given = {k: v for k, v in locals().items() if k in Options.__struct_fields__}
        nones = {"hub_results_org": hub_results_org, "results_path_template": results_path_template}
        options = Options(**given | {k: v or "" for k, v in nones.items()})
        self.store = OutputStore(output_dir)
        self.registry = registry if registry is not None else default_registry()
        self.resume_from = Path(resume_from) if resume_from is not None else None
        self.start_time = time.time()
        self._parts = parts = assemble(
            self.store,
            options,
            self.registry,
            start_time=self.start_time,
            nanotron_run_info=nanotron_run_info,
            hub_token=hub_token,
            hub_retry=hub_retry,
            shard=shard,
            runtime=runtime,
            baseline=baseline,
        )
        host = self._host = parts.host
        host.progress = self.progress  # what a runtime's live view shows of this run
        self._shard, self._config, self._batch = parts.shard, parts.config, parts.batch
        self.control, self.publisher, self.run_info = parts.control, parts.publisher, parts.run_info
        self.run_id = host.run_id
        self._state: State = "new"
        self._replayed, self._progress = 0, SaveProgress()
        self._coordinator: Coordinator | None = None
        self._result: RunResult | None = None
        self._pid: int | None = None  # the process the run started in (run/forks.py)

    @property
    def options(self) -> Options:
        """The tracker's options, as one frozen record."""
        return self.control.options

    @property
    def workdir(self) -> Path:
        """The run's working folder: journal, status marker, lock."""
        return self._host.workdir

    @property
    def journal(self) -> Journal:
        return self._host.journal

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise RunStateError("a tracker runs once; create a new EvaluationTracker per run")
        self._pid = os.getpid()
        baseline = await self._parts.load_baseline()  # before the run exists: a bad one fails
        self.resume_from = await self._shard.start(self.resume_from)
        resume = await open_resume(self.resume_from)  # holds the dead run's lock
        try:
            self._host.predecessor = str(resume.run_dir) if resume is not None else None
            self._coordinator = await self._host.start()
            self._parts.compare(self._coordinator, baseline)
            self._state = "running"
            try:
                if self._parts.live is not None:
                    await self._parts.live.__aenter__()
                if resume is not None:
                    await self._parts.adopt(resume)  # a dead run that died in its save
                    await self._host.take_over(resume, self.replay)
                    self._batch.resume = resume
                await self._shard.resumed()
            except BaseException as exc:
                self._state = "closed"
                await self._host.abort(exc)
                raise
        finally:  # a resume holds the lock until it has taken the run over, or failed
            if resume is not None:
                resume.release()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if forks.foreign(self._pid):  # a forked child leaves the parent's run as it is
            return
        state, self._state = self._state, "closed"  # "unsaved": save() marked the run already
        ship = self._batch.ship if state in ("running", "saving", "unsaved") else None
        shard, mark = partial(self._shard.close, exc), state != "unsaved"
        await self._host.exit(ship, self._parts.close_live, exc, mark=mark, then=shard)

    def _running(self, *, healthy: bool = True) -> Coordinator:
        forks.check(self._pid)
        if self._state != "running" or self._coordinator is None:
            raise not_running(self._state)
        if healthy and (failure := self._host.failure(faults=not self.control.contain_faults)):
            raise failure
        return self._coordinator

    async def _send(self, message: RunMessage) -> None:
        self._running()
        await self._host.send(message)

    # -- the run's configuration (lighteval's general-config, task-config, versions loggers) ---

    async def log_args_info(
        self,
        num_fewshot_seeds: int = 1,
        override_batch_size: int | None = None,
        max_samples: int | None = None,
        job_id: str = "0",
        config: Mapping[str, Any] | None = None,
    ) -> None:
        """Record the harness's arguments."""
        args = (num_fewshot_seeds, override_batch_size, max_samples, job_id, config)
        await self._send(self._config.args_info(*args))

    async def log_model_info(self, model_info: ModelInfo) -> None:
        """Record the evaluated model; its name must be a safe relative path, and with
        ``push_to_hub`` make a repo id the Hub accepts (refused here, not at the push)."""
        await self._send(self._config.model_info(model_info))

    async def log_tasks(self, tasks: Iterable[TaskSpec]) -> None:
        """Declare tasks before logging their samples; names are validated here."""
        await self._send(self._config.declare(tasks))

    async def log_version(self, task_name: str, version: int) -> None:
        """Record a task's version (overrides the declared one)."""
        await self._send(self._config.version(task_name, version))

    async def log_num_docs(
        self, task_name: str, original_num_docs: int, effective_num_docs: int
    ) -> None:
        """Record how many docs a task had and how many were evaluated."""
        await self._send(self._config.num_docs(task_name, original_num_docs, effective_num_docs))

    def is_declared(self, task_name: str) -> bool:
        """Whether ``task_name`` was declared with ``log_tasks``."""
        return task_name in self._config.tasks

    # -- samples -------------------------------------------------------------------------------

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

        In a resumed run a sample the dead run logged (same task, doc id) is skipped; a call
        cancelled past validation has logged its sample, and its retry is skipped once.
        """
        self._running()
        judge = llm_as_prompt_judgement
        await self._batch.log((self.make_sample(task_name, doc, outputs, metrics, judge, scope),))

    async def log_samples(
        self,
        task_name: str,
        docs: Sequence[Doc],
        outputs: Sequence[Sequence[ModelResponse] | ModelResponse],
        metrics: Sequence[Mapping[str, Any]],
        llm_as_prompt_judgements: Sequence[tuple[str, str] | None] | None = None,
        *,
        scope: Scope = "both",
    ) -> None:
        """Log one task's samples at once (item ``i``: ``docs[i]``, ``outputs[i]``, ``metrics[i]``
        and ``llm_as_prompt_judgements[i]``), each checked as ``log_sample`` checks one: all or
        none are logged, a refused item's error names its index. Skips, durability, cancellation
        are as ``log_sample``'s, for every item (``durable=True``: one fsync covers the batch)."""
        self._running()
        items = zip_items(docs, outputs, metrics, llm_as_prompt_judgements)
        await self._batch.log(self._config.samples(task_name, items, scope))

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
        return self._config.sample(task_name, doc, outputs, metrics, judgement, scope)

    async def log_prepared(self, prepared: Sequence[Prepared]) -> None:
        """Log samples built by ``make_sample`` (one hop for many, as the sync tracker does)."""
        self._running()
        await self._batch.log(prepared)

    async def flush(self) -> None:
        """Return once every sample logged before is fsynced in the journal.

        After a storage failure, log_sample raises until a flush() succeeds: flush retries the
        writes that failed, so fixing the disk and flushing resumes the run with nothing lost.
        """
        coordinator = self._running(healthy=False)
        await self._batch.ship()
        await self.journal.wait_synced()
        await self._shard.sync()
        await coordinator.flush()
        if coordinator.details.failure is not None:
            raise coordinator.details.failure

    async def replay(self, message: RunMessage) -> None:
        """Feed one message read back from a journal (recovery, resume and merge)."""
        self._config.learn(message)
        if isinstance(message, SampleBatch):
            self._replayed += len(message.samples)
            self._batch.meter.replayed(message.samples)
        await self._send(message)

    def logged_keys(self) -> frozenset[tuple[str, str]]:
        """(task, doc key) pairs a resumed run already holds: skip them in the harness."""
        return r.keys() if (r := self._batch.resume) is not None else frozenset()

    # -- looking at the run --------------------------------------------------------------------

    @property
    def samples_logged(self) -> int:
        """Samples accepted by ``log_sample`` so far (in a resumed run, replayed ones too)."""
        return self._replayed + self._batch.logged

    def stats(self) -> tuple[ActorStats, ...]:
        """Snapshots of every actor: inbox depth, waiting producers, buffered rows."""
        return self._coordinator.stats() if self._coordinator else ()

    def journal_stats(self) -> JournalStats:
        """A snapshot of the journal: appended, written and fsynced sequence numbers."""
        return self.journal.stats()

    def progress(self) -> Progress:
        """A snapshot of the run: samples per task, rate, durable count, inboxes, estimates."""
        marked = self._host.status_state
        return _progress.snapshot(
            run_id=self.run_id,
            state=marked if marked in _progress.ENDED else self._state,
            elapsed=time.time() - self.start_time,
            logged=self.samples_logged,
            meter=self._batch.meter,
            synced=self.journal.stats().synced,
            actors=self.stats(),
            live=self._coordinator.metrics.live if self._coordinator else None,
        )

    def progress_updates(self, interval: float = 0.5) -> AsyncIterator[Progress]:
        """A snapshot now, every ``interval`` s while the run lives, and the last (for SSE)."""
        return _progress.updates(self.progress, lambda: self._host.ended, interval)

    async def preview(self) -> dict[str, Any]:
        """The final dict as it would be saved now, without ending the run."""
        coordinator, options = self._running(), self.options
        await self.flush()
        return (await compile_final(coordinator, options.bootstrap_iters, options.seed)).final

    # -- save ----------------------------------------------------------------------------------

    async def save(self) -> RunResult:
        """Compile, aggregate and write every output; returns the run's frozen summary.

        Cancelled, the run is marked cancelled and stays recoverable (``evalstream recover``); a
        save that failed on storage (a full disk) can be called again once that is fixed.
        """
        coordinator = self._coordinator if self._state == "unsaved" else self._running()
        model = self._config.require_model()
        assert coordinator is not None
        self._state = "saving"
        try:
            steps = self._parts.save_steps(coordinator, self._batch.ship, self._batch.meter)
            result = await save_run(steps, self._parts.save_plan(model.model_name), self._progress)
        except BaseException as exc:
            self._state = "unsaved" if retryable(exc) else "closed"
            raise
        primary = primary_outcome(result)
        self._state = "saved" if primary is not None and primary.ok else "unsaved"
        self._result = result
        return result

    @property
    def result(self) -> RunResult | None:
        """The summary of the last ``save()``, if any."""
        return self._result

    # -- lighteval's custom Hub targets --------------------------------------------------------

    async def push_results_to_hub(
        self, repo_id: str, path_in_repo: str, private: bool | None = None
    ) -> PushOutcome:
        """Push the saved results JSON to ``repo_id`` at ``path_in_repo``, in one commit."""
        return await self._parts.hub.push_results(self._result, repo_id, path_in_repo, private)

    async def push_details_to_hub(
        self, repo_id: str, path_in_repo: str, private: bool | None = None
    ) -> PushOutcome:
        """Push the saved details files, one per task, in one commit: ``{task_name}`` in
        ``path_in_repo`` becomes each task's name, else it is the folder that holds them."""
        return await self._parts.hub.push_details(self._result, repo_id, path_in_repo, private)

    async def recreate_metadata_card(self, repo_id: str) -> PushOutcome:
        """Rebuild ``repo_id``'s dataset card from its files and newest results."""
        return await self._parts.hub.recreate_card(repo_id)
