"""The grid stage: dirty image and PSF per (output channel, tile) into the Zarr store.

Output channels (each a group of consecutive input channels) are gridded in batches; each
batch reads the Measurement Set once per pass, for all its channels together:

1. weighting pass (uniform/Briggs only): the natural weights of every selected row are
   summed on the image's uv grid, one :class:`skarim.imaging.weighting.WeightGrid` per output
   channel (:func:`weighting_pass`);
2. imaging pass, one per facet: the Measurement Set is streamed in row chunks of
   ``ReadConfig.chunk_mb`` and ``ducc0.wgridder`` grids each chunk onto the facet of every
   output channel of the batch, with ``center_x/center_y`` offsets
   (:mod:`skarim.imaging.wgridder`); each channel's facet is cut into tiles written to the
   store, each marked ``gridded`` after its data lands. A channel's first facet pass also
   grids its PSF at ``2 tile x 2 tile`` and its sum of weights.

A selection in one chunk, or whose Stokes I fits one chunk's budget and is gathered from
several (:func:`skarim.io.ms_read.gathers`), is read once and kept for every pass of the
batch. A facet is whole tiles at most ``GridConfig.facet_pix`` on a side; a batch holds the
output channels :func:`~skarim.imaging.plan.groups_per_batch` allows within
``GridConfig.memory_budget_mb``: a task's memory follows the facet, the weight grid, the batch
and the chunk, never the Measurement Set. Dirty images are ``A^H (w V) / sum(w)`` in Jy/beam;
the PSF is normalised to a peak of 1.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from skarim.config import GridConfig, ReadConfig, Weighting
from skarim.imaging.plan import (
    WEIGHT_PADDING,
    ChannelGroup,
    FacetPlan,
    FacetShare,
    plan_facets,
    split_batches,
)
from skarim.imaging.reorder import ReorderWriter, reordered_chunks
from skarim.imaging.taper import UVTaper
from skarim.imaging.weighting import WeightGrid
from skarim.imaging.wgridder import Block, vis_to_image
from skarim.io.ms_meta import MSMeta, open_ms
from skarim.io.ms_read import Precision, VisChunk, iter_chunks
from skarim.io.store import RunStore

__all__ = [
    "HELD_BATCHES",
    "ChannelBatch",
    "batch_selection",
    "grid_channel",
    "grid_channels",
    "held_batch",
    "hold_batch",
    "image_chunk",
    "reordered_batch",
    "weighting_pass",
]


@dataclass(eq=False)
class ChannelBatch:
    """Output channels read together: one selection spanning their input channels.

    Made by :func:`weighting_pass`, which leaves every channel's weight grid finalised.

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
        :func:`skarim.imaging.reorder.reordered_batch`).
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


def grid_channels(
    store: RunStore,
    read: ReadConfig,
    cfg: GridConfig,
    groups: list[ChannelGroup],
    nthreads: int = 1,
    on_tiles: Callable[[int], None] = lambda n: None,
    share: FacetShare | None = None,
) -> dict[str, int]:
    """Grid output channels into the store, reading the Measurement Set once per pass.

    Channels and facets already done are skipped; the rest are gridded in batches
    (:func:`~skarim.imaging.plan.split_batches`), each batch with one weighting pass and one
    imaging pass per facet over the Measurement Set. With a ``share``, only
    its facets are gridded, and the PSF, sum of weights and counts only by the lead share:
    several tasks then grid one channel's facets side by side, each with its own weighting
    pass.

    Parameters
    ----------
    store : RunStore
        The run's store.
    read : ReadConfig
        Read selection of the whole run (the groups' channels are taken from it).
    cfg : GridConfig
        Geometry, weighting, accuracy and memory budget.
    groups : list of ChannelGroup
        The output channels (consecutive ones share reads best).
    nthreads : int
        Threads handed to ducc0.
    on_tiles : callable
        Called with the number of tiles written after each (channel, facet) (progress).
    share : FacetShare, optional
        The facets to grid (:func:`~skarim.imaging.plan.facet_shares`); all, as the lead,
        by default.

    Returns
    -------
    dict
        Totals over the channels gridded by this call: ``nonfinite`` (NaN/inf visibilities
        dropped), ``visibilities`` (used), ``sumwt`` (channels with a positive sum of
        weights; 0 when every channel was already complete and nothing was read); the
        counts are the lead share's.
    """
    share = share or FacetShare(tuple(plan_facets(cfg)))
    gridded = store.array("gridded")[...]  # (chan, nty, ntx)
    todo = {
        g.index: [
            f for f in share.facets if not np.all(gridded[g.index, f.ty0 : f.ty1, f.tx0 : f.tx1])
        ]
        for g in groups
    }
    active = [g for g in groups if todo[g.index]]
    totals = {"nonfinite": 0, "visibilities": 0, "sumwt": 0}
    if not active:
        return totals
    meta = open_ms(read)
    for groups_read in split_batches(active, cfg):
        batch = weighting_pass(meta, read, cfg, groups_read)  # counts NaN/inf
        stats = _grid_batch(store, cfg, batch, todo, share.lead, nthreads, on_tiles)
        hold_batch(meta, read, cfg, batch)  # for the first residual
        totals = {key: totals[key] + stats[key] for key in totals}
    return totals


