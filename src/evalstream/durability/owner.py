"""One owner per run: an OS lock on the run folder, held for as long as a process works on it.

The live tracker takes ``RUN_DIR/lock`` (``flock``, exclusive) before it writes anything and
holds it until it leaves; ``recover``, ``resume_from`` and the merge take the same lock on the
run they serve. The kernel drops the lock when its process dies, however it dies, so "is this
run alive?" is answered by the lock and nothing else: no pid that a restarted container reuses,
no start time that a clock step moves. A second claim is refused at once with the holder's
pid, host and purpose, which the holder writes into the lock file after taking it.

``flock`` locks belong to the open file, not the process: a second claim from the same process
is refused too, and the details workers (started with ``close_fds``) never inherit it. Folders
written before the lock existed have no lock file; for those ``alive`` falls back to the pid
check of their status marker.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from typing import TYPE_CHECKING, Self

import msgspec

from evalstream._errors import RunBusyError
from evalstream.durability.runstate import RunStatus, is_alive
from evalstream.durability.storage import translate_oserror

if TYPE_CHECKING:
    from pathlib import Path

LOCK = "lock"


class Holder(msgspec.Struct, frozen=True, kw_only=True):
    """Who holds a run's lock, as the holder wrote it."""

    pid: int
    host: str
    purpose: str
    since: float

    def describe(self) -> str:
        return f"{self.purpose}, pid {self.pid} on {self.host}"


class RunLock:
    """A held lock on one run folder; ``release()`` (or the process's death) lets it go."""

    def __init__(self, folder: Path, fd: int) -> None:
        self.folder = folder
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Let the lock go (idempotent); the file stays, so a prober always finds one."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_holder(folder: Path) -> Holder | None:
    """What the holder wrote into the lock file, if anything readable."""
    try:
        return msgspec.json.decode((folder / LOCK).read_bytes(), type=Holder)
    except (OSError, msgspec.DecodeError):
        return None


def claim(folder: Path, purpose: str) -> RunLock:
    """Take the run's lock for ``purpose`` (blocking, never waits); raises RunBusyError naming
    the holder when another process (or another claim in this one) has it."""
    try:
        fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise translate_oserror(exc, f"the lock of the run in {folder}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = read_holder(folder)
        who = holder.describe() if holder is not None else "another process"
        raise RunBusyError(
            f"the run in {folder} is held by {who}; wait for it to finish, or stop it first"
        ) from None
    except OSError as exc:
        os.close(fd)
        raise translate_oserror(exc, f"the lock of the run in {folder}") from exc
    holder = Holder(pid=os.getpid(), host=socket.gethostname(), purpose=purpose, since=time.time())
    with contextlib.suppress(OSError):  # the holder's name helps a refusal; the lock is the truth
        os.ftruncate(fd, 0)
        os.pwrite(fd, msgspec.json.encode(holder), 0)
    return RunLock(folder, fd)


def held(folder: Path) -> bool | None:
    """True while a process holds the run's lock, False once none does, None for a folder
    with no lock file (written before locks; see ``alive``). Never blocks, never takes it for
    longer than the probe."""
    try:
        fd = os.open(folder / LOCK, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the shared probe lock, if it was taken
    return False


def alive(folder: Path, status: RunStatus | None) -> bool:
    """Whether a process works on the run in ``folder`` now: its lock says; a folder from
    before locks falls back to its status marker's pid."""
    locked = held(folder)
    if locked is not None:
        return locked
    return status is not None and is_alive(status)
