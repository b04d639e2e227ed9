"""The shared pool of details worker processes, multiplexed between runs.

A worker process serves many runs at once: each run talks to it over a *channel* (a number the
pool gives it), and every frame on the worker's stdin names its channel, so one run's state,
files and errors stay apart from the others' (see ``details_worker``). The processes are plain
``subprocess.Popen`` children driven through non-blocking pipes with ``anyio.wait_readable`` /
``wait_writable``: they belong to no event loop, so one pool outlives the loops that use it in
turn (``asyncio.run`` after ``asyncio.run``, one test after another) and can be closed from
``atexit``.

Writes are fair between runs: each frame is written under a FIFO lock that hands over to the
next waiting run, so a run with many producers gets one frame per turn, as a run with one does.
A frame once started is finished even if its run is cancelled (else the stream would tear for
every run); replies are read by whichever waiter holds the read lock and handed to their owners.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import weakref
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from evalstream._errors import EvalStreamError
from evalstream.details.protocol import (
    TO_WORKER,
    Drop,
    End,
    Flush,
    Forward,
    FromWorker,
    Open,
    Output,
    ToWorker,
    decode_reply,
)
from evalstream.details.worker import command, worker_env
from evalstream.durability.frames import frame
from evalstream.durability.storage import _umask

if TYPE_CHECKING:
    from pathlib import Path

_READ = 1 << 16
_FINISH_TIMEOUT = 30.0  # seconds a cancelled run may take to finish a frame it started
_EXIT_TIMEOUT = 5.0
WORKER_NICE = 10
"""How much lower than their parent's the workers' CPU priority is, by default.

