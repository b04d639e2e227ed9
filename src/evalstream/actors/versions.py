"""The versions logger: which version of each task was run."""

from __future__ import annotations

from typing import assert_never

from evalstream._messages import (
    ArgsInfo,
    EndOfRun,
    ModelInfoLogged,
    NumDocs,
    RunMessage,
    SampleBatch,
    TasksDeclared,
    TaskVersion,
)
from evalstream.actors.base import Actor


class VersionsActor(Actor):
    """Keeps ``{task: version}``; a later explicit version overrides the declared one."""

    name = "versions"

    def __init__(self) -> None:
        super().__init__()
        self._versions: dict[str, int] = {}

    async def handle(self, message: RunMessage) -> None:
        """Record declared and explicit versions; ignore the rest."""
        match message:
            case TasksDeclared(tasks=tasks):
                for task in tasks:
                    self._versions.setdefault(task.name, task.version)
            case TaskVersion(task_name=name, version=version):
                self._versions[name] = version
            case ArgsInfo() | ModelInfoLogged() | SampleBatch() | NumDocs() | EndOfRun():
                pass
            case _:
                assert_never(message)

    def versions(self) -> dict[str, int]:
        """A copy of the versions, sorted by task name."""
        return dict(sorted(self._versions.items()))