def _grid_batch(
    store: RunStore,
    cfg: GridConfig,
    batch: ChannelBatch,
    todo: dict[int, list[FacetPlan]],
    lead: bool,
    nthreads: int,
    on_tiles: Callable[[int], None],
) -> dict[str, int]:
    """Imaging passes of one weighted batch: one per facet that any of its channels lacks.

    ``lead``: this pass also grids the PSFs, writes the sums of weights and counts the
    visibilities (:class:`~skarim.imaging.plan.FacetShare`).
    """
    t = cfg.tile
    psf_block = Block.centred(2 * t, cfg.cell_rad)
    groups = batch.groups
    dirty_out, psf_out, sumwt_out = store.array("dirty"), store.array("psf"), store.array("sumwt")
    unsummed = [lead and bool(sumwt_out[g.index] == 0) for g in groups]
    makes_psf = store.makes_psf
    uncounted = set(range(len(groups))) if lead else set()
    totals = {"nonfinite": 0, "visibilities": 0}
    sumwt = [0.0] * len(groups)
    reorder = ReorderWriter(store, batch, lead)
    for facet in dict.fromkeys(f for g in groups for f in todo[g.index]):  # each facet once
        block = facet.block(cfg)
        members = [k for k, g in enumerate(groups) if facet in todo[g.index]]
        count = [k for k in members if k in uncounted]
        images = {k: np.zeros((block.ny, block.nx)) for k in members}  # (ny, nx) float64
        psfs = {k: np.zeros((2 * t, 2 * t)) for k in members if makes_psf and unsummed[k]}
        for k in members:
            sumwt[k] = 0.0
        reordering = reorder.due(members)
        for chunk in batch.chunks():
            for k in count:
                sl = batch.channels(k)
                totals["nonfinite"] += int(chunk.nonfinite_per_chan[sl].sum())
                totals["visibilities"] += int(np.count_nonzero(chunk.weight[:, sl]))
            if reordering:
                reorder.put_uvw(chunk)
            for k in members:
                freq_hz, vis, w = batch.group_data(chunk, k)
                if k in reordering:
                    reorder.put(chunk, k, vis, w)
                sumwt[k] += float(w.sum(dtype=np.float64))
                images[k] += image_chunk(cfg, chunk.uvw_m, freq_hz, vis, w, block, nthreads)
                if k in psfs:
                    ones = np.ones_like(vis)
                    psfs[k] += image_chunk(cfg, chunk.uvw_m, freq_hz, ones, w, psf_block, nthreads)
        uncounted.difference_update(count)
        reorder.written(reordering)  # before the tiles are marked: see skarim.imaging.reorder
        for k in members:
            index = groups[k].index
            if k in psfs:
                peak = psfs[k][t, t]  # (2t, 2t) below
                psf_out[index] = (psfs[k] / peak if peak > 0 else psfs[k]).astype(np.float32)
            if unsummed[k]:
                sumwt_out[index] = sumwt[k]  # after the PSF: a positive sum marks it done
                unsummed[k] = False
            image = images.pop(k)
            if sumwt[k] > 0:
                image /= sumwt[k]
            y0, x0 = block.y0, block.x0
            dirty_out[index, y0 : y0 + block.ny, x0 : x0 + block.nx] = image.astype(np.float32)
            store.mark_gridded(index, slice(facet.ty0, facet.ty1), slice(facet.tx0, facet.tx1))
            on_tiles((facet.ty1 - facet.ty0) * (facet.tx1 - facet.tx0))
    return {**totals, "sumwt": sum(s > 0 for s in sumwt)}


def image_chunk(
    cfg: GridConfig,
    uvw_m: np.ndarray,
    freq_hz: np.ndarray,
    vis: np.ndarray,
    weight: np.ndarray,
    block: Block,
    nthreads: int,
) -> np.ndarray:
    """Unnormalised image of one chunk on a block, with the run's accuracy (``cfg.epsilon``).

    The arguments are those of :func:`skarim.imaging.wgridder.vis_to_image`; the grid and
    residual stages share it.

    Returns
    -------
    numpy.ndarray
        ``(block.ny, block.nx)`` ``sum w V`` imaged, Jy^-1 (divide by the sum of weights for
        Jy/beam).
    """
    return vis_to_image(
        uvw_m=uvw_m,
        freq_hz=freq_hz,
        vis=vis,
        weight=weight,
        block=block,
        epsilon=cfg.epsilon,
        nthreads=nthreads,
    )


def grid_channel(
    store: RunStore,
    read: ReadConfig,
    cfg: GridConfig,
    group: ChannelGroup,
    nthreads: int = 1,
    on_tiles: Callable[[int], None] = lambda n: None,
) -> dict[str, int]:
    """Grid one output channel into the store, skipping facets already done.

    :func:`grid_channels` with one channel; see it for the parameters.

    Returns
    -------
    dict
        ``nonfinite`` (NaN/inf visibilities dropped), ``visibilities`` (used), ``sumwt``
        (1 when the channel's sum of weights is positive, 0 when it is not or when the
        channel was already complete and nothing was read).
    """
    return grid_channels(store, read, cfg, [group], nthreads, on_tiles)
