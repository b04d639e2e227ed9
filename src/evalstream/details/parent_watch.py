"""A details worker dies with the process that started it, whatever it is doing.

A worker whose parent was SIGKILLed during ``save()`` used to read its stdin to the end and run
the ``End`` it found there: it converted the run's segments after the parent had died, and
left a full details folder with no results file beside it (issue 23). Its stdin closing is
no signal of the death: the frames queued in the 1 MB pipe come first, and a worker converting
a task does not read its stdin at all. So the worker watches its parent process itself, from its
first statement, and leaves with ``os._exit`` (no ``finally``, no ``atexit``, nothing flushed or
renamed) once the parent is gone. Every details file is written to a temporary name and renamed
over its final one (``durability/storage.atomic_path``), so what a killed conversion leaves is a
``.tmp-*`` file that readers ignore, never a file under its final name that looks complete.

Two mechanisms, because neither alone is both prompt and safe:

- a daemon thread polls ``os.getppid()`` every ``POLL_SECONDS``: when the parent process dies
  the worker is handed to another (init or a subreaper), whatever thread spawned it. It is
  portable, and runs during a long conversion too (pyarrow releases the GIL while it writes,
  and pure Python code gives it up every few ms), but leaves up to one poll for a file to land.
- Linux's ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` has the kernel kill the worker at the moment its
  parent dies, leaving no such window, but it fires when the *thread* that spawned the worker
  ends, not its process: a pool started from a worker thread (anyio's, which exit after idling;
  the sync tracker's portal thread; any thread sharing a ``Runtime``) would see healthy workers
  killed under live runs. So it is asked for only when the spawning thread is the main thread,
  which ends only with its process; the parent says which in the worker's environment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

PARENT_ENV = "EVALSTREAM_DETAILS_PARENT"
"""The spawning process's id: the parent the worker checks at its start."""
DEATHSIG_ENV = "EVALSTREAM_DETAILS_DEATHSIG"
"""``1`` when the worker was spawned from its parent's main thread (see the module docstring)."""
POLL_SECONDS = 0.1
"""How often the watch looks at the parent: the longest a worker outlives it without the
kernel's signal. Ten wakeups a second cost nothing measurable against a worker's work."""
ORPHANED = 3
"""The worker's exit status when it leaves because its parent died."""
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def spawn_env() -> dict[str, str]:
    """What the spawning side tells its worker: its process id, and whether the kernel's
    parent-death signal is safe (this thread is the main thread). Always both, so a value
    inherited from the environment never speaks for this spawn."""
    main = threading.current_thread() is threading.main_thread()
    return {PARENT_ENV: str(os.getpid()), DEATHSIG_ENV: "1" if main else "0"}


def watch_parent() -> None:
    """Die with the parent from now on: the kernel's signal if safe, and the polling thread.

    Called first in the worker's ``__main__``. A parent that died before the worker got here
    is caught by the check after the signal is armed, the ``getppid`` no longer being its id.
    ``sys.executable`` is the interpreter itself (no launcher between the two processes), so
    the worker's parent is the process that spawned it.
    """
    parent = int(os.environ.get(PARENT_ENV) or os.getppid())
    if os.environ.get(DEATHSIG_ENV) == "1":
        _kill_on_parent_death()
    if os.getppid() != parent:
        os._exit(ORPHANED)
    watch = threading.Thread(target=_watch, args=(parent,), name="parent-watch", daemon=True)
    watch.start()


def _watch(parent: int) -> None:
    """Poll until the parent is gone, then leave at once."""
    tick = threading.Event()  # never set: ``wait`` is the poll's sleep
    while os.getppid() == parent:
        tick.wait(POLL_SECONDS)
    os._exit(ORPHANED)


def _kill_on_parent_death() -> None:
    """``prctl(PR_SET_PDEATHSIG, SIGKILL)`` where Linux offers it; elsewhere the poll alone."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
