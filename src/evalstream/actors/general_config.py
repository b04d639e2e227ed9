"""The general config logger: the run's arguments, model, tool version and timings."""

from __future__ import annotations

import time
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
    from evalstream._types import ModelInfo


class GeneralConfigActor(Actor):
    """Builds ``config_general``; times are seconds since the epoch (lighteval: perf_counter)."""

    name = "general_config"

    def __init__(self, *, tool_sha: str = "?", start_time: float | None = None) -> None:
        super().__init__()
        self.tool_sha = tool_sha
        self.start_time = start_time if start_time is not None else time.time()
        self.end_time: float | None = None
        self.args = ArgsInfo()
        self.model: ModelInfo | None = None

    async def handle(self, message: RunMessage) -> None:
        """Record arguments, model and end time; ignore the rest."""
        match message:
            case ArgsInfo():
                self.args = message
            case ModelInfoLogged(info=info):
                self.model = info
            case EndOfRun(end_time=end_time):
                self.end_time = end_time
            case TasksDeclared() | TaskVersion() | SampleBatch() | NumDocs():
                pass
            case _:
                assert_never(message)

    def config_general(self) -> dict[str, Any]:
        """``config_general`` with lighteval's keys, in lighteval's order.

        ``model_config`` (lighteval 0.13's key) is there when the model was logged with one.
        """
        end = self.end_time
        model = self.model
        config: dict[str, Any] = {
            "lighteval_sha": self.tool_sha,
            "num_fewshot_seeds": self.args.num_fewshot_seeds,
            "override_batch_size": self.args.override_batch_size,
            "max_samples": self.args.max_samples,
            "job_id": self.args.job_id,
            "start_time": self.start_time,
            "end_time": end,
            "total_evaluation_time_secondes": None if end is None else str(end - self.start_time),
            "model_name": model.model_name if model else None,
            "model_sha": model.model_sha if model else None,
            "model_dtype": model.model_dtype if model else None,
            "model_size": model.model_size if model else None,
        }
        if model is not None and model.model_config is not None:
            config["model_config"] = model.model_config
        return config