The workers do throughput work; the parent's event loop does latency work. When the cores are
contended (more runnable processes than cores: an inference server, a second worker, anything
else on the machine), the kernel then runs the loop first. Measured under load on 2 cores (W2):
loop lag while logging p99 / max 10.5 / 25.8 ms at the same priority, 5.3 / 11.5 ms at +10,
throughput unchanged. On an idle machine it changes nothing: each process has its core.
"""


PIPE_BYTES = 1 << 20
"""The worker's input pipe, enlarged from Linux's 64 KB (1 MB is the unprivileged maximum): a
batch is a few hundred KB, so the default pipe took it in several wakeups of the loop, and held
less than one batch while the worker wrote a row group, so the tracker stalled on it."""


class PoolWorker:
    """One worker process and its pipes, shared by the channels of many runs."""

    def __init__(self, nice: int = WORKER_NICE) -> None:
        self.process = subprocess.Popen(
            command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            close_fds=True,
            env=worker_env(),
        )
        if nice > 0:  # best effort: lowering a child's priority needs no privilege on Unix
            with contextlib.suppress(OSError, AttributeError):
                base = os.getpriority(os.PRIO_PROCESS, 0)
                os.setpriority(os.PRIO_PROCESS, self.process.pid, min(19, base + nice))
        assert self.process.stdin is not None and self.process.stdout is not None
        self._in = self.process.stdin.fileno()
        with contextlib.suppress(OSError, AttributeError):  # Linux only; elsewhere the default
            fcntl.fcntl(self._in, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        self._out = self.process.stdout.fileno()
        os.set_blocking(self._in, False)
        os.set_blocking(self._out, False)
        self.channels = 0
        self.failure: str | None = None
        self._buffer = bytearray()
        self._replies: dict[int, FromWorker] = {}
        self._abandoned: set[int] = set()
        self._next_channel = 0
        self._next_request = 0
        self._token: object = None
        self._write_lock: anyio.Lock | None = None
        self._read_lock: anyio.Lock | None = None

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    @property
    def healthy(self) -> bool:
        """Alive, pipes intact."""
        return self.failure is None and self.process.poll() is None

    def channel(self) -> Channel:
        """A new channel for one run."""
        self._next_channel += 1
        self.channels += 1
        return Channel(self, self._next_channel)

    def request_id(self) -> int:
        """A fresh request number (replies carry it)."""
        self._next_request += 1
        return self._next_request

    def _locks(self) -> tuple[anyio.Lock, anyio.Lock]:
        """This event loop's locks (a new loop gets new ones: the old loop has ended)."""
        token = anyio.lowlevel.current_token()
        if self._write_lock is None or self._read_lock is None or token != self._token:
            self._token = token
            self._write_lock, self._read_lock = anyio.Lock(), anyio.Lock()
        return self._write_lock, self._read_lock

    def _error(self) -> EvalStreamError:
        return EvalStreamError(
            f"the details worker process stopped ({self.failure}); the journal keeps every "
            "sample: run `evalstream recover` on the run folder"
        )

    def _break(self, reason: str) -> EvalStreamError:
        if self.failure is None:
            self.failure = reason
            with contextlib.suppress(OSError):
                self.process.kill()
        return self._error()

    def _write(self, data: memoryview) -> int:
        try:
            return os.write(self._in, data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            raise self._break(repr(exc)) from exc

    async def send(self, message: ToWorker) -> None:
        """Write one message as one whole frame, in turn with the other runs (FIFO)."""
        if self.failure is not None:
            raise self._error()
        data = frame(TO_WORKER.encode(message))
        write_lock, _ = self._locks()
        async with write_lock:
            view = memoryview(data)
            done = 0
            while done == 0:  # nothing written yet: cancelling here tears nothing
                await anyio.wait_writable(self._in)
                done = self._write(view)
            try:
                while done < len(view):
                    await anyio.wait_writable(self._in)
                    done += self._write(view[done:])
            except anyio.get_cancelled_exc_class():
                with anyio.CancelScope(shield=True), anyio.move_on_after(_FINISH_TIMEOUT):
                    while done < len(view):
                        await anyio.wait_writable(self._in)
                        done += self._write(view[done:])
                if done < len(view):
                    self._break("a frame could not be finished after its run was cancelled")
                raise

    async def reply(self, request: int) -> FromWorker:
        """Wait for the answer to ``request``, reading others' answers on the way."""
        _, read_lock = self._locks()
        try:
            while request not in self._replies:
                if self.failure is not None:
                    raise self._error()
                async with read_lock:
                    if request not in self._replies and self.failure is None:
                        answer = self._decode(await self._line())
                        if answer.request in self._abandoned:
                            self._abandoned.discard(answer.request)
                        else:
                            self._replies[answer.request] = answer
            return self._replies.pop(request)
        except BaseException:
            if self._replies.pop(request, None) is None:
                self._abandoned.add(request)
            raise

    def _decode(self, line: bytes) -> FromWorker:
        """A reply as its message. One that is not breaks the worker: its output can no longer
        be trusted to answer the runs waiting on it."""
        try:
            return decode_reply(line)
        except EvalStreamError as exc:
            raise self._break(str(exc)) from exc

    async def _line(self) -> bytes:
        while (end := self._buffer.find(b"\n")) < 0:
            await anyio.wait_readable(self._out)
            try:
                chunk = os.read(self._out, _READ)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise self._break(repr(exc)) from exc
            if not chunk:
                raise self._break(f"exit code {self.process.poll()}")
            self._buffer += chunk
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return line

    def close_input(self) -> None:
        """Close stdin: the worker finishes what it has and exits."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()

    def reap(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for the exit (blocking), then kill; release the pipes."""
        self.close_input()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    async def aclose(self) -> None:
        """Close without blocking the loop: EOF, wait for the exit in a thread, kill if it hangs."""
        self.close_input()
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.reap, _EXIT_TIMEOUT)


