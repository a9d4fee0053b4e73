"""Reordered visibilities: the selection's Stokes I and imaging weights, by input channel, in the
run's store, so that exact residuals read them instead of the Measurement Set.

WSClean reorders a Measurement Set into one file per output channel before imaging many
channels (``-reorder``, its default in channel imaging mode); skarim does the same into the
run's Zarr store (``reordered/``, :meth:`skarim.io.store.RunStore.add_reordered`). The grid
stage's pass over the Measurement Set, which reads every visibility of its channels anyway,
writes each channel's Stokes I and imaging weights (natural weights times the uniform or
Briggs correction and the taper, zero where flagged or outside the uv range) as it grids them
(:class:`ReorderWriter`), and the UVW once, with output channel 0. Every later exact residual
of those channels reads just their columns (:func:`reordered_chunks`): a major cycle makes no
pass over the Measurement Set, reads each visibility once (12 bytes in single precision,
against the whole cells of every channel and correlation of the Measurement Set, with flags
and weights), and needs no weighting pass.

Markers make it safe to interrupt and to share: each output channel's columns are written by
the one task that grids that channel (its lead share) and marked in ``reordered/done`` after
its last chunk, before its tiles are marked gridded; ``reordered/uvw_done`` is set the same way
by the task gridding channel 0. A residual uses the reordered data only when every channel of
its batch and the UVW are marked, and reads the Measurement Set otherwise. Each input channel
is a Zarr chunk column of its own (chunks of ``(rows of a read chunk, 1)``), so tasks writing
different channels never write the same chunk. The arrays go when the run completes
(:func:`skarim.run.pipeline.run_imaging`), as WSClean removes its reordered files; an
interrupted run keeps them for its resumption.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import zarr

from skarim.config import ReadConfig
from skarim.imaging.plan import ChannelGroup
from skarim.io.ms_read import Precision, VisChunk, gathered_bytes
from skarim.io.store import RunStore

if TYPE_CHECKING:
    from skarim.imaging.batch import ChannelBatch

__all__ = ["ReorderWriter", "reordered_chunks"]

_MIB = 2**20


class ReorderWriter:
    """Writes a batch's visibilities into the store's ``reordered/`` arrays as they are gridded.

    Parameters
    ----------
    store : RunStore
        The run's store; without ``reordered/`` arrays the writer writes nothing.
    batch : ChannelBatch
        The batch being gridded.
    lead : bool
        Whether this task is the channels' lead share (the only one that writes them).
    """

    def __init__(self, store: RunStore, batch: ChannelBatch, lead: bool) -> None:
        self._groups = batch.groups
        self._arrays: zarr.Group | None = None
        self._pending: set[int] = set()
        self._uvw = False
        if not (lead and store.has_reordered):
            return
        arrays = store.group["reordered"]
        done = arrays["done"][...]  # (nchan_out,)
        self._pending = {k for k, g in enumerate(batch.groups) if not done[g.index]}
        self._uvw = any(g.index == 0 for g in batch.groups) and not arrays["uvw_done"][0]
        self._arrays = arrays
        self._vis, self._weight = arrays["vis"], arrays["weight"]

    def due(self, members: list[int]) -> set[int]:
        """The groups (indices into the batch) among ``members`` whose columns are still due."""
        return self._pending.intersection(members)

    def put_uvw(self, chunk: VisChunk) -> None:
        """Write a chunk's UVW, when this batch holds output channel 0 and they are due."""
        if self._uvw and self._arrays is not None:
            self._arrays["uvw"][chunk.row_start : chunk.row_start + len(chunk.uvw_m)] = chunk.uvw_m

    def put(self, chunk: VisChunk, k: int, vis: np.ndarray, weight: np.ndarray) -> None:
        """Write group ``k``'s ``(n, nchan_k)`` Stokes I (Jy) and imaging weights (Jy^-2)."""
        g = self._groups[k]
        rows = slice(chunk.row_start, chunk.row_start + len(chunk.uvw_m))
        self._vis[rows, g.start : g.stop] = vis
        self._weight[rows, g.start : g.stop] = weight

    def written(self, ks: set[int]) -> None:
        """Mark groups ``ks`` written (call after a pass over every chunk), and the UVW with
        them when this pass wrote it."""
        if not ks or self._arrays is None:
            return
        if self._uvw:
            self._arrays["uvw_done"][0] = 1
            self._uvw = False
        done = self._arrays["done"]
        for k in sorted(ks):
            done[self._groups[k].index] = 1
        self._pending.difference_update(ks)


def reordered_chunks(
    store: RunStore, groups: list[ChannelGroup], read: ReadConfig, precision: Precision
) -> Callable[[], Iterator[VisChunk]] | None:
    """A reader of the groups' reordered visibilities, or None when they are not all written.

    Parameters
    ----------
    store : RunStore
        The run's store.
    groups : list of ChannelGroup
        Output channels of one batch; their span of input channels is read.
    read : ReadConfig
        Its ``chunk_rows`` are read at a time when given, as from the Measurement Set;
        otherwise a chunk holds at most ``chunk_mb`` MiB of Stokes I, weights and UVW, and a
        span that fits is read as one chunk of every row.
    precision : {"single", "double"}
        The precision the batch works in; it must be that of the arrays.

    Returns
    -------
    callable or None
        Called with no argument, it yields :class:`~skarim.io.ms_read.VisChunk` s of
        consecutive rows whose ``weight`` is the imaging weight and whose
        ``nonfinite_per_chan`` is zero (the grid stage counted those).
    """
    if not store.has_reordered:
        return None
    arrays = store.group["reordered"]
    done = arrays["done"][...]  # (nchan_out,)
    if not arrays["uvw_done"][0] or not all(done[g.index] for g in groups):
        return None
    vis, weight, uvw = arrays["vis"], arrays["weight"], arrays["uvw"]
    if np.dtype(vis.dtype).itemsize != (16 if precision == "double" else 8):
        return None
    first, stop = min(g.start for g in groups), max(g.stop for g in groups)
    nrow, step = vis.shape[0], vis.chunks[0]
    budget = read.chunk_mb * _MIB
    if read.chunk_rows is not None:
        rows = read.chunk_rows
    elif gathered_bytes(nrow, stop - first, precision) <= budget:
        rows = nrow
    else:  # whole Zarr chunks
        rows = step * max(1, budget // gathered_bytes(step, stop - first, precision))

    def chunks() -> Iterator[VisChunk]:
        for r0 in range(0, nrow, rows):
            sl = slice(r0, min(r0 + rows, nrow))
            yield VisChunk(
                row_start=r0,
                uvw_m=uvw[sl],  # (n, 3)
                vis=vis[sl, first:stop],  # (n, nchan)
                weight=weight[sl, first:stop],  # (n, nchan)
                nonfinite_per_chan=np.zeros(stop - first, np.int64),
            )

    return chunks
