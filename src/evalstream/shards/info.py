"""``ShardInfo``: which shard of which run a tracker records.

The run id names the run every shard belongs to (the same string on every shard, e.g. the
cluster job id); ``index`` is this shard's position among ``count`` shards (a data-parallel
rank, or a job-array index). The merge orders samples by shard index, so shards that split
each task into contiguous blocks merge into the order a single process would have logged.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

import msgspec

from evalstream._errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class ShardInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Shard ``index`` of ``count`` of the run ``run``.

    ``upload_interval`` (seconds) bounds how long a journaled sample can wait before the
    background upload copies it to the object store; ``flush()`` uploads at once.
    """

    run: str
    index: int
    count: int
    upload_interval: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.run, str) or not _RUN_NAME.fullmatch(self.run):
            raise ConfigError(
                f"shard run id {self.run!r} must be 1-128 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit (it names a folder in the object store)"
            )
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ConfigError(f"shard count must be an integer of at least 1, got {self.count!r}")
        if (
            isinstance(self.index, bool)
            or not isinstance(self.index, int)
            or not 0 <= self.index < self.count
        ):
            raise ConfigError(
                f"shard index must be an integer in [0, {self.count}), got {self.index!r}"
            )
        if not self.upload_interval > 0:
            raise ConfigError("shard upload_interval must be positive (seconds)")

    @classmethod
    def from_env(cls, run: str, environ: Mapping[str, str] | None = None) -> ShardInfo:
        """The shard of this process from ``RANK`` and ``WORLD_SIZE``.

        torchrun, ``accelerate launch`` and ``torch.distributed`` launchers set both on every
        rank, so rank ``r`` of ``w`` becomes shard ``r`` of ``w``.
        """
        env = os.environ if environ is None else environ
        try:
            index, count = int(env["RANK"]), int(env["WORLD_SIZE"])
        except (KeyError, ValueError):
            raise ConfigError(
                "RANK and WORLD_SIZE must be set to integers (torchrun and accelerate launch "
                "set them); otherwise pass ShardInfo(run=..., index=..., count=...)"
            ) from None
        return cls(run=run, index=index, count=count)

    @property
    def folder(self) -> str:
        """This shard's folder under the run's shard folder (``00003-of-00016``)."""
        return shard_folder(self.index, self.count)


def shard_folder(index: int, count: int) -> str:
    """The folder name of shard ``index`` of ``count``; zero-padded so names sort by index."""
    return f"{index:05d}-of-{count:05d}"


def parse_shard_folder(name: str) -> tuple[int, int] | None:
    """``(index, count)`` of a shard folder name, or None for anything else."""
    match = re.fullmatch(r"(\d{5,})-of-(\d{5,})", name)
    return (int(match[1]), int(match[2])) if match else None