class Channel:
    """One run's conversation with one worker process."""

    def __init__(self, worker: PoolWorker, number: int) -> None:
        self.worker = worker
        self.number = number
        self._ended = False
        self._closed = False

    @property
    def pid(self) -> int:
        """The worker process's id."""
        return self.worker.pid

    async def open(self, workdir: Path, keep_rows: bool, shard: int, layout: str = "flat") -> None:
        """Give the worker this run's folder, shard number and details layout."""
        await self.worker.send(
            Open(
                channel=self.number,
                workdir=str(workdir),
                keep_rows=keep_rows,
                shard=shard,
                layout=layout,
                umask=_umask(),  # the worker writes the run's files under it
            )
        )

    async def message(self, payload: bytes) -> None:
        """Forward one journal-encoded message, as the journal's bytes (never decoded here)."""
        await self.worker.send(Forward(channel=self.number, payload=payload))

    async def flush(self) -> FromWorker:
        """Have the worker write and fsync the run's rows; its answer."""
        request = self.worker.request_id()
        await self.worker.send(Flush(channel=self.number, request=request))
        return await self.worker.reply(request)

    async def end(self, output: Output | None) -> FromWorker:
        """End the run on the worker (writing the parquet under ``output`` if given); its answer."""
        request = self.worker.request_id()
        self._ended = True
        await self.worker.send(End(channel=self.number, request=request, output=output))
        return await self.worker.reply(request)

    async def close(self) -> None:
        """Release the channel; a run that did not end has its worker state dropped (``Drop``)."""
        if self._closed:
            return
        self._closed = True
        self.worker.channels -= 1
        if self.worker.channels == 0 and not self.worker.healthy:
            self.worker.reap(0)  # dead already: collect it now, not at the pool's next start
        if not self._ended and self.worker.healthy:
            with anyio.CancelScope(shield=True), contextlib.suppress(EvalStreamError):
                await self.worker.send(Drop(channel=self.number))


class WorkerPool:
    """Worker processes shared by every run of a Runtime; grows to the largest run's need."""

    def __init__(self, size: int, nice: int = WORKER_NICE) -> None:
        self.size = max(1, size)
        self.nice = nice
        self._workers: list[PoolWorker] = []
        self._retired: list[PoolWorker] = []
        self.closed = False
        # at garbage collection or interpreter exit, whichever comes first
        self._finalizer = weakref.finalize(self, _reap_all, self._workers, self._retired)

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids."""
        return [w.pid for w in self._workers]

    def start(self, count: int | None = None) -> None:
        """Make sure ``count`` (default: ``size``) healthy workers run; replace dead ones."""
        if self.closed:
            raise EvalStreamError("the runtime is closed; its worker pool cannot start runs")
        count = max(count or self.size, 1)
        for worker in [w for w in self._retired if w.channels == 0]:
            self._retired.remove(worker)
            worker.reap(0)
        for slot, worker in enumerate(self._workers):
            if not worker.healthy:  # its runs fail on their own; new runs get a fresh process
                self._retired.append(worker)  # reaped once its last run has let go
                self._workers[slot] = PoolWorker(self.nice)
        while len(self._workers) < count:
            self._workers.append(PoolWorker(self.nice))

    def channels(self, count: int) -> list[Channel]:
        """One channel on each of the first ``count`` workers, for one run."""
        self.start(max(count, self.size))
        return [worker.channel() for worker in self._workers[:count]]

    @property
    def busy(self) -> int:
        """Open channels over all workers."""
        return sum(w.channels for w in self._workers)

    async def aclose(self) -> None:
        """Stop every worker (each finishes its queued frames first)."""
        self.closed = True
        workers = self._workers + self._retired
        self._workers.clear()
        self._retired.clear()
        for worker in workers:
            worker.close_input()
        for worker in workers:
            await worker.aclose()

    def close(self) -> None:
        """Stop every worker, blocking (thread end, garbage collection, interpreter exit)."""
        self.closed = True
        self._finalizer()

    def forsake(self) -> list[int]:
        """In a forked child: the workers are the parent's. The pool closes without touching
        them (no end of input, no wait, no kill, nothing at exit) and returns its copies of
        their pipes, for the caller to let go of (``run/forks.py``)."""
        self.closed = True
        self._finalizer.detach()
        return [
            pipe.fileno()
            for worker in self._workers + self._retired
            for pipe in (worker.process.stdin, worker.process.stdout)
            if pipe is not None and not pipe.closed
        ]


def _reap_all(*groups: list[PoolWorker]) -> None:
    workers = [worker for group in groups for worker in group]
    for worker in workers:
        worker.close_input()
    for worker in workers:
        worker.reap(_EXIT_TIMEOUT)
    for group in groups:
        group.clear()
