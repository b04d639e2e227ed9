"""The run's status marker and settings, beside its journal in the working folder.

``status.json`` says whether a run is ``running``, ``saved``, ``failed``, ``cancelled``,
``recovered`` or ``resumed``, with the pid, host and start time, and is replaced atomically, so
a reader can tell a finished run from a dead one: a ``running`` run whose pid is gone from its
host is dead and can be recovered. ``run.json`` keeps the tracker settings recovery needs.
"""

from __future__ import annotations

import os
import socket
import time
from typing import TYPE_CHECKING, Literal

import msgspec

from evalstream._storage import atomic_write

if TYPE_CHECKING:
    from pathlib import Path

RunState = Literal["running", "saved", "failed", "cancelled", "recovered", "resumed"]


class RunStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The status marker of one run."""

    state: RunState
    run_id: str
    pid: int
    host: str
    start_time: float
    updated: float
    results_path: str | None = None
    error: str | None = None
    successor: str | None = None


class RunSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Tracker settings a recovery or a resume needs to reproduce the run's outputs."""

    output_dir: str
    save_details: bool = True
    bootstrap_iters: int = 1000
    seed: int = 1234
    tensorboard_metric_prefix: str = "eval"


def new_status(run_id: str, start_time: float) -> RunStatus:
    """The ``running`` status of this process."""
    return RunStatus(
        state="running",
        run_id=run_id,
        pid=os.getpid(),
        host=socket.gethostname(),
        start_time=start_time,
        updated=time.time(),
    )


def write_status(workdir: Path, status: RunStatus) -> None:
    """Atomically replace the status marker (blocking)."""
    atomic_write(workdir / "status.json", msgspec.json.encode(status))


def update_status(workdir: Path, status: RunStatus, **changes: object) -> RunStatus:
    """Write ``status`` with ``changes`` and a fresh timestamp; returns the new status."""
    new = msgspec.structs.replace(status, updated=time.time(), **changes)
    write_status(workdir, new)
    return new


def read_status(workdir: Path) -> RunStatus | None:
    """The status marker, or None when there is none."""
    path = workdir / "status.json"
    if not path.exists():
        return None
    return msgspec.json.decode(path.read_bytes(), type=RunStatus)


def write_settings(workdir: Path, settings: RunSettings) -> None:
    """Record the settings (blocking)."""
    atomic_write(workdir / "run.json", msgspec.json.encode(settings))


def read_settings(workdir: Path) -> RunSettings | None:
    """The recorded settings, or None."""
    path = workdir / "run.json"
    if not path.exists():
        return None
    return msgspec.json.decode(path.read_bytes(), type=RunSettings)


def is_alive(status: RunStatus) -> bool:
    """True when a ``running`` status belongs to a live process on this host."""
    if status.state != "running" or status.host != socket.gethostname():
        return False
    try:
        os.kill(status.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
