"""The grid stage: dirty image and PSF per (output channel, tile) into the Zarr store.

Output channels (each a group of consecutive input channels) are gridded in batches; each
batch reads the Measurement Set once per pass, for all its channels together:

1. weighting pass (uniform/Briggs only): the natural weights of every selected row are
   summed on the image's uv grid, one :class:`skarim.imaging.weighting.WeightGrid` per output
   channel (:func:`skarim.imaging.batch.weighting_pass`);
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

from collections.abc import Callable

import numpy as np

from skarim.config import GridConfig, ReadConfig
from skarim.imaging.batch import ChannelBatch, hold_batch, weighting_pass
from skarim.imaging.plan import (
    ChannelGroup,
    FacetPlan,
    FacetShare,
    plan_facets,
    split_batches,
)
from skarim.imaging.reorder import ReorderWriter
from skarim.imaging.wgridder import Block, vis_to_image
from skarim.io.ms_meta import open_ms
from skarim.io.store import RunStore

__all__ = ["grid_channel", "grid_channels", "image_chunk"]


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
