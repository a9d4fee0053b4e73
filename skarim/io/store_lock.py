"""The lock of a run's store: one run at a time writes a store and its products.

A run holds ``<store>.lock``, a file beside its store (``run.zarr.lock``: ``--overwrite``
removes the store itself), from before the store is opened until its products are written.
The lock is an exclusive ``flock`` on that file, which the kernel releases when the process
ends, however it ends; the file's text (JSON: ``pid``, ``host``, ``started``, ``command``)
names the holder.

- A second run on the same store finds the ``flock`` taken and stops with one line naming the
  holder (:class:`~skarim.errors.InputError`).
- A lock file whose ``flock`` is free was left by a run that was killed outright (SIGKILL, a
  lost node): the next run takes it over and reports the holder it replaced.
- The run removes the file when it ends. A run that opened the file just before it was removed
  holds a lock nobody else sees, so a lock counts only while its file is still the one at the
  path (same inode); otherwise the run tries again.

On a file system without ``flock`` (some Lustre and NFS mounts: ``ENOLCK``, ``ENOSYS``,
``EOPNOTSUPP``) the holder named in the file is checked instead: a process of this host that
is gone is taken over; a live one, or one of another host, is in use.

Taking the lock is also the check that the output directory can be written (created when
absent), before any work starts: :func:`output_directory`.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from skarim.errors import InputError

__all__ = ["LockHolder", "hold_store", "lock_path", "output_directory"]

_NO_FLOCK = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP)


@dataclass(frozen=True)
class LockHolder:
    """The run named in a lock file.

    Attributes
    ----------
    pid : int
        Its process id (0 when the file could not be read).
    host : str
        The host it ran on.
    started : str
        When it took the lock, ISO 8601 UTC.
    command : str
        Its command line.
    """

    pid: int
    host: str
    started: str
    command: str

    def describe(self) -> str:
        """``process 1234 on host, started 2026-12-01T10:00:00``."""
        if not self.pid:
            return "a run that left no record"
        return f"process {self.pid} on {self.host}, started {self.started}"


def lock_path(store_path: Path) -> Path:
    """The lock file of a store: ``run.zarr`` -> ``run.zarr.lock``."""
    store_path = Path(store_path)
    return store_path.with_name(f"{store_path.name}.lock")


def output_directory(directory: Path, what: str) -> Path:
    """Create ``directory`` if absent and check that files can be created in it.

    Parameters
    ----------
    directory : Path
        Where the outputs go.
    what : str
        The outputs, for the message (``the products of --name out/run``).

    Returns
    -------
    Path
        ``directory``.

    Raises
    ------
    InputError
        One line: the directory, why it cannot be written, and ``what``.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise InputError(f"cannot write in {directory} ({what}): it is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".skarim-write-check-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise InputError(f"cannot write in {directory} ({what}): {reason}") from None
    return directory


@contextmanager
def hold_store(store_path: Path) -> Iterator[LockHolder | None]:
    """Hold the lock of a store for the ``with`` block; the lock file is removed at its end.

    Parameters
    ----------
    store_path : Path
        The run's store (it need not exist yet).

    Yields
    ------
    LockHolder or None
        The holder of a lock that was left behind by a run no longer running, now taken over;
        None when there was none.

    Raises
    ------
    InputError
        When another run holds the lock, naming it; or when the store's directory cannot be
        written (:func:`output_directory`).
    """
    path = lock_path(store_path)
    output_directory(path.parent, f"the store {store_path} and the products beside it")
    fd, left = _acquire(path, store_path)
    try:
        yield left
    finally:
        with suppress(OSError):
            path.unlink()
        os.close(fd)


def _acquire(path: Path, store_path: Path) -> tuple[int, LockHolder | None]:
    """Open and lock ``path``, write this process into it; the holder it replaced, if any."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise _in_use(store_path, holder) from None
        except OSError as exc:
            if exc.errno not in _NO_FLOCK:
                os.close(fd)
                raise
            _check_holder_gone(fd, path, store_path)
        if _same_file(fd, path):
            break
        os.close(fd)  # removed by the run that held it: lock the file now at the path
    left = _read(fd) if os.fstat(fd).st_size else None
    _write(fd)
    return fd, left


def _check_holder_gone(fd: int, path: Path, store_path: Path) -> None:
    """Without ``flock``: raise unless the holder named in the file is gone from this host."""
    holder = _read(fd) if os.fstat(fd).st_size else None
    if holder is None or (holder.host == socket.gethostname() and not _alive(holder.pid)):
        return
    os.close(fd)
    raise _in_use(store_path, holder, path)


def _in_use(store_path: Path, holder: LockHolder, unchecked: Path | None = None) -> InputError:
    """The error of a store in use; ``unchecked``: a lock file whose holder could not be
    checked (another host, no ``flock``), named so that the user can remove it."""
    gone = f" (if that run is gone, remove {unchecked})" if unchecked else ""
    return InputError(
        f"the store {store_path} is in use by another skarim run ({holder.describe()}); "
        f"wait for it to end or give another --name{gone}"
    )


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == path.stat().st_ino
    except FileNotFoundError:
        return False


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _read(fd: int) -> LockHolder:
    """The holder written in an open lock file (``pid`` 0 when unreadable)."""
    try:
        text = os.pread(fd, 65536, 0).decode()
        d = json.loads(text)
        return LockHolder(int(d["pid"]), str(d["host"]), str(d["started"]), str(d["command"]))
    except (OSError, ValueError, KeyError, TypeError):
        return LockHolder(0, "", "", "")


def _write(fd: int) -> None:
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "command": " ".join(["skarim", *sys.argv[1:]]),
    }
    data = json.dumps(record).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)
