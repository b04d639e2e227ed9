"""What a long-lived process holds: for daemons' leak checks (Linux ``/proc``)."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

_PROC = Path("/proc")


class Resources(msgspec.Struct, frozen=True):
    """Open file descriptors, OS threads, live child processes and resident memory."""

    fds: int
    threads: int
    children: int
    rss_bytes: int

    def counts(self) -> tuple[int, int, int]:
        """(fds, threads, children): what must not grow over runs."""
        return self.fds, self.threads, self.children


def process_resources() -> Resources:
    """This process's resources now (Linux; blocking but quick)."""
    me = str(os.getpid())
    children = 0
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me and fields[0] != "Z":  # ppid, and not a zombie
                children += 1
    status = dict(
        line.split(":", 1)
        for line in (_PROC / "self/status").read_text().splitlines()
        if ":" in line
    )
    return Resources(
        fds=len(os.listdir(_PROC / "self/fd")),
        threads=int(status["Threads"]),
        children=children,
        rss_bytes=int(status["VmRSS"].split()[0]) * 1024,
    )
