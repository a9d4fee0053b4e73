"""What a run's store already holds: the line a resumed run logs and an interrupted one ends with.

A run is resumed from its store's markers (:mod:`skarim.io.store`): the tiles whose dirty
image is written (``gridded``) and, per output channel, the last major cycle whose exact
residual is in (``rcycle``). :func:`store_progress` counts them; :func:`kept_line` is what an
interrupted run, or one stopped by a write error, says it leaves behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skarim.config import RunConfig
from skarim.io.store import RunStore

__all__ = ["StoreProgress", "kept_line", "store_progress"]


@dataclass(frozen=True)
class StoreProgress:
    """The finished work a store holds.

    Attributes
    ----------
    tiles : int
        (channel, tile) pairs of the run.
    gridded : int
        Of those, the ones whose dirty image is written.
    cycles : int
        Major cycles the run asks for, the RIM's and the polish's (0: dirty only).
    cycles_done : int
        Major cycles finished by every output channel with data (a channel whose cycles
        ended early counts as finished).
    """

    tiles: int
    gridded: int
    cycles: int
    cycles_done: int

    @property
    def started(self) -> bool:
        """Whether any finished work is kept."""
        return self.gridded > 0

    def describe(self) -> str:
        """``16/16 tiles gridded, 2 of 5 major cycles finished``."""
        text = f"{self.gridded}/{self.tiles} tiles gridded"
        if self.cycles:
            text += f", {self.cycles_done} of {self.cycles} major cycles finished"
        return text


def store_progress(store: RunStore, cycles: int) -> StoreProgress:
    """Count the finished work of ``store`` for a run of ``cycles`` major cycles."""
    gridded = store.array("gridded")[...]  # (chan, nty, ntx) int8
    done_channels = np.all(gridded.reshape(len(gridded), -1) == 1, axis=1)  # (chan,)
    has_data = store.array("sumwt")[...] > 0  # (chan,)
    rcycle = np.minimum(store.array("rcycle")[...], cycles)  # (chan,)
    # a channel not yet gridded has finished no cycle; one gridded without data needs none
    per_channel = np.where(done_channels, np.where(has_data, rcycle, cycles), 0)
    return StoreProgress(
        tiles=int(gridded.size),
        gridded=int(np.count_nonzero(gridded)),
        cycles=cycles,
        cycles_done=int(per_channel.min()) if len(per_channel) else 0,
    )


def kept_line(cfg: RunConfig) -> str:
    """What the store of a stopped run keeps, and what re-running the same command does."""
    path = Path(cfg.output.store_path)
    cycles = 0 if cfg.dirty_only else cfg.deconv.total_cycles
    try:
        store = RunStore.open(path)
        complete = store.group.attrs.get("complete_layout") is True
        progress = store_progress(store, cycles) if complete else None
    except (OSError, KeyError, ValueError):  # no store, or one half made
        progress = None
    if progress is None or not progress.started:
        return f"{path} keeps no finished work yet; re-running the same command starts again"
    return f"{path} keeps {progress.describe()}; re-running the same command resumes from there"
