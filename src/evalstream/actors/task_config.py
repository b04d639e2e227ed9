"""The task config logger: each task's settings, with its document counts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, assert_never

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

if TYPE_CHECKING:
    from evalstream._types import TaskSpec


class TaskConfigActor(Actor):
    """Keeps every declared task's spec and fills ``original_num_docs``/``effective_num_docs``."""

    name = "task_config"

    def __init__(self) -> None:
        super().__init__()
        self._specs: dict[str, TaskSpec] = {}
        self._num_docs: dict[str, tuple[int, int]] = {}

    async def handle(self, message: RunMessage) -> None:
        """Record task specs and document counts; ignore the rest."""
        match message:
            case TasksDeclared(tasks=tasks):
                for task in tasks:
                    self._specs[task.name] = task
            case NumDocs(task_name=name, original_num_docs=original, effective_num_docs=effective):
                self._num_docs[name] = (original, effective)
            case ArgsInfo() | ModelInfoLogged() | SampleBatch() | TaskVersion() | EndOfRun():
                pass
            case _:
                assert_never(message)

    def specs(self) -> dict[str, TaskSpec]:
        """The declared tasks by name."""
        return dict(self._specs)

    def configs(self) -> dict[str, dict[str, Any]]:
        """``config_tasks`` of the results file: each task's config with its document counts."""
        out: dict[str, dict[str, Any]] = {}
        for name in sorted(self._specs):
            config = dict(self._specs[name].config)
            original, effective = self._num_docs.get(name, (None, None))
            config["original_num_docs"] = original if original is not None else -1
            config["effective_num_docs"] = effective if effective is not None else -1
            out[name] = config
        return out
