"""Reading a dead run back: its journal's messages and the samples it already holds.

Resume replays a dead run's journal into a new run and skips any sample whose (task, doc key)
the dead run logged, so each sample counts once. The doc key is ``doc.id`` when the harness
sets it, else the xxh64 of the query. The journal is read twice, streaming: once here for the
keys, once by the replay, so a million-sample run never sits decoded in memory.
"""

from __future__ import annotations

from itertools import islice
from typing import TYPE_CHECKING, NamedTuple

import anyio
import xxhash

from evalstream._errors import RunBusyError, RunStateError
from evalstream._messages import EndOfRun, RunMessage, SampleBatch, ScoredSample
from evalstream.durability.killpoints import reached
from evalstream.durability.owner import RunLock, claim, held
from evalstream.durability.runstate import (
    RunStatus,
    is_alive,
    read_status_or_damage,
    replacement_status,
    update_status,
)
from evalstream.durability.segments import JournalScan, scan_journal

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator
    from pathlib import Path


def doc_key(sample: ScoredSample) -> tuple[str, str]:
    """The (task, doc key) of a sample: ``doc.id`` or, without one, the hash of the query."""
    doc = sample.doc
    return sample.task_name, doc.id or xxhash.xxh64_hexdigest(doc.query.encode())


class JournalMessages:
    """The intact messages of a journal folder, read again from disk at each iteration.

    Iterating reads and decodes one frame at a time (blocking): iterate from a worker thread,
    or accept short blocking reads of a local file.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __iter__(self) -> Iterator[RunMessage]:
        return scan_journal(self.folder)


class ResumeState:
    """A dead run's messages and sample keys."""

    def __init__(
        self,
        run_dir: Path,
        status: RunStatus | None,
        messages: JournalMessages,
        details: set[tuple[str, str]],
        metrics: set[tuple[str, str]],
        problems: list[str],
    ) -> None:
        self.run_dir = run_dir
        self.status = status
        self.messages = messages
        self.problems = problems
        """What reading the dead run found lost or damaged (missing segments, a corrupt frame,
        an unreadable marker): the samples lost are not in ``keys()``, so a harness that skips
        those re-runs them; the new run's warnings say so."""
        self._details = details
        self._metrics = metrics
        self.skipped = 0
        self.lock: RunLock | None = None

    def release(self) -> None:
        """Let the dead run's lock go (after the hand-over, or a failed start)."""
        if self.lock is not None:
            self.lock.release()

    def seen(self, sample: ScoredSample) -> bool:
        """True (and counted) when the dead run already logged what this sample would log.

        Scope-aware: a ``details`` sample is checked against the details the dead run logged,
        a ``metrics`` one against its metrics, a ``both`` one against both.
        """
        key = doc_key(sample)
        scope = sample.scope
        logged = (scope == "metrics" or key in self._details) and (
            scope == "details" or key in self._metrics
        )
        if logged:
            self.skipped += 1
        return logged

    def keys(self) -> frozenset[tuple[str, str]]:
        """Every (task, doc key) the dead run logged in full.

        When the run logged details and metrics separately (lighteval's two loggers), a doc
        counts once both halves are in; a run that only ever used one scope counts that one.
        """
        if self._details and self._metrics:
            return frozenset(self._details & self._metrics)
        return frozenset(self._details | self._metrics)

    def mark_resumed(self, successor: str) -> None:
        """Mark the dead run as resumed by ``successor`` (blocking); a run without a readable
        marker gets a new one, or ``recover OUTPUT_DIR`` would find it dead and recover it."""
        status = self.status or replacement_status(self.run_dir)
        update_status(self.run_dir, status, state="resumed", successor=successor)


_DONE = {
    "saved": "already saved (results: {results}): nothing to recover",
    "recovered": "already recovered into {results}",
    "resumed": "already resumed by run {successor}: nothing to recover",
    "abandoned": "an interrupted resume, abandoned: its predecessor {predecessor} is the run",
}


class Claim(NamedTuple):
    """A dead run taken for a recover or a resume."""

    lock: RunLock
    status: RunStatus | None
    damage: str | None = None
    """Its status marker is there but unreadable (``read_status_or_damage``): the run is
    taken as dead, since no process holds its lock, and its journal is the truth."""


