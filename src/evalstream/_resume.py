"""Reading a dead run back: its journal's messages and the samples it already holds.

Resume replays a dead run's journal into a new run and skips any sample whose (task, doc key)
the dead run logged, so each sample counts once. The doc key is ``doc.id`` when the harness
sets it, else the xxh64 of the query.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import xxhash

from evalstream._errors import RunStateError
from evalstream._journal import read_journal
from evalstream._messages import RunMessage, SampleBatch, ScoredSample
from evalstream._runstate import RunStatus, is_alive, read_status, update_status

if TYPE_CHECKING:
    from pathlib import Path


def doc_key(sample: ScoredSample) -> tuple[str, str]:
    """The (task, doc key) of a sample: ``doc.id`` or, without one, the hash of the query."""
    doc = sample.doc
    return sample.task_name, doc.id or xxhash.xxh64_hexdigest(doc.query.encode())


class ResumeState:
    """A dead run's messages and sample keys."""

    def __init__(
        self,
        run_dir: Path,
        status: RunStatus | None,
        messages: list[RunMessage],
        corrupt: str | None,
    ) -> None:
        self.run_dir = run_dir
        self.status = status
        self.messages = messages
        self.corrupt = corrupt
        self._keys = {
            doc_key(s)
            for m in messages
            if isinstance(m, SampleBatch)
            for s in m.samples
            if s.scope != "metrics"
        }
        self.skipped = 0

    def seen(self, sample: ScoredSample) -> bool:
        """True (and counted) when the dead run already logged this sample."""
        if doc_key(sample) in self._keys:
            self.skipped += 1
            return True
        return False

    def keys(self) -> frozenset[tuple[str, str]]:
        """Every (task, doc key) the dead run logged."""
        return frozenset(self._keys)

    def mark_resumed(self, successor: str) -> None:
        """Mark the dead run as resumed by ``successor`` (blocking)."""
        if self.status is not None:
            update_status(self.run_dir, self.status, state="resumed", successor=successor)


def check_dead(run_dir: Path) -> RunStatus | None:
    """The status of ``run_dir``; raises if it is not a run folder, is alive, or was saved."""
    if not (run_dir / "journal").is_dir():
        raise RunStateError(
            f"{run_dir} holds no journal; pass a run folder such as OUTPUT_DIR/.evalstream/RUN_ID"
        )
    status = read_status(run_dir)
    if status is not None and is_alive(status):
        raise RunStateError(
            f"the run in {run_dir} is still running (pid {status.pid} on {status.host}); "
            "stop it first"
        )
    if status is not None and status.state in ("saved", "recovered", "resumed"):
        raise RunStateError(f"the run in {run_dir} is already {status.state}")
    return status


def load_resume(run_dir: Path) -> ResumeState:
    """Read a dead run for resuming (blocking)."""
    status = check_dead(run_dir)
    read = read_journal(run_dir / "journal")
    return ResumeState(run_dir, status, read.messages, read.corrupt)
