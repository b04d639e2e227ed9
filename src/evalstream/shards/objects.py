"""The shared folder every shard writes to: an fsspec file system (S3, GCS, a local or network
disk), with writes that a reader sees whole or not at all.

An object store's PUT is atomic: an object exists complete or not at all, and S3 answers a PUT
only once the object is stored durably (and lists it at once: S3 is strongly consistent since
2020). A local or network disk gets the same guarantee from evalstream's atomic write (temporary
file, fsync, rename, folder fsync). Errors of the file system's client are translated here into
StorageErrors naming the object.

Layout under ``OUTPUT_DIR``::

    .evalstream/shards/RUN/00003-of-00016/ATTEMPT/shard.json       the attempt's manifest
    .evalstream/shards/RUN/00003-of-00016/ATTEMPT/journal/00000000.wal  journal chunks, in order
    .evalstream/shards/RUN/merged.json                              what the last merge wrote

An attempt is one process recording the shard (its run id); a shard re-run after a crash is a
new attempt that resumes the dead one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalstream._errors import EvalStreamError, StorageError
from evalstream.durability.storage import atomic_write, is_remote

if TYPE_CHECKING:
    from collections.abc import Callable

SHARDS = ".evalstream/shards"
MANIFEST = "shard.json"
MERGED = "merged.json"


def run_prefix(run: str) -> str:
    """The folder of run ``run``'s shards, relative to the output folder."""
    return f"{SHARDS}/{run}"


def chunk_name(n: int) -> str:
    """The name of an attempt's ``n``-th journal chunk; zero-padded so names sort in order."""
    return f"journal/{n:08d}.wal"


class ObjectFolder:
    """An fsspec folder: whole-object writes and reads, listings, under one base path."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self.local = not is_remote(url)
        try:
            if self.local:
                self.fs: Any = None
                self.base = str(Path(url.removeprefix("file://")).expanduser().absolute())
            else:
                import fsspec  # imported lazily: only remote folders need it

                fs, _, (base,) = fsspec.get_fs_token_paths(url, storage_options=storage_options)
                self.fs = fs
                self.base = base.rstrip("/")
        except (ImportError, ValueError) as exc:
            raise StorageError(
                f"cannot open {url}: {exc} (install the fsspec file system for its protocol, "
                "e.g. s3fs for s3://)"
            ) from exc

    def where(self, rel: str) -> str:
        """The URL (or local path) of ``rel``, for messages and results."""
        return f"{self.url}/{rel}"

    def _path(self, rel: str) -> str:
        return f"{self.base}/{rel}"

    def _call(self, what: str, rel: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except EvalStreamError:
            raise
        except FileNotFoundError as exc:
            if what != "write":
                raise  # reading or listing what is not there: the caller decides
            raise StorageError(
                f"could not write {self.where(rel)}: {exc} (does the bucket or folder exist?)"
            ) from exc
        except Exception as exc:  # the client's errors: botocore, aiohttp, OSError
            raise StorageError(
                f"could not {what} {self.where(rel)}: {type(exc).__name__}: {exc}"
            ) from exc

    def put(self, rel: str, data: bytes) -> None:
        """Write the object ``rel`` whole (blocking); returns once the store has it."""
        if self.local:
            self._call("write", rel, lambda: atomic_write(Path(self._path(rel)), data))
        else:
            self._call("write", rel, lambda: self.fs.pipe_file(self._path(rel), data))

    def get(self, rel: str) -> bytes:
        """The bytes of object ``rel`` (blocking); FileNotFoundError when it does not exist."""
        if self.local:
            return self._call("read", rel, lambda: Path(self._path(rel)).read_bytes())  # type: ignore[no-any-return]
        return self._call("read", rel, lambda: self.fs.cat_file(self._path(rel)))  # type: ignore[no-any-return]

    def get_or_none(self, rel: str) -> bytes | None:
        """The bytes of ``rel``, or None when there is no such object."""
        try:
            return self.get(rel)
        except FileNotFoundError:
            return None

    def files(self, rel: str) -> dict[str, int]:
        """Every object under folder ``rel``: its path relative to ``rel``, and its size."""
        root = self._path(rel)
        if self.local:

            def walk() -> dict[str, int]:
                out: dict[str, int] = {}
                for dirpath, _, names in os.walk(root):
                    for name in names:
                        if not name.startswith(".tmp-"):
                            full = os.path.join(dirpath, name)
                            out[os.path.relpath(full, root)] = os.path.getsize(full)
                return out

            return self._call("list", rel, walk)  # type: ignore[no-any-return]

        def find() -> dict[str, int]:
            self.fs.invalidate_cache(root)  # other processes write here: never a stale listing
            found = self.fs.find(root, detail=True)
            return {
                name[len(root) + 1 :]: int(info.get("size") or 0)
                for name, info in found.items()
                if info.get("type", "file") == "file"
            }

        try:
            return self._call("list", rel, find)  # type: ignore[no-any-return]
        except FileNotFoundError:
            return {}
