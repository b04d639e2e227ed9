"""How a command ends early: its reader went away (``| head``), or SIGINT / SIGTERM stopped it.

A closed pipe is the reader's choice, not a failure: ``QuietStream`` swallows the broken pipe,
sends the rest of the output to ``/dev/null`` and lets the command finish its work (a demo still
saves its run, a recover still recovers every run), so the exit code is the command's own,
whatever the timing of the reader. ``head`` closing early would otherwise make the same command
exit 0 or 1 depending on whether its output fitted in the pipe's buffer.

SIGINT (Ctrl-C) and SIGTERM both become a cancellation of the command's event loop
(``run_async``): the tracker then ends the run as it does for any cancelled caller (the journal
closed and fsynced, the run marked ``cancelled``, recoverable), progress bars stop and show the
cursor again, and the command ends with one line saying what was kept and how to continue,
exit ``128 + signal`` (130, 143) as a shell reports a process stopped by that signal. Outside
the event loop (reading files, writing tables) SIGTERM is turned into the same ``Interrupted``
as Ctrl-C's KeyboardInterrupt.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import threading
from typing import IO, TYPE_CHECKING, Any, TypeVar

import anyio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

_T = TypeVar("_T")


class Interrupted(KeyboardInterrupt):
    """Raised when SIGINT or SIGTERM stopped a command; ``kept`` says what it left behind.

    A KeyboardInterrupt, so code that cleans up after Ctrl-C (rich's progress bars, context
    managers) does the same for SIGTERM.
    """

    def __init__(self, signum: int, kept: str = "") -> None:
        super().__init__(signum, kept)
        self.signum = signum
        self.kept = kept

    @property
    def exit_code(self) -> int:
        """``128 + signal``, as a shell reports a process that signal stopped."""
        return 128 + self.signum

    def __str__(self) -> str:
        name = signal.Signals(self.signum).name
        return f"interrupted ({name})" + (f": {self.kept}" if self.kept else "")


class QuietStream(io.TextIOBase):
    """A text stream that ends quietly when its reader goes away.

    The first broken pipe points the file descriptor at ``/dev/null`` (so the interpreter's
    last flush of the real stream succeeds too) and every later write is dropped.
    """

    def __init__(self, stream: IO[str]) -> None:
        super().__init__()
        self.stream = stream
        self.reader_gone = False

    def _gone(self) -> None:
        self.reader_gone = True
        with contextlib.suppress(OSError, ValueError):  # a stream without a descriptor
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                self.stream.write(text)
            except BrokenPipeError:
                self._gone()
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._gone()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]  # TextIOBase declares it read-only
        return getattr(self.stream, "encoding", None) or "utf-8"


def _on_sigterm(signum: int, _frame: Any) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def command_ending() -> Iterator[None]:
    """Around one command: quiet pipes on stdout and stderr, SIGTERM raised as Interrupted."""
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = QuietStream(stdout), QuietStream(stderr)
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        with contextlib.suppress(BrokenPipeError):
            sys.stdout.flush()
        sys.stdout, sys.stderr = stdout, stderr


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def run_async(work: Callable[[], Awaitable[_T]], *, kept: Callable[[], str]) -> _T:
    """``anyio.run(work)``, cancelled by the first SIGINT or SIGTERM.

    On a signal the work is cancelled and allowed to clean up (a tracker marks its run
    cancelled); signals during that cleanup are ignored, so a second Ctrl-C cannot tear it.
    Then ``Interrupted`` is raised with ``kept()``, what the work left behind. Work that had
    finished when the signal came returns its result; work that failed raises its own error,
    unwrapped. Only the main thread receives signals: elsewhere this is ``anyio.run(work)``.
    """
    if not _main_thread():
        return anyio.run(work)
    got: list[int] = []
    done: list[_T] = []
    failed: list[Exception] = []

    async def watch(signals: AsyncIterator[int], scope: anyio.CancelScope) -> None:
        async for signum in signals:
            if not got:
                got.append(signum)
                scope.cancel()

    async def main() -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with anyio.create_task_group() as tg:
                scope = anyio.CancelScope()
                tg.start_soon(watch, signals, scope)
                with scope:
                    try:
                        done.append(await work())
                    except Exception as exc:  # noqa: BLE001 - re-raised below as is, not in a group
                        failed.append(exc)
                tg.cancel_scope.cancel()

    previous = signal.getsignal(signal.SIGTERM)
    try:
        anyio.run(main)
    finally:  # the loop's signal handling leaves SIGTERM at its default: put ours back
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if failed:
        raise failed[0]
    if done:
        return done[0]
    raise Interrupted(got[0] if got else signal.SIGINT, kept())
