"""SIGINT and SIGTERM as an interrupt that loses nothing.

A terminal stops a command with SIGINT (Ctrl-C), a batch system with SIGTERM (SLURM's
``scancel``, a job's time limit). While :func:`interrupts` is active (the ``skarim`` command
holds it) both raise ``KeyboardInterrupt`` in the main thread, once: a run then closes its
workers and says what its store keeps (:class:`~skarim.errors.RunInterrupted`), and the command
exits with :func:`exit_status`, 128 + the signal's number (130, 143), as a shell reports a
process the signal ended. Later signals are ignored while the run winds down (a few seconds);
SIGKILL still ends it at once, and re-running resumes from the store all the same.

Code that must not be cut in the middle, such as the start of a Dask cluster (which would
leave its processes behind), runs under :func:`shielded`: a signal that comes meanwhile is
raised when the block ends.

The worker processes of a local cluster load this module (:data:`WORKER_PRELOAD`,
:func:`dask_setup`) and ignore SIGINT: Ctrl-C reaches the terminal's whole process group, and
the run, not each worker, decides how its workers stop.
"""

from __future__ import annotations

import signal
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = [
    "WORKER_PRELOAD",
    "dask_setup",
    "exit_status",
    "interrupts",
    "shielded",
    "signal_name",
]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)

#: Loaded by every worker of a local cluster (``preload``) to run :func:`dask_setup`.
WORKER_PRELOAD = "skarim.run.signals"


class _State:
    """The depth of :func:`shielded` blocks, and whether an interrupt waits for their end."""

    shield = 0
    pending = False


@contextmanager
def interrupts() -> Iterator[list[int]]:
    """Turn the first SIGINT or SIGTERM into ``KeyboardInterrupt``; ignore those after it.

    Yields
    ------
    list of int
        The signals received so far, in order (filled in as they come).

    Notes
    -----
    Signal handlers belong to the main thread: elsewhere nothing is installed.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        if len(received) > 1:
            return
        # the interrupt abandons the store reads in flight (zarr coroutines never awaited):
        # without this the interpreter warns of each at exit, after the run's last line
        warnings.filterwarnings("ignore", r"coroutine .* was never awaited", RuntimeWarning)
        if _State.shield:
            _State.pending = True
            return
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, handler) for s in _SIGNALS}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _State.pending = False


@contextmanager
def shielded() -> Iterator[None]:
    """Hold back the interrupt of :func:`interrupts` until the block ends, then raise it."""
    _State.shield += 1
    try:
        yield
    finally:
        _State.shield -= 1
    if not _State.shield and _State.pending:
        _State.pending = False
        raise KeyboardInterrupt


def exit_status(received: list[int]) -> int:
    """128 + the first signal's number; 130 (SIGINT) when none was recorded."""
    return 128 + int(received[0] if received else signal.SIGINT)


def signal_name(received: list[int]) -> str:
    """``SIGINT`` or ``SIGTERM``: the first signal received (SIGINT when none was recorded)."""
    return signal.Signals(received[0] if received else signal.SIGINT).name


def dask_setup(worker: Any) -> None:
    """Worker preload: the worker process ignores SIGINT (its run closes it)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
