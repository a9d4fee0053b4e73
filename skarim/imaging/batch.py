"""Batches of output channels read together, for the grid stage and the exact residuals.

A :class:`ChannelBatch` is the selection spanning some output channels' input channels, with
each channel's weight grid (:func:`weighting_pass`, one read of the Measurement Set for
uniform or Briggs weights); its row chunks come from the Measurement Set, or from the store's
reordered visibilities with their imaging weights (:func:`reordered_batch`,
:mod:`skarim.imaging.reorder`). A batch read whole is held by its process for the next
residual of the same channels (:func:`hold_batch`, :func:`held_batch`).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from skarim.config import GridConfig, ReadConfig, Weighting
from skarim.imaging.plan import WEIGHT_PADDING, ChannelGroup
from skarim.imaging.reorder import reordered_chunks
from skarim.imaging.taper import UVTaper
from skarim.imaging.weighting import WeightGrid
from skarim.io.ms_meta import MSMeta
from skarim.io.ms_read import Precision, VisChunk, iter_chunks
from skarim.io.store import RunStore

__all__ = [
    "HELD_BATCHES",
    "ChannelBatch",
    "batch_selection",
    "held_batch",
    "hold_batch",
    "reordered_batch",
    "weighting_pass",
]


@dataclass(eq=False)
class ChannelBatch:
    """Output channels read together: one selection spanning their input channels.

    Made by :func:`weighting_pass`, which leaves every channel's weight grid finalised, or
    by :func:`reordered_batch`, whose chunks carry imaging weights.

    Attributes
    ----------
    groups : list of ChannelGroup
        The output channels.
    meta : MSMeta
        The selection of input channels ``[min start, max stop)`` of the groups.
    read : ReadConfig
        Its read configuration.
    weights : list of WeightGrid or None
        One per group; None when the chunks carry imaging weights already (a batch of
        :func:`reordered_batch`).
    precision : {"single", "double"}
        Precision of the visibilities and weights read.
    reader : callable, optional
        Yields the selection's row chunks; by default they are read from the Measurement Set
        (:func:`skarim.io.ms_read.iter_chunks`, gathered where it fits).
    """

    groups: list[ChannelGroup]
    meta: MSMeta
    read: ReadConfig
    weights: list[WeightGrid] | None
    precision: Precision
    reader: Callable[[], Iterator[VisChunk]] | None = field(default=None, repr=False)
    _whole: VisChunk | None = field(default=None, repr=False)

    def channels(self, k: int) -> slice:
        """Input channels of group ``k`` within the batch's selection."""
        first = min(g.start for g in self.groups)
        return slice(self.groups[k].start - first, self.groups[k].stop - first)

    @property
    def held(self) -> bool:
        """True once the selection was read whole (one chunk, or gathered): the batch holds it."""
        return self._whole is not None

    def chunks(self) -> Iterator[VisChunk]:
        """Row chunks of the selection, read once and held when it comes whole (see above)."""
        if self._whole is not None:
            yield self._whole
            return
        source = (
            self.reader()
            if self.reader is not None
            else iter_chunks(self.meta, self.read, precision=self.precision, gather=True)
        )
        for chunk in source:
            if chunk.row_start == 0 and len(chunk.uvw_m) == self.meta.nrow:
                self._whole = chunk
            yield chunk

    def group_data(self, chunk: VisChunk, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frequencies, visibilities and imaging weights of group ``k`` in a chunk.

        Returns
        -------
        freq_hz, vis, weight : numpy.ndarray
            ``(nchan_k,)`` Hz; ``(n, nchan_k)`` contiguous complex Stokes I, Jy; ``(n,
            nchan_k)`` imaging weights, Jy^-2, in the precision of the visibilities. ``vis``
            may share memory with the chunk, which later passes reuse: do not write to it.
        """
        sl = self.channels(k)
        freq_hz = self.meta.freq_hz[sl]
        vis = np.ascontiguousarray(chunk.vis[:, sl])  # (n, nchan_k)
        if self.weights is None:
            return freq_hz, vis, np.ascontiguousarray(chunk.weight[:, sl])
        weight = self.weights[k].imaging_weights(chunk.uvw_m, freq_hz, chunk.weight[:, sl])
        return freq_hz, vis, weight


def batch_selection(
    meta: MSMeta, read: ReadConfig, groups: list[ChannelGroup]
) -> tuple[MSMeta, ReadConfig]:
    """The selection and read configuration of the span of the groups' input channels."""
    first, stop = min(g.start for g in groups), max(g.stop for g in groups)
    span = read.model_copy(
        update={"chan_start": read.chan_start + first, "chan_stop": read.chan_start + stop}
    )
    return replace(
        meta, freq_hz=meta.freq_hz[first:stop], chan_width_hz=meta.chan_width_hz[first:stop]
    ), span


def weighting_pass(
    meta: MSMeta, read: ReadConfig, cfg: GridConfig, groups: list[ChannelGroup]
) -> ChannelBatch:
    """Select the input channels of a batch of output channels and run their weighting pass.

    One read of the Measurement Set fills every group's :class:`WeightGrid` (none for
    natural weighting, whose weights need no pass); the grids are finalised.

    Parameters
    ----------
    meta : MSMeta
        The run's selection, from :func:`skarim.io.ms_meta.open_ms` with ``read``.
    read : ReadConfig
        Read selection of the whole run; the groups' channels are taken from it.
    cfg : GridConfig
        Geometry, weighting and precision.
    groups : list of ChannelGroup
        Output channels; the pass reads the span of their input channels, so consecutive
        groups read the least.

    Returns
    -------
    ChannelBatch
    """
    span_meta, span = batch_selection(meta, read, groups)
    batch = ChannelBatch(
        groups=list(groups),
        meta=span_meta,
        read=span,
        weights=[
            WeightGrid(
                npix_x=cfg.npix_x,
                npix_y=cfg.npix_y,
                cell_rad=cfg.cell_rad,
                weighting=cfg.weighting,
                robust=cfg.robust,
                padding=WEIGHT_PADDING,
                taper=UVTaper.from_config(cfg),
            )
            for _ in groups
        ],
        precision="double" if cfg.double_precision else "single",
    )
    assert batch.weights is not None
    if cfg.weighting is not Weighting.natural:
        for chunk in batch.chunks():
            for k, grid in enumerate(batch.weights):
                sl = batch.channels(k)
                grid.add(chunk.uvw_m, batch.meta.freq_hz[sl], chunk.weight[:, sl])
    for grid in batch.weights:
        grid.finalize()
    return batch


def reordered_batch(
    store: RunStore, meta: MSMeta, read: ReadConfig, cfg: GridConfig, groups: list[ChannelGroup]
) -> ChannelBatch | None:
    """The batch of ``groups`` read from the store's reordered visibilities, weighted already;
    None unless they are all written (:func:`skarim.imaging.reorder.reordered_chunks`).

    The parameters are those of :func:`weighting_pass`, and the run's ``store``.
    """
    precision: Precision = "double" if cfg.double_precision else "single"
    reader = reordered_chunks(store, groups, read, precision)
    if reader is None:
        return None
    span_meta, span = batch_selection(meta, read, groups)
    return ChannelBatch(list(groups), span_meta, span, None, precision, reader=reader)


#: Channel batches read whole (their selection in one chunk) that a process holds, with
#: their weight grids, for the next exact residual of the same channels: that residual then
#: reads nothing from the Measurement Set. Each holds one chunk of at most
#: ``ReadConfig.chunk_mb``.
HELD_BATCHES = 2

_HELD: OrderedDict[str, ChannelBatch] = OrderedDict()


def _batch_key(meta: MSMeta, read: ReadConfig, cfg: GridConfig, groups: list[ChannelGroup]) -> str:
    return json.dumps(
        [
            meta.fingerprint,
            read.model_dump(mode="json"),
            cfg.model_dump(mode="json"),
            [g.index for g in groups],
        ],
        sort_keys=True,
    )


def held_batch(
    meta: MSMeta, read: ReadConfig, cfg: GridConfig, groups: list[ChannelGroup]
) -> ChannelBatch | None:
    """The batch of ``groups`` this process holds (:func:`hold_batch`), taken from it; None
    when it holds none. The parameters are those of :func:`weighting_pass`."""
    return _HELD.pop(_batch_key(meta, read, cfg, groups), None)


def hold_batch(meta: MSMeta, read: ReadConfig, cfg: GridConfig, batch: ChannelBatch) -> None:
    """Keep ``batch`` in this process if it was read whole: the last :data:`HELD_BATCHES`."""
    if batch.held:
        _HELD[_batch_key(meta, read, cfg, batch.groups)] = batch
        while len(_HELD) > HELD_BATCHES:
            _HELD.popitem(last=False)