def claim_dead(run_dir: Path, purpose: str) -> Claim:
    """Take the lock of the dead run in ``run_dir`` for ``purpose`` (recover, resume), and its
    status; raises saying what is true when there is nothing to take: the folder does not
    exist, is no run folder, its run is finished, or a process holds it (the live run, or
    another recover or resume: RunBusyError names it). An unreadable marker does not stop
    it: ``Claim.damage`` says what is wrong with it."""
    if not run_dir.exists():
        raise RunStateError(f"{run_dir} does not exist")
    status, _ = read_status_or_damage(run_dir)
    _refuse_finished(run_dir, status)
    if not (run_dir / "journal").is_dir():
        raise RunStateError(
            f"{run_dir} holds no journal, so it is not a run folder that can be recovered; pass "
            "a run folder (OUTPUT_DIR/.evalstream/RUN_ID), or OUTPUT_DIR to recover its dead runs"
        )
    legacy = held(run_dir) is None  # written before locks: its pid is all there is
    lock = claim(run_dir, purpose)
    try:
        # again, under the lock: the holder may just have ended
        status, damage = read_status_or_damage(run_dir)
        _refuse_finished(run_dir, status)
        if status is not None and status.shard is not None:
            run, _, place = status.shard.partition(" ")
            raise RunStateError(
                f"the run in {run_dir} is an attempt of shard {place} of run {run!r}: re-run that "
                f"shard (it resumes from its uploaded journal), or `evalstream merge OUTPUT_DIR "
                f"--run {run} --partial`"
            )
        if legacy and status is not None and is_alive(status):
            raise RunBusyError(
                f"the run in {run_dir} is still running (pid {status.pid} on {status.host}); "
                "stop it first"
            )
    except BaseException:
        lock.release()
        raise
    return Claim(lock, status, damage)


def _refuse_finished(run_dir: Path, status: RunStatus | None) -> None:
    if status is not None and status.state in _DONE:
        what = _DONE[status.state].format(
            results=status.results_path,
            successor=status.successor,
            predecessor=status.predecessor,
        )
        raise RunStateError(f"the run in {run_dir} was {what}")


def load_resume(run_dir: Path) -> ResumeState:
    """Read a dead run's sample keys for resuming (blocking); its messages stream later."""
    lock, status, damage = claim_dead(run_dir, "a resume")
    try:
        folder = run_dir / "journal"
        scan = JournalScan()
        details: set[tuple[str, str]] = set()
        metrics: set[tuple[str, str]] = set()
        for message in scan_journal(folder, scan=scan):
            if isinstance(message, SampleBatch):
                for sample in message.samples:
                    key = doc_key(sample)
                    if sample.scope != "metrics":
                        details.add(key)
                    if sample.scope != "details":
                        metrics.add(key)
    except BaseException:
        lock.release()
        raise
    problems = scan.problems()
    if damage is not None:
        problems.insert(0, f"{damage}; it is given a new marker once resumed")
    state = ResumeState(run_dir, status, JournalMessages(folder), details, metrics, problems)
    state.lock = lock
    return state


async def open_resume(run_dir: Path | None) -> ResumeState | None:
    """``load_resume`` off the event loop, for ``resume_from`` (None: no resume)."""
    if run_dir is None:
        return None
    return await anyio.to_thread.run_sync(load_resume, run_dir)


async def replay_journal(
    resume: ResumeState,
    feed: Callable[[RunMessage], Awaitable[None]],
    successor: str,
    synced: Callable[[], Awaitable[None]],
) -> None:
    """Feed a dead run's journal to ``feed`` (all but its end of run), then hand the run over.

    The hand-over is one step: once the replay is fsynced in the new run's journal (``synced``),
    the dead run is marked ``resumed`` by ``successor``. Killed before that, the new run is an
    interrupted resume (``recover`` abandons it and recovers the dead run); after it, the new
    run holds everything. The dead run's lock is held until then, so two resumes of one run
    cannot both take it. The journal is read and decoded in worker threads, in chunks, so a
    long journal never holds the event loop.
    """
    messages = iter(resume.messages)
    while chunk := await anyio.to_thread.run_sync(lambda: list(islice(messages, 256))):
        for message in chunk:
            if not isinstance(message, EndOfRun):
                await feed(message)
                reached("resume.replaying")
    await synced()
    reached("resume.replayed")
    await anyio.to_thread.run_sync(resume.mark_resumed, successor)
    reached("resume.marked")
