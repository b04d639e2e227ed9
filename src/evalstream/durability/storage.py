"""Where files go: atomic local writes, containment checks, and fsspec targets.

Atomic write: the bytes go to a temporary file in the destination folder, which is flushed and
fsynced, then renamed over the destination (``os.replace`` is atomic on POSIX), and the folder is
fsynced so the rename itself survives a power cut. A reader sees the old file or the new one,
never half of one. The file gets the permissions a plain ``open()`` would give it (0666 less
the umask), not ``mkstemp``'s private 0600, so a shared results folder stays readable.
Accepted trade-off: a crash may leave a ``.tmp-*`` file behind, which is ignored by every reader
and removed by the next write of the same file.

Nothing is written through a symbolic link inside the output folder (``local`` refuses one).

A remote ``output_dir`` (any fsspec URL other than ``file://``) is staged: every file is first
written atomically to a local staging folder, then copied to the target with fsspec. The staging
folder is this user's own, ``$TMPDIR/evalstream-staging-<uid>``: a stable name, because a
remote run's working folder (journal, marker) lives there and ``recover`` finds it again. It is
made with ``mkdir`` 0700 and, before a store first uses it, opened without following a link and
checked to be a folder of this user's that nobody else can enter. In a shared ``/tmp`` another
user could have taken that name first (a link to their folder, or a folder of theirs): files
would land where they can read or change them, so anything but our private folder is refused.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from evalstream._errors import StorageError, UnsafeNameError
from evalstream._naming import temp_prefix

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence


def fsync_dir(folder: Path) -> None:
    """Make ``folder``'s entries (new or renamed files) durable (blocking)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _create_temp(folder: Path, name: str) -> tuple[int, str]:
    """A new temporary file for ``name`` in ``folder``, open for writing: a random name (as
    ``mkstemp``'s), created exclusively, never through a link, and with the permissions a plain
    ``open()`` gives (0666 less the umask, applied by the kernel: no umask to read and no
    chmod, two system calls and a procfs read less per file than ``mkstemp`` then ``fchmod``)."""
    prefix = os.path.join(folder, temp_prefix(name))
    for _ in range(100):
        path = prefix + secrets.token_hex(4)
        try:
            return os.open(path, _TEMP_FLAGS, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", prefix)


def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` would race other threads)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # no procfs: read it the only portable way, and put it back
    os.umask(mask)
    return mask


def translate_oserror(exc: OSError, what: str) -> StorageError:
    """Turn an OSError into a StorageError that says what to do about it."""
    if exc.errno == errno.ENOSPC:
        hint = "the disk is full; free space and call save() again (logged samples are kept)"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "the folder is not writable; check its permissions or choose another output_dir"
    else:
        hint = exc.strerror or type(exc).__name__
    return StorageError(f"could not write {what}: {hint}")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = _create_temp(path.parent, path.name)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see all of it or none of it."""
    atomic_write_many(path.parent, [(path.name, data)])


def atomic_write_many(folder: Path, files: Sequence[tuple[str, bytes]]) -> None:
    """Write each ``(name, data)`` in ``folder`` atomically, renamed in the order given, with
    one fsync of the folder for all the renames (and for any other entry made in it since its
    last fsync: the caller's new subfolder, its lock file).

    A crash leaves each file old or new, never torn; the first files can be new and the later
    ones old, as if the crash came between separate writes. Each file is written through the
    descriptor that created it: one open per file, not three.
    """
    folder.mkdir(parents=True, exist_ok=True)
    temps: list[tuple[str, str]] = []
    try:
        for name, data in files:
            fd, tmp = _create_temp(folder, name)
            temps.append((tmp, name))
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        while temps:
            tmp, name = temps[0]
            os.replace(tmp, folder / name)
            temps.pop(0)
    except BaseException:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(folder)


def _pathconf(folder: Path, name: str, default: int) -> int:
    try:
        value = os.pathconf(folder, name)
    except (OSError, ValueError, AttributeError):  # unknown name, or no pathconf (Windows)
        return default
    return value if value > 0 else 1 << 30  # -1: no limit


def staging_root() -> Path:
    """This user's private staging folder for remote targets, made if missing (blocking).

    Raises StorageError when the name is taken by anything but a folder of this user's with no
    access for others (a symbolic link, a file, another user's folder, a 0755 folder).
    """
    uid = os.getuid()
    path = Path(tempfile.gettempdir()) / f"evalstream-staging-{uid}"
    try:
        os.mkdir(path, 0o700)  # never through a link: an existing name fails with EEXIST
        created = True
    except FileExistsError:
        created = False
    except OSError as exc:
        raise translate_oserror(exc, f"the staging folder {path}") from exc
    fix = "remove it (or set TMPDIR to a folder of your own) and run again"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:  # ELOOP: a symbolic link; ENOTDIR: a file
        raise StorageError(
            f"the staging folder {path} is not a folder but "
            f"{'a symbolic link' if path.is_symlink() else 'a file'}: files for the remote "
            f"output_dir would be written where someone else chose; {fix}"
        ) from exc
    try:
        if created:
            os.fchmod(fd, 0o700)  # whatever the umask took away from the owner
        info = os.fstat(fd)
    finally:
        os.close(fd)
    if info.st_uid != uid:
        raise StorageError(
            f"the staging folder {path} belongs to user id {info.st_uid}, not to you ({uid}): "
            f"they could read or change the files staged for the remote output_dir; {fix}"
        )
    if info.st_mode & 0o077:
        raise StorageError(
            f"the staging folder {path} is open to other users (mode "
            f"{stat.S_IMODE(info.st_mode):04o}): they could read or change the files staged "
            f"for the remote output_dir; `chmod 700 {path}`, or remove it, and run again"
        )
    return path


def is_remote(output_dir: str) -> bool:
    """True when ``output_dir`` is an fsspec URL that is not a local path."""
    return "://" in output_dir and not output_dir.startswith("file://")


def _refuse_a_file(root: Path, text: str) -> None:
    """Said when the tracker is made, not when its run starts: a file at or above ``root``."""
    for folder in (root, *root.parents):
        if folder.exists():
            if folder.is_dir():
                return
            where = "is a file" if folder == root else f"is inside {folder}, which is a file"
            raise UnsafeNameError(f"output_dir {text!r} {where}, not a folder")


class OutputStore:
    """The run's output folder: local paths for building files, and publishing to the target."""

    def __init__(self, output_dir: str | os.PathLike[str]) -> None:
        text = os.fspath(output_dir)
        if not text:
            raise UnsafeNameError("output_dir is empty; give a folder path or an fsspec URL")
        self.remote = is_remote(text)
        self._root: Path | None = None  # remote: the staging folder, made on first use
        if not self.remote:
            self._root = Path(text.removeprefix("file://")).expanduser().absolute()
            _refuse_a_file(self._root, text)
        # recorded absolute: recover, run from any folder, writes where the run wrote
        self.target = text if self.remote else str(self.root)
        self._limits: tuple[int, int] | None = None

    @property
    def root(self) -> Path:
        """The local folder files are built in: the output folder, or for a remote target this
        user's private staging folder (``staging_root``: made and checked on first use)."""
        if self._root is None:
            self._root = staging_root()
        return self._root

    def local(self, relpath: str) -> Path:
        """Local path of ``relpath``; raises if it would leave the output folder.

        Symbolic links inside the output folder are refused, not followed: a ``details`` or
        ``.evalstream`` link would put files outside it while the save reports success. (The
        output folder itself may be a link: that is where the caller chose to write.)
        """
        candidate = Path(os.path.normpath(self.root / relpath))
        if not candidate.is_relative_to(self.root):
            raise UnsafeNameError(f"{relpath!r} would be written outside output_dir")
        current = self.root
        for part in candidate.relative_to(self.root).parts:
            current = current / part
            try:
                link = current.is_symlink()
            except OSError as exc:  # a name too long for the file system, mostly
                raise UnsafeNameError(
                    f"{relpath!r} cannot be a path in {self.root}: {exc.strerror}"
                ) from exc
            if link:
                raise UnsafeNameError(
                    f"{current} is a symbolic link inside output_dir; evalstream does not follow "
                    "links there (files would land outside output_dir): replace it with a folder "
                    "or choose another output_dir"
                )
        return candidate

    def path_limits(self) -> tuple[int, int]:
        """(NAME_MAX, PATH_MAX) of the file system the files are built on, asked of the output
        folder or its nearest existing parent (blocking: a stat; cached). POSIX's 255 and
        4096 where the system does not say."""
        if self._limits is None:
            folder = self.root
            while not folder.exists() and folder != folder.parent:
                folder = folder.parent
            self._limits = (
                _pathconf(folder, "PC_NAME_MAX", 255),
                _pathconf(folder, "PC_PATH_MAX", 4096),
            )
        return self._limits

    def url(self, relpath: str) -> str:
        """Where ``relpath`` ends up: a local path, or the fsspec URL."""
        if self.remote:
            return self.target.rstrip("/") + "/" + relpath
        return str(self.local(relpath))

    def write_sync(self, relpath: str, data: bytes) -> Path:
        """Atomically write ``data`` at ``relpath`` (blocking; call from a worker thread)."""
        path = self.local(relpath)
        try:
            atomic_write(path, data)
        except OSError as exc:
            raise translate_oserror(exc, str(path)) from exc
        return path

    def upload_sync(self, relpaths: list[str]) -> None:
        """Copy staged files to a remote target (blocking); a no-op for local targets."""
        if not self.remote:
            return
        import fsspec  # imported lazily: only remote targets need it

        fs, _, (base,) = fsspec.get_fs_token_paths(self.target)
        for rel in relpaths:
            dest = base.rstrip("/") + "/" + rel
            fs.makedirs(dest.rsplit("/", 1)[0], exist_ok=True)
            fs.put_file(str(self.local(rel)), dest)

    def read_sync(self, relpath: str) -> bytes | None:
        """The bytes at ``relpath`` in the target, or None when there is no such file
        (blocking): where a save intent's results file is looked for."""
        if not self.remote:
            path = self.local(relpath)
            return path.read_bytes() if path.is_file() else None
        import fsspec

        fs, _, (base,) = fsspec.get_fs_token_paths(self.target)
        dest = base.rstrip("/") + "/" + relpath
        return fs.cat_file(dest) if fs.exists(dest) else None

    async def write(self, relpath: str, data: bytes) -> Path:
        """Atomically write in a worker thread; on cancellation the write completes or is undone."""
        return await anyio.to_thread.run_sync(self.write_sync, relpath, data)
