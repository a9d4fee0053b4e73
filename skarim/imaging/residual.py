"""Exact residuals for major cycles: model -> visibilities with ducc0 -> residual image.

For a batch of output channels read together (at most
:func:`skarim.imaging.plan.groups_per_batch` of them: a batch this process read whole before is
taken from memory, :func:`skarim.imaging.batch.held_batch`; else the store's reordered
visibilities are read where the grid stage wrote them, :mod:`skarim.imaging.reorder`; else the
Measurement Set, with a weighting pass, :func:`skarim.imaging.batch.weighting_pass`), the residual
visibilities of every row chunk of the Measurement Set are the data less the prediction of
each channel's model (``ducc0`` ``dirty2vis`` facet by facet, with the same w-gridding and
offsets as imaging, summed), imaged onto each facet with the run's imaging weights: one
weighting pass and one pass per facet over the Measurement Set for the whole batch.

Each facet's model is predicted once per chunk, not once per chunk and facet pass: the first
facet's pass predicts (``F`` ``dirty2vis`` per channel and chunk for ``F`` facets), images the
residual visibilities onto the first facet and keeps them for the other facets' passes, which
image them as they are. They are kept in memory when the batch's selection is one chunk (as
large as the chunk it holds), otherwise in a scratch array of the store
(:meth:`skarim.io.store.RunStore.scratch_array`: the selection's rows by the batch's input
channels, one Zarr chunk per row chunk, in the precision of the visibilities read: on disk,
the size of the batch's Stokes I visibilities), removed once the residuals are written. A
later pass still reads its chunk for the coordinates and weights. Memory thus follows the
facet, the batch and the chunk: one facet image per channel, one facet of model at a time,
one chunk of visibilities; with one facet (images up to ``GridConfig.facet_pix``) nothing is
kept.

A large channel's facets may be shared out between tasks (:func:`residual_facets` with a
:class:`~skarim.imaging.plan.FacetShare`): each predicts every facet's model and images its
own facets, and :func:`residual_stats` adds up their sums of squares.

This is what repairs the approximations of the tile operator (w-terms, sidelobes reaching
across tiles, tile edges): docs/design.md section 7.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import zarr

from skarim.config import GridConfig, ReadConfig
from skarim.imaging.batch import (
    ChannelBatch,
    held_batch,
    hold_batch,
    reordered_batch,
    weighting_pass,
)
from skarim.imaging.grid import image_chunk
from skarim.imaging.plan import ChannelGroup, FacetShare, plan_facets, split_batches
from skarim.imaging.wgridder import Block, image_to_vis
from skarim.io.ms_meta import open_ms
from skarim.io.ms_read import VisChunk
from skarim.io.store import RunStore

__all__ = [
    "ResidualSums",
    "residual_channel",
    "residual_channels",
    "residual_facets",
    "residual_stats",
]


@dataclass(frozen=True)
class ResidualSums:
    """One output channel's residual summed over the pixels of some facets.

    Attributes
    ----------
    channel : int
        Output channel.
    sq_jy2 : float
        Sum of the squared residual, (Jy/beam)^2.
    npix : int
        Pixels summed (those of the sky: beyond the horizon there is none).
    """

    channel: int
    sq_jy2: float
    npix: int


def residual_channels(
    store: RunStore,
    read: ReadConfig,
    cfg: GridConfig,
    groups: list[ChannelGroup],
    model: str = "model",
    out: str = "residual",
    nthreads: int = 1,
) -> list[dict[str, float]]:
    """Write the exact residuals of the store's current models for several output channels.

    Parameters
    ----------
    store : RunStore
        The run's store, holding ``model`` and ``sumwt`` of the channels.
    read : ReadConfig
        Read selection of the whole run (the groups' channels are taken from it).
    cfg : GridConfig
        Geometry, weighting, accuracy and memory budget.
    groups : list of ChannelGroup
        The output channels (consecutive ones share reads best).
    model : str
        The store's array holding the models: ``model``, or ``model_next`` for a major
        cycle's candidate (:func:`skarim.deconv.major_cycle.finish_cycle`).
    out : str
        The store's array the residuals go to: ``residual``, or ``residual_next`` for the
        candidate's.
    nthreads : int
        Threads handed to ducc0.

    Returns
    -------
    list of dict
        Per group, in order: ``rms`` of the residual (Jy/beam) and ``flux`` of the model (Jy).
    """
    whole = FacetShare(tuple(plan_facets(cfg)))
    sums = residual_facets(store, read, cfg, groups, whole, model, out, nthreads)
    return residual_stats(store, groups, sums, model)


def residual_facets(
    store: RunStore,
    read: ReadConfig,
    cfg: GridConfig,
    groups: list[ChannelGroup],
    share: FacetShare,
    model: str = "model",
    out: str = "residual",
    nthreads: int = 1,
) -> list[ResidualSums]:
    """Write the exact residuals of some facets of several output channels.

    The facets of ``share`` are imaged; every facet's model is predicted, so tasks holding
    the other shares of the same channels write the rest of their residuals side by side.
    The parameters are those of :func:`residual_channels`, and ``share`` the facets
    (:func:`skarim.imaging.plan.facet_shares`).

    Returns
    -------
    list of ResidualSums
        Per group, in order, over the share's pixels.
    """
    meta = open_ms(read)
    sums: list[ResidualSums] = []
    for sub in split_batches(groups, cfg):
        batch = (
            held_batch(meta, read, cfg, sub)
            or reordered_batch(store, meta, read, cfg, sub)
            or weighting_pass(meta, read, cfg, sub)
        )
        sums += _residual_batch(store, cfg, batch, share, model, out, nthreads)
        hold_batch(meta, read, cfg, batch)
    return sums


def residual_stats(
    store: RunStore, groups: list[ChannelGroup], sums: list[ResidualSums], model: str = "model"
) -> list[dict[str, float]]:
    """The residual RMS (Jy/beam) and model flux (Jy) of each group, from its facets' sums.

    ``sums`` may hold several entries per channel (one per share) in any order.
    """
    stats = []
    for g in groups:
        mine = [s for s in sums if s.channel == g.index]
        npix = sum(s.npix for s in mine)
        sq = sum(s.sq_jy2 for s in mine)
        stats.append(
            {"rms": float(np.sqrt(sq / max(npix, 1))), "flux": store.plane_sum(model, g.index)}
        )
    return stats


def residual_channel(
    store: RunStore, read: ReadConfig, cfg: GridConfig, group: ChannelGroup, nthreads: int = 1
) -> dict[str, float]:
    """Write the exact residual of the store's current model for one output channel.

    :func:`residual_channels` with one channel; see it for the parameters.

    Returns
    -------
    dict
        ``rms`` of the residual (Jy/beam) and ``flux`` of the model (Jy).
    """
    return residual_channels(store, read, cfg, [group], nthreads=nthreads)[0]


def _residual_batch(
    store: RunStore,
    cfg: GridConfig,
    batch: ChannelBatch,
    share: FacetShare,
    model_name: str,
    out: str,
    nthreads: int,
) -> list[ResidualSums]:
    """One imaging pass per facet of the share, every channel of the batch from the same chunks.

    The first pass predicts and keeps the residual visibilities for the others (module
    docstring).
    """
    blocks = [f.block(cfg) for f in plan_facets(cfg)]  # every facet's model is predicted
    imaged = [f.block(cfg) for f in share.facets]
    groups = batch.groups
    sumwt = [float(store.array("sumwt")[g.index]) for g in groups]
    sq = [0.0] * len(groups)
    npix = 0
    kept = _KeptVis(store, batch)
    try:
        for i, block in enumerate(imaged):
            images = [np.zeros((block.ny, block.nx)) for _ in groups]  # (ny, nx) float64 each
            for chunk in batch.chunks():
                keep = np.zeros_like(chunk.vis) if i == 0 and len(imaged) > 1 else None
                residual = None if i == 0 else kept.get(chunk)  # (n, nchan) of the batch
                for k, group in enumerate(groups):
                    sl = batch.channels(k)
                    freq_hz, vis, w = batch.group_data(chunk, k)  # vis may be the chunk's own
                    if residual is None:
                        vis = vis - _predict(
                            store, cfg, model_name, group.index, chunk, freq_hz, blocks, nthreads
                        )
                        if keep is not None:
                            keep[:, sl] = vis
                    else:
                        vis = np.ascontiguousarray(residual[:, sl])
                    images[k] += image_chunk(cfg, chunk.uvw_m, freq_hz, vis, w, block, nthreads)
                if keep is not None:
                    kept.put(chunk, keep)
            for k, group in enumerate(groups):
                image = images[k]
                if sumwt[k] > 0:
                    image /= sumwt[k]
                store.array(out)[
                    group.index, block.y0 : block.y0 + block.ny, block.x0 : block.x0 + block.nx
                ] = image.astype(np.float32)
                sq[k] += float((image**2).sum())
            horizon = block.beyond_horizon()  # pixels of no sky: out of the RMS
            npix += block.ny * block.nx - (0 if horizon is None else int(horizon.sum()))
    finally:
        kept.close()
    return [ResidualSums(g.index, sq[k], npix) for k, g in enumerate(groups)]


class _KeptVis:
    """Residual visibilities of a batch's chunks, from the first facet pass to the others.

    A chunk holding the whole selection stays in memory; other chunks go to a scratch array
    of the store, made at the first of them and removed by :meth:`close`.
    """

    def __init__(self, store: RunStore, batch: ChannelBatch) -> None:
        self._store = store
        self._nrow = batch.meta.nrow
        self._whole: np.ndarray | None = None
        self._scratch: zarr.Array | None = None

    def put(self, chunk: VisChunk, vis: np.ndarray) -> None:
        """Keep a chunk's ``(n, nchan)`` residual visibilities (all the batch's channels)."""
        n = len(chunk.uvw_m)
        if n == self._nrow:
            self._whole = vis
            return
        if self._scratch is None:  # chunks are of equal rows but the last: one Zarr chunk each
            self._scratch = self._store.scratch_array(
                (self._nrow, vis.shape[1]), (n, vis.shape[1]), vis.dtype
            )
        self._scratch[chunk.row_start : chunk.row_start + n] = vis

    def get(self, chunk: VisChunk) -> np.ndarray:
        """The residual visibilities kept for a chunk by :meth:`put`."""
        if len(chunk.uvw_m) == self._nrow:
            assert self._whole is not None
            return self._whole
        assert self._scratch is not None
        return self._scratch[chunk.row_start : chunk.row_start + len(chunk.uvw_m)]

    def close(self) -> None:
        """Drop what is kept; remove the scratch array."""
        self._whole = None
        if self._scratch is not None:
            self._store.drop_scratch(self._scratch)
            self._scratch = None


def _predict(
    store: RunStore,
    cfg: GridConfig,
    model_name: str,
    chan: int,
    chunk: VisChunk,
    freq_hz: np.ndarray,
    blocks: list[Block],
    nthreads: int,
) -> np.ndarray:
    """``(n, nchan)`` visibilities of one output channel's model, summed over its facets."""
    real = np.float64 if cfg.double_precision else np.float32
    complex_ = np.complex128 if cfg.double_precision else np.complex64
    predicted = np.zeros((len(chunk.uvw_m), len(freq_hz)), dtype=complex_)
    model = store.array(model_name)
    for src in blocks:
        m = model[chan, src.y0 : src.y0 + src.ny, src.x0 : src.x0 + src.nx]  # (ny, nx)
        if np.any(m):
            predicted += image_to_vis(
                uvw_m=chunk.uvw_m,
                freq_hz=freq_hz,
                image=m.astype(real),
                block=src,
                epsilon=cfg.epsilon,
                nthreads=nthreads,
            )
    return predicted
