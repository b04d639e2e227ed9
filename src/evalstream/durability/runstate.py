"""The run's status marker and settings, beside its journal in the working folder.

``status.json`` says whether a run is ``running``, ``saved``, ``failed``, ``cancelled``,
``recovered``, ``resumed`` or ``abandoned``, with the pid, host and start time, and a save under
way (``saving``); it is replaced atomically. Whether a ``running`` run is alive is told by its
lock (``owner.py``); ``is_alive`` here, from the pid and start time, only serves folders written
before locks. ``run.json`` keeps the tracker settings recovery needs. Write failures are
StorageErrors that say what to do. Either file may be found unreadable (a disk fault, a hand
edit): the ``*_or_damage`` readers say so instead of raising, because the journal, not the
marker, is the run's record.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec

from evalstream._errors import StorageError
from evalstream._options import DEFAULTS, Options
from evalstream._types import DetailsLayout
from evalstream.durability.storage import (
    atomic_write,
    atomic_write_many,
    fsync_dir,
    translate_oserror,
)

_T = TypeVar("_T")

RunState = Literal["running", "saved", "failed", "cancelled", "recovered", "resumed", "abandoned"]
"""``abandoned``: a resume killed before it took over its predecessor (which is recovered
instead); nothing of it counts."""


class SaveIntent(msgspec.Struct, frozen=True, kw_only=True):
    """A save under way, recorded before its first file is written.

    ``recover`` completes it: the results file at (model, date) on disk means the save wrote
    everything (results come last), and only the marker is missing; no results file means the
    save is redone under the same date, over whatever details it had written. So a save is
    never doubled, whichever step the process died at.
    """

    date_id: str
    model_name: str
    by: Literal["save", "recover", "merge"] = "save"


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
    saving: SaveIntent | None = None
    predecessor: str | None = None
    """A resumed run: the folder of the dead run whose journal it replays first."""
    shard: str | None = None
    """A shard attempt (``RUN index/count``): finished by a re-run of the shard and ``merge``,
    never recovered as a run of its own."""


class RunSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Tracker settings a recovery or a resume needs to reproduce the run's outputs."""

    output_dir: str
    save_details: bool = DEFAULTS.save_details
    bootstrap_iters: int = DEFAULTS.bootstrap_iters
    seed: int = DEFAULTS.seed
    tensorboard_metric_prefix: str = DEFAULTS.tensorboard_metric_prefix
    details_layout: DetailsLayout = DEFAULTS.details_layout
    results_path_template: str = DEFAULTS.results_path_template

    @classmethod
    def of(cls, output_dir: str, options: Options) -> RunSettings:
        """The settings of a tracker with ``options`` writing to ``output_dir``."""
        return cls(
            output_dir=output_dir,
            save_details=options.save_details,
            bootstrap_iters=options.bootstrap_iters,
            seed=options.seed,
            tensorboard_metric_prefix=options.tensorboard_metric_prefix,
            details_layout=options.details_layout,
            results_path_template=options.results_path_template,
        )

    def tracker_options(self) -> dict[str, Any]:
        """These settings as ``EvaluationTracker`` keywords: how recovery and merge record the
        run again, with the outputs' own options left to their callers."""
        return {
            name: getattr(self, name) for name in self.__struct_fields__ if name != "output_dir"
        }


def new_status(
    run_id: str, start_time: float, predecessor: str | None = None, shard: str | None = None
) -> RunStatus:
    """The ``running`` status of this process."""
    return RunStatus(
        predecessor=predecessor,
        shard=shard,
        state="running",
        run_id=run_id,
        pid=os.getpid(),
        host=socket.gethostname(),
        start_time=start_time,
        updated=time.time(),
    )


def _write(path: Path, data: bytes) -> None:
    try:
        atomic_write(path, data)
    except OSError as exc:
        raise translate_oserror(exc, str(path)) from exc


def write_status(workdir: Path, status: RunStatus) -> None:
    """Atomically replace the status marker (blocking)."""
    _write(workdir / "status.json", msgspec.json.encode(status))


def update_status(workdir: Path, status: RunStatus, **changes: object) -> RunStatus:
    """Write ``status`` with ``changes`` and a fresh timestamp; returns the new status."""
    new = msgspec.structs.replace(status, updated=time.time(), **changes)
    write_status(workdir, new)
    return new


def _read(path: Path, kind: type[_T]) -> tuple[_T | None, str | None]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"{path} cannot be read ({exc.strerror or type(exc).__name__})"
    try:
        return msgspec.json.decode(raw, type=kind), None
    except msgspec.DecodeError as exc:  # not JSON, or not this shape (ValidationError)
        return None, f"{path} is damaged ({exc})"


