"""Files written atomically: to a temporary name beside the destination, then renamed into place.

A product is written to ``.<name>.tmp-<pid>`` in its destination's directory, flushed to disk
and renamed over the destination (:func:`os.replace`), and the rename made durable by a flush
of the directory: a reader never sees a half-written file, and a failed write leaves the
previous file, if any, as it was and no temporary file behind. The FITS cubes
(:func:`skarim.io.fits.write_cube`) and the source list
(:func:`skarim.restore.source_list.write_source_list`) are written so.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from skarim.errors import InputError

__all__ = ["atomic_path"]


@contextlib.contextmanager
def atomic_path(path: Path, what: str = "file") -> Iterator[Path]:
    """A temporary path to write ``path``'s content to; renamed over ``path`` on success.

    Parameters
    ----------
    path : pathlib.Path
        Destination; an existing file there is replaced (renamed over, never truncated).
    what : str
        What the file is, for the error message (``"FITS file"``).

    Yields
    ------
    pathlib.Path
        The temporary path, beside ``path``; no file exists there when the block starts.

    Raises
    ------
    InputError
        If the file cannot be written (an :class:`OSError` in the block or the rename). Any
        exception removes the temporary file and leaves ``path`` as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.unlink(missing_ok=True)  # writers that append (StreamingHDU) start from nothing
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise InputError(f"cannot write {what} {path}: {exc}") from exc
        raise
    _fsync_directory(path.parent)


def _fsync_file(path: Path) -> None:
    """Flush a written file's data to disk before it is renamed into place."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable, where the file system allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
