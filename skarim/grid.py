"""The grid stage: dirty image and PSF per (output channel, tile) into the Zarr store.

For each output channel (a group of consecutive input channels):

1. weighting pass (uniform/Briggs only): the natural weights of every selected row are
   summed on the image's uv grid (:class:`skarim.weighting.WeightGrid`);
2. imaging pass, one per facet: the Measurement Set is streamed in bounded row chunks and
   ``ducc0.wgridder`` grids each chunk onto the facet with ``center_x/center_y`` offsets
   (:mod:`skarim.wgridder`); the facet is cut into tiles written to the store, each tile
   marked ``gridded`` after its data lands. The first facet's pass also grids the PSF at
   ``2 tile x 2 tile`` and the sum of weights.

A facet is a block of whole tiles no larger than ``GridConfig.facet_pix`` on a side, so the
memory of a task follows the facet (and the chunk), never the image or the Measurement Set.
Dirty images are ``A^H (w V) / sum(w)`` in Jy/beam; the PSF is normalised to a peak of 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from skarim.config import GridConfig, ReadConfig, Weighting
from skarim.read import MSMeta, iter_chunks, open_ms
from skarim.store import RunStore
from skarim.weighting import WeightGrid
from skarim.wgridder import Block, vis_to_image

__all__ = [
    "ChannelGroup",
    "FacetPlan",
    "channel_groups",
    "plan_facets",
    "grid_channel",
    "group_selection",
]


@dataclass(frozen=True)
class ChannelGroup:
    """Input channels ``[start, stop)`` (within the read selection) of one output channel."""

    index: int
    start: int
    stop: int


@dataclass(frozen=True)
class FacetPlan:
    """A facet: tiles ``[ty0:ty1, tx0:tx1]`` gridded by one ducc0 call per row chunk."""

    ty0: int
    ty1: int
    tx0: int
    tx1: int

    def block(self, cfg: GridConfig) -> Block:
        """The facet as a FITS-order block of the full image."""
        t = cfg.tile
        return Block(
            cfg.npix_x,
            cfg.npix_y,
            self.tx0 * t,
            self.ty0 * t,
            (self.tx1 - self.tx0) * t,
            (self.ty1 - self.ty0) * t,
            cfg.cell_rad,
        )


def channel_groups(nchan: int, channels_out: int) -> list[ChannelGroup]:
    """Split ``nchan`` input channels into ``channels_out`` contiguous groups (as WSClean)."""
    if channels_out > nchan:
        from skarim.errors import InputError

        raise InputError(f"--channels-out {channels_out} exceeds the {nchan} selected channels")
    edges = np.linspace(0, nchan, channels_out + 1).round().astype(int)
    return [ChannelGroup(i, int(edges[i]), int(edges[i + 1])) for i in range(channels_out)]


def plan_facets(cfg: GridConfig) -> list[FacetPlan]:
    """Cover the tile grid with facets of at most ``facet_pix`` pixels a side."""
    per = max(1, cfg.facet_pix // cfg.tile)
    return [
        FacetPlan(ty, min(ty + per, cfg.ntile_y), tx, min(tx + per, cfg.ntile_x))
        for ty in range(0, cfg.ntile_y, per)
        for tx in range(0, cfg.ntile_x, per)
    ]


def _group_read_config(read: ReadConfig, group: ChannelGroup) -> ReadConfig:
    return read.model_copy(
        update={
            "chan_start": read.chan_start + group.start,
            "chan_stop": read.chan_start + group.stop,
        }
    )


def group_selection(
    read: ReadConfig, cfg: GridConfig, group: ChannelGroup
) -> tuple[MSMeta, ReadConfig, WeightGrid, dict[str, int]]:
    """Open the channels of one output channel and run its weighting pass.

    Returns
    -------
    meta, read, weights, counts
        The group's :class:`MSMeta` and :class:`ReadConfig`, its finalised
        :class:`WeightGrid`, and the counts ``nonfinite`` and ``visibilities``.
    """
    gread = _group_read_config(read, group)
    meta = open_ms(gread)
    precision = "double" if cfg.double_precision else "single"
    weights, n_nonfinite, n_good = _weight_grid(meta, gread, cfg, precision)
    return meta, gread, weights, {"nonfinite": n_nonfinite, "visibilities": n_good}


def _weight_grid(
    meta: MSMeta, read: ReadConfig, cfg: GridConfig, precision: str
) -> tuple[WeightGrid, int, int]:
    """Weighting pass; also counts dropped NaN/inf visibilities and usable ones."""
    grid = WeightGrid(
        npix_x=cfg.npix_x,
        npix_y=cfg.npix_y,
        cell_rad=cfg.cell_rad,
        weighting=cfg.weighting,
        robust=cfg.robust,
    )
    n_nonfinite = n_good = 0
    for chunk in iter_chunks(meta, read, precision=precision):
        n_nonfinite += chunk.n_nonfinite
        n_good += int(np.count_nonzero(chunk.weight))
        if cfg.weighting is not Weighting.natural:
            grid.add(chunk.uvw_m, meta.freq_hz, chunk.weight)
    grid.finalize()
    return grid, n_nonfinite, n_good


def grid_channel(
    store: RunStore,
    read: ReadConfig,
    cfg: GridConfig,
    group: ChannelGroup,
    on_tiles: Callable[[int], None] = lambda n: None,
) -> dict[str, int]:
    """Grid one output channel into the store, skipping facets already done.

    Parameters
    ----------
    store : RunStore
        The run's store.
    read : ReadConfig
        Read selection of the whole run (the group's channels are taken from it).
    cfg : GridConfig
        Geometry, weighting and accuracy.
    group : ChannelGroup
        The output channel.
    on_tiles : callable
        Called with the number of tiles written after each facet (progress).

    Returns
    -------
    dict
        ``nonfinite`` (NaN/inf visibilities dropped), ``visibilities`` (used), ``sumwt``
        (0 when the channel was already complete and nothing was read).
    """
    gridded = store.array("gridded")[group.index]  # (nty, ntx)
    facets = [f for f in plan_facets(cfg) if not np.all(gridded[f.ty0 : f.ty1, f.tx0 : f.tx1])]
    if not facets:
        return {"nonfinite": 0, "visibilities": 0, "sumwt": 0}
    precision = "double" if cfg.double_precision else "single"
    meta, gread, weights, counts = group_selection(read, cfg, group)
    psf_block = Block.centred(2 * cfg.tile, cfg.cell_rad)
    need_psf = bool(store.array("sumwt")[group.index] == 0)
    t = cfg.tile
    for facet in facets:
        block = facet.block(cfg)
        dtype = np.float64 if cfg.double_precision else np.float32
        image = np.zeros((block.ny, block.nx), dtype=np.float64)  # (ny, nx) accumulator
        psf = np.zeros((2 * t, 2 * t), dtype=np.float64) if need_psf else None
        sumwt = 0.0
        for chunk in iter_chunks(meta, gread, precision=precision):
            w = weights.imaging_weights(chunk.uvw_m, meta.freq_hz, chunk.weight).astype(dtype)
            sumwt += float(w.sum(dtype=np.float64))
            image += vis_to_image(
                uvw_m=chunk.uvw_m,
                freq_hz=meta.freq_hz,
                vis=chunk.vis,
                weight=w,
                block=block,
                epsilon=cfg.epsilon,
                nthreads=cfg.nthreads,
            )
            if psf is not None:
                ones = np.ones_like(chunk.vis)
                psf += vis_to_image(
                    uvw_m=chunk.uvw_m,
                    freq_hz=meta.freq_hz,
                    vis=ones,
                    weight=w,
                    block=psf_block,
                    epsilon=cfg.epsilon,
                    nthreads=cfg.nthreads,
                )
        if sumwt > 0:
            image /= sumwt
        if psf is not None:
            peak = psf[t, t]
            store.array("psf")[group.index] = (psf / peak if peak > 0 else psf).astype(np.float32)
            store.array("sumwt")[group.index] = sumwt
            need_psf = False
        y0, x0 = block.y0, block.x0
        store.array("dirty")[group.index, y0 : y0 + block.ny, x0 : x0 + block.nx] = image.astype(
            np.float32
        )
        store.mark_gridded(group.index, slice(facet.ty0, facet.ty1), slice(facet.tx0, facet.tx1))
        on_tiles((facet.ty1 - facet.ty0) * (facet.tx1 - facet.tx0))
    return {**counts, "sumwt": int(sumwt > 0)}
