"""Named kill points: the steps of save, recover, resume and merge that write, for crash tests.

In the manner of SQLite's crash tests, the tests kill a child process at each of these points in
turn and check what the crash leaves: one results file per evaluation, every acknowledged
sample exactly once, every run folder saved or recoverable. ``EVALSTREAM_KILL_AT=name`` (or
``name@N``, the Nth time the point is reached) makes ``reached(name)`` SIGKILL this process
there; unset, as in production, ``reached`` is one comparison with None.
"""

from __future__ import annotations

import os
import signal

POINTS: dict[str, str] = {
    "save.ended": "the end of run is journaled and fsynced; no save intent yet",
    "save.intent": "the save intent is in the status marker; no details written yet",
    "save.details": "the details files are written; no results file yet",
    "save.outputs": "the results file (and the other outputs) are written; marker not saved",
    "save.marked": "the marker says saved; the journal is not cleaned yet",
    "recover.claimed": "recover holds the dead run's lock; nothing written yet",
    "recover.replayed": "the journal is replayed into the recovery; no save intent yet",
    "recover.intent": "the recovery's save intent is in the dead run's marker",
    "recover.saved": "the recovery's files are written; the dead run is not marked yet",
    "resume.replaying": "a message of the dead run's journal is replayed into the new run",
    "resume.replayed": "the replay is fsynced in the new run's journal; predecessor not marked",
    "resume.marked": "the predecessor is marked resumed; the new run goes on",
    "merge.replayed": "the shards are replayed into the merge; no save intent yet",
    "merge.intent": "the merge's save intent is recorded",
    "merge.saved": "the merged files are written; no merged.json yet",
}
"""Every kill point, with what has been written when it is reached."""

_AT = os.environ.get("EVALSTREAM_KILL_AT")
_NAME, _, _NTH = (_AT or "").partition("@")
_seen: dict[str, int] = {}


def reached(name: str) -> None:
    """Die here (SIGKILL, as a crash would) if the environment names this point."""
    if _AT is None or name != _NAME:
        return
    count = _seen[name] = _seen.get(name, 0) + 1
    if count >= int(_NTH or 1):
        os.kill(os.getpid(), signal.SIGKILL)