def read_status_or_damage(workdir: Path) -> tuple[RunStatus | None, str | None]:
    """(the status marker, None); (None, None) when there is none; (None, what is wrong) when
    it is there but unreadable (a disk fault, a hand edit, another program's file).

    Never raises for the file's content: ``ls`` lists such a run, and ``recover`` takes it as
    dead (its lock says whether a process holds it) and rebuilds it from its journal, the
    run's record, writing a new marker.
    """
    return _read(workdir / "status.json", RunStatus)


def read_status(workdir: Path) -> RunStatus | None:
    """The status marker, or None when there is none; StorageError when it is unreadable."""
    status, problem = read_status_or_damage(workdir)
    if problem is not None:
        raise StorageError(
            f"{problem}: the run's status marker is unreadable; `evalstream recover {workdir}` "
            "rebuilds the run from its journal and writes a new one"
        )
    return status


def replacement_status(workdir: Path) -> RunStatus:
    """A marker for a run whose own is missing or damaged, to record what is done to it next
    (recovered, resumed): no pid, no host, the folder's name as run id."""
    return RunStatus(
        state="running", run_id=workdir.name, pid=0, host="", start_time=0.0, updated=0.0
    )


def write_start(workdir: Path, settings: RunSettings, status: RunStatus) -> None:
    """A new run's settings, then its ``running`` marker, in one step (blocking): each file is
    fsynced and renamed as ``write_status`` does, and one fsync of
    ``workdir`` then covers both renames and whatever else the run made in it before (its
    journal folder, its lock file). A crash leaves what separate writes could have left: no
    file, the settings alone, or both."""
    files = [
        ("run.json", msgspec.json.encode(settings)),
        ("status.json", msgspec.json.encode(status)),
    ]
    try:
        atomic_write_many(workdir, files)
    except OSError as exc:
        raise translate_oserror(exc, str(workdir / "status.json")) from exc


def read_settings_or_damage(workdir: Path) -> tuple[RunSettings | None, str | None]:
    """(the recorded settings, None); (None, None) without any; (None, what is wrong) when
    ``run.json`` is there but unreadable (recovery then uses the defaults, and says so)."""
    return _read(workdir / "run.json", RunSettings)


def read_settings(workdir: Path) -> RunSettings | None:
    """The recorded settings, or None; StorageError when ``run.json`` is unreadable."""
    settings, problem = read_settings_or_damage(workdir)
    if problem is not None:
        raise StorageError(f"{problem}: the run's recorded settings are unreadable")
    return settings


def make_dirs_durable(folder: Path, *, durable: bool = True) -> list[Path]:
    """Create ``folder`` and its missing parents, fsyncing each new entry's parent (blocking);
    returns the folders created, outermost first.

    ``mkdir`` alone can be undone by a power cut even after the files inside were fsynced.
    ``durable=False``: the caller fsyncs the parents itself (``fsync_parents``), with other
    entries, before anything that depends on the folders is acknowledged.
    """
    missing = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    try:
        for path in reversed(missing):
            path.mkdir(exist_ok=True)
            if durable:
                fsync_dir(path.parent)
    except OSError as exc:
        raise translate_oserror(exc, f"the folder {folder}") from exc
    return list(reversed(missing))


def fsync_parents(made: list[Path]) -> None:
    """Make the entries of folders ``make_dirs_durable(durable=False)`` created durable
    (blocking), innermost first."""
    try:
        for path in reversed(made):
            fsync_dir(path.parent)
    except OSError as exc:
        raise translate_oserror(exc, f"the folder {made[-1]}") from exc


_PROC = Path("/proc")


def _process_start(pid: int) -> tuple[float, bool] | None:
    """(start time in seconds since the epoch, is a zombie) of ``pid``, from Linux's /proc."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
        boot = next(
            line for line in (_PROC / "stat").read_text().splitlines() if line.startswith("btime")
        )
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is field 3
        ticks = int(fields[19])  # field 22: start time in clock ticks after boot
        return int(boot.split()[1]) + ticks / os.sysconf("SC_CLK_TCK"), fields[0] == "Z"
    except (OSError, StopIteration, IndexError, ValueError):
        return None


def is_alive(status: RunStatus) -> bool:
    """True when a ``running`` status belongs to a live process on this host.

    A zombie, or a process that started after the run (its pid was reused), is not the run.
    """
    if status.state != "running" or status.host != socket.gethostname():
        return False
    try:
        os.kill(status.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    started = _process_start(status.pid)
    if started is not None:
        start_time, zombie = started
        if zombie or start_time > status.start_time + 1.0:  # btime has 1 s resolution
            return False
    return True
