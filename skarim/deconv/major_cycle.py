"""Major cycles: tile passes, then an exact residual that accepts or refuses them.

Cycle ``k`` of output channel ``c``:

1. every tile whose ``cycle`` is below ``k`` is deconvolved on a window of the tile plus a
   ``margin`` halo, starting from the model of cycle ``k - 1`` (``model``) and its exact
   residual (``residual``; ``dirty`` for the first cycle); the window's core goes to
   ``model_next`` and the tile's ``cycle`` becomes ``k`` (in that order;
   :func:`skarim.deconv.passes.deconvolve_rows`);
2. when all tiles are at ``k``, the exact residual of ``model_next`` is computed with ducc0
   (:func:`skarim.imaging.residual.residual_channels`, several channels per read of the
   Measurement Set) into ``residual_next``; if its RMS fell, ``model_next`` and
   ``residual_next`` are copied to ``model`` and ``residual``, then ``rms[c]`` and
   ``rcycle[c] = k`` are written; if it did not, the previous model and residual are kept and
   the channel's cycles of that phase stop (:func:`finish_cycle`).

Cycles 1 to ``major_cycles`` are the RIM's: step 1 runs the RIM on each window
(:class:`skarim.deconv.rim_deconvolver.RimDeconvolver`). Cycles ``major_cycles + 1`` to
``total_cycles`` polish the RIM's model: step 1 is Hogbom CLEAN on the window of the
residual (:class:`skarim.deconv.hogbom_deconvolver.HogbomPolish`, signed, down to
``polish_sigma`` noise) added to ``model``. The RIM's phase ends at cycle ``major_cycles``
or at its first refused cycle; only then is the model pruned.

Every step reads only what the store says is finished and writes before it marks, so a run
killed anywhere resumes from the store, and the order in which tiles are processed does not
change the result. Step 2 for a batch of channels is :func:`finish_cycle`; the worker task
:func:`skarim.run.tasks.finish_cycle_task` calls it, and it is idempotent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from skarim.beam import beam_area, fwhm_to_sigma, psf_fwhm_pix, smooth_gaussian_truncated
from skarim.config import GridConfig, RunConfig
from skarim.deconv.noise import channel_sigma, local_box_pix, local_sigma
from skarim.deconv.tiles import tile_windows
from skarim.imaging.plan import ChannelGroup
from skarim.imaging.residual import ResidualSums, residual_channels, residual_stats
from skarim.io.store import RunStore
from skarim.io.wcs import beyond_horizon

__all__ = ["REFUSE_RTOL", "PRUNE_SPAN_TILES", "ChannelCycleStats", "finish_cycle"]

#: Columns of a pruning block, in tiles: blocks of one tile row by this many tiles (plus the
#: smoothing halo) bound the pruning's memory whatever the image's width.
PRUNE_SPAN_TILES = 8

#: A cycle must lower its channel's residual RMS by more than this fraction to be kept. A
#: cycle that changed nothing is refused, and so is a rerun of a refused cycle killed after
#: the previous model was copied back to ``model_next`` (its residual's RMS is the previous
#: one up to the gridder's round-off).
REFUSE_RTOL = 1e-6


@dataclass(frozen=True)
class ChannelCycleStats:
    """How one channel's major cycle ended (:func:`finish_cycle`).

    Attributes
    ----------
    channel : int
        Output channel.
    rms : float
        RMS of the kept residual, Jy/beam.
    flux : float
        Flux of the kept model, Jy.
    noise : float
        Robust (MAD) noise of the kept residual before any pruning, Jy/beam.
    noise_ratio : float
        The kept residual's RMS over ``noise``, before any pruning.
    stopped : bool
        The cycle was refused: its residual's RMS did not fall.
    converged : bool
        The phase ended on a noise-like residual (``DeconvConfig.converged_ratio``).
    refused_rms, previous_rms : float or None
        For a refused cycle, its residual's RMS and that of the residual it started from
        (which it did not lower), Jy/beam.
    unchanged : bool
        The refused cycle changed nothing: the two RMS agree to :data:`REFUSE_RTOL`.
    pruned : bool
        The model was pruned and its residual recomputed: ``noise`` is not the noise of the
        residual left in the store.
    """

    channel: int
    rms: float
    flux: float
    noise: float
    noise_ratio: float
    stopped: bool
    converged: bool
    refused_rms: float | None = None
    previous_rms: float | None = None
    unchanged: bool = False
    pruned: bool = False


def finish_cycle(
    store: RunStore,
    cfg: RunConfig,
    groups: list[ChannelGroup],
    cycle: int,
    nthreads: int = 1,
    candidate: list[ResidualSums] | None = None,
    joined: bool = False,
    residuals: Callable[[list[ChannelGroup]], list[dict[str, float]]] | None = None,
) -> list[ChannelCycleStats]:
    """Accept or refuse the models of cycle ``cycle`` by their exact residuals.

    The exact residual of ``model_next`` is computed into ``residual_next`` for every channel
    of ``groups``. Where its RMS is lower than that of the channel's previous residual (the
    dirty image's for the first cycle; lower by more than :data:`REFUSE_RTOL`),
    ``model_next`` becomes ``model``, its residual ``residual``, and the cycle is done.
    Where it is not, the cycles of the phase have stopped converging for that channel (a
    pass that made the model worse, as CLEAN diverges past its noise, or changed nothing):
    the previous model is kept, with its residual, which was never overwritten, and the
    channel's remaining cycles of the phase are skipped (its ``cycle`` markers and
    ``rcycle`` jump to the phase's last cycle: ``major_cycles`` for the RIM,
    ``total_cycles`` for the polish). A channel whose kept residual already looks like
    noise, its RMS at most ``DeconvConfig.converged_ratio`` times its robust noise, has
    converged: its remaining cycles of the phase are skipped as after a refusal, but with
    the new model. A channel whose RIM phase ends (cycle ``major_cycles``, refused or
    converged) has its model pruned where the restored image (model smoothed to the beam
    plus residual) is below ``DeconvConfig.prune_sigma`` times the noise, and its exact
    residual recomputed. Everything is computed from ``model_next`` (the refused channel's
    previous model is copied back there first) and ``residual_next``, so a rerun after a
    kill anywhere in this function gives the same result.

    Parameters
    ----------
    store : RunStore
        The run's store.
    cfg : RunConfig
        The run.
    groups : list of ChannelGroup
        The channels whose cycle ``cycle`` is finished here.
    cycle : int
        The major cycle.
    nthreads : int
        Threads handed to ducc0 for the exact residuals.
    candidate : list of ResidualSums, optional
        The sums of ``residual_next`` when tasks sharing out the facets already wrote it
        (:func:`skarim.imaging.residual.residual_facets`); computed here when None.
    joined : bool
        The channels were deconvolved together (:mod:`skarim.deconv.joined`): they are
        accepted, refused, converged and pruned together, by their residuals' mean square
        weighted as the MFS weighs the channels, and pruned where the MFS of their restored
        images is below ``prune_sigma`` times the MFS noise, so every channel's model keeps
        the same pixels and its spectrum stays the fitted one.
    residuals : callable, optional
        Computes the exact residuals of the pruned channels' models into ``residual`` and
        returns their statistics, as :func:`skarim.imaging.residual.residual_channels` (the
        default, in this process) does; a task may spread them over the cluster's workers
        (:func:`skarim.run.tasks.finish_cycle_task`).

    Returns
    -------
    list of ChannelCycleStats
        One per channel of ``groups``, in order.
    """
    rim_phase = cycle <= cfg.deconv.major_cycles
    last = cfg.deconv.major_cycles if rim_phase else cfg.deconv.total_cycles
    before = [_previous_rms(store, g.index, cycle, cfg.grid) for g in groups]
    floor = 1 - REFUSE_RTOL
    if candidate is None:
        candidate_stats = residual_channels(
            store, cfg.read, cfg.grid, groups, "model_next", "residual_next", nthreads
        )
    else:
        candidate_stats = residual_stats(store, groups, candidate, "model_next")
    weight = _mfs_weight(store, groups) if joined else None
    if weight is None:
        refused = [
            g
            for g, s, b in zip(groups, candidate_stats, before, strict=True)
            if s["rms"] > b * floor
        ]
    else:
        worse = _mean_square(weight, [s["rms"] for s in candidate_stats]) > floor**2 * (
            _mean_square(weight, before)
        )
        refused = list(groups) if worse else []
    stats = []
    for g, s, b in zip(groups, candidate_stats, before, strict=True):
        if g in refused:  # the previous model again, with its residual (left in place)
            _copy_rows(store, "model", "model_next", g.index, cfg)
            s = {"rms": b, "flux": store.plane_sum("model", g.index)}
        else:
            _copy_rows(store, "residual_next", "residual", g.index, cfg)
        stats.append(s)
    refused_rms = {g.index: s["rms"] for g, s in zip(groups, candidate_stats, strict=True)}
    previous = {g.index: b for g, b in zip(groups, before, strict=True)}
    wins = tile_windows(cfg)
    noise = {g.index: channel_sigma(store, g.index, "residual", wins) for g in groups}
    ratio = cfg.deconv.converged_ratio
    converged = [
        g
        for g, s in zip(groups, stats, strict=True)
        if g not in refused and cycle < last and s["rms"] <= ratio * noise[g.index]
    ]
    if weight is not None:
        noisy = _mean_square(weight, [s["rms"] for s in stats]) <= ratio**2 * _mean_square(
            weight, [noise[g.index] for g in groups]
        )
        converged = list(groups) if not refused and cycle < last and noisy else []
    ended = refused + converged  # the phase's later cycles are skipped for these
    kept_rms = {g.index: s["rms"] for g, s in zip(groups, stats, strict=True)}
    prune = rim_phase and cfg.deconv.prune_sigma > 0
    pruned = [g for g in groups if prune and (g in ended or cycle == last)]
    if weight is not None and pruned:
        _prune_joined(store, [g.index for g in groups], weight, cfg, noise)
    for g in groups:
        if weight is not None and pruned:
            continue
        if g in pruned:
            _prune(store, g.index, cfg, noise[g.index])
        else:
            _copy_rows(store, "model_next", "model", g.index, cfg)
    if pruned:
        after = (
            residual_channels(store, cfg.read, cfg.grid, pruned, nthreads=nthreads)
            if residuals is None
            else residuals(pruned)
        )
        redo = dict(zip(pruned, after, strict=True))
        stats = [redo.get(g, s) for g, s in zip(groups, stats, strict=True)]
    out = []
    for group, s in zip(groups, stats, strict=True):
        c = group.index
        store.array("rms")[c] = s["rms"]
        if group in ended:
            store.array("cycle")[c] = last
        store.array("rcycle")[c] = last if group in ended else cycle
        stopped = group in refused
        out.append(
            ChannelCycleStats(
                channel=c,
                rms=s["rms"],
                flux=s["flux"],
                noise=noise[c],
                noise_ratio=kept_rms[c] / noise[c] if noise[c] > 0 else float("inf"),
                stopped=stopped,
                converged=group in converged,
                refused_rms=refused_rms[c] if stopped else None,
                previous_rms=previous[c] if stopped else None,
                unchanged=stopped
                and abs(refused_rms[c] - previous[c]) <= REFUSE_RTOL * previous[c],
                pruned=group in pruned,
            )
        )
    return out


def _copy_rows(store: RunStore, src: str, dst: str, chan: int, cfg: RunConfig) -> None:
    """Copy one channel's plane between two image arrays, a tile row at a time."""
    t = cfg.grid.tile
    for ty in range(cfg.grid.ntile_y):
        rows = slice(ty * t, (ty + 1) * t)
        store.array(dst)[chan, rows] = store.array(src)[chan, rows]


def _prune(store: RunStore, chan: int, cfg: RunConfig, noise: float) -> None:
    """``model = model_next`` where the restored image reaches ``prune_sigma`` noise.

    The restored image is ``model_next`` smoothed to the beam (a circular Gaussian of the PSF
    main lobe's FWHM, Jy/beam) plus ``residual`` (the exact residual of ``model_next``): flux
    the RIM put where the data hold none is cancelled by the residual's negative there, so it
    goes, while a source the data hold stays. ``noise`` is the residual's robust noise
    (:func:`skarim.deconv.noise.channel_sigma`), Jy/beam. Works on blocks of one tile row
    by :data:`PRUNE_SPAN_TILES` tiles, each with a halo of four smoothing widths, so memory
    follows the tile size, not the image's. With ``DeconvConfig.local_rms`` the noise is
    each tile's own (:func:`skarim.deconv.noise.local_sigma`); with
    ``DeconvConfig.auto_mask`` the pixels kept (inside any FITS mask) become the channel's
    ``mask``, where the polish works.
    """
    _prune_joined(store, [chan], np.ones(1), cfg, {chan: noise})


def _mfs_weight(store: RunStore, groups: list[ChannelGroup]) -> np.ndarray:
    """``(C,)`` each channel's share of the MFS: its sum of weights over theirs."""
    sumwt = np.array([float(store.array("sumwt")[g.index]) for g in groups])
    return sumwt / sumwt.sum()


def _mean_square(weight: np.ndarray, values: list[float]) -> float:
    """The weighted mean of the squares of per-channel figures."""
    return float(np.dot(weight, np.square(values)))


def _prune_joined(
    store: RunStore, chans: list[int], weight: np.ndarray, cfg: RunConfig, noise: dict[int, float]
) -> None:
    """:func:`_prune` of channels deconvolved together: one set of pixels kept in all.

    A pixel is kept where the MFS of the channels' restored images (each model smoothed to
    its own beam plus its residual, weighted by ``weight``) reaches ``prune_sigma`` times
    the MFS noise (the channels' noise maps combined as independent; one channel's own).
    Blocks of one tile row by :data:`PRUNE_SPAN_TILES` tiles, the channels read one at a time.
    """
    t = cfg.grid.tile
    psfs = {c: store.array("psf")[c] for c in chans}
    widths = {c: fwhm_to_sigma(psf_fwhm_pix(psfs[c])) for c in chans}
    areas = {c: beam_area(psf_fwhm_pix(psfs[c])) for c in chans}
    halo = int(np.ceil(4 * max(widths.values())))
    maps = np.stack([_noise_map(store, c, cfg, psfs[c], noise[c]) for c in chans])
    mfs = maps[0] if len(chans) == 1 else np.sqrt(np.tensordot(weight**2, maps**2, axes=1))
    level = cfg.deconv.prune_sigma * mfs  # (nty, ntx)
    source = store.array("model_next")
    ny, nx = source.shape[1:]
    span = PRUNE_SPAN_TILES * t
    for y0 in range(0, ny, t):
        y1 = min(y0 + t, ny)
        a0, a1 = max(y0 - halo, 0), min(y1 + halo, ny)
        for x0 in range(0, nx, span):
            x1 = min(x0 + span, nx)
            b0, b1 = max(x0 - halo, 0), min(x1 + halo, nx)
            core = (slice(y0 - a0, y1 - a0), slice(x0 - b0, x1 - b0))
            restored = np.zeros((y1 - y0, x1 - x0))
            for a, c in zip(weight, chans, strict=True):
                block = np.asarray(source[c, a0:a1, b0:b1], dtype=np.float64)
                smoothed = smooth_gaussian_truncated(block, widths[c], halo) * areas[c]
                restored += a * (smoothed[core] + store.array("residual")[c, y0:y1, x0:x1])
            ty, tx = y0 // t, slice(x0 // t, -(-x1 // t))
            keep = restored >= np.repeat(level[ty, tx], t)[: x1 - x0]
            for c in chans:
                block = np.asarray(source[c, y0:y1, x0:x1])
                store.array("model")[c, y0:y1, x0:x1] = np.where(keep, block, 0.0)
                if cfg.deconv.auto_mask:
                    inside = store.array("mask")[c, y0:y1, x0:x1] > 0
                    store.array("mask")[c, y0:y1, x0:x1] = (keep & inside).astype(np.uint8)


def _noise_map(
    store: RunStore, chan: int, cfg: RunConfig, psf: np.ndarray, noise: float
) -> np.ndarray:
    """``(nty, ntx)`` noise of each tile, Jy/beam: ``noise`` everywhere, or the residual's
    around each tile with ``DeconvConfig.local_rms``."""
    g = cfg.grid
    if not cfg.deconv.local_rms:
        return np.full((g.ntile_y, g.ntile_x), noise)
    box = local_box_pix(cfg.deconv, psf, g.tile + 2 * cfg.deconv.margin)
    sigmas = np.empty((g.ntile_y, g.ntile_x))
    for w in tile_windows(cfg):
        sigmas[w.ty, w.tx] = local_sigma(store, chan, "residual", w, box)
    return sigmas


def _previous_rms(store: RunStore, chan: int, cycle: int, grid: GridConfig) -> float:
    """RMS of the residual a cycle starts from: the dirty image's for the first, Jy/beam,
    over the pixels of the sky (as the exact residuals count them)."""
    if cycle > 1:
        return float(store.array("rms")[chan])
    dirty = store.array("dirty")
    nx, ny, t = grid.npix_x, grid.npix_y, grid.tile
    sq, n = 0.0, 0
    for y0 in range(0, ny, t):
        rows = np.asarray(dirty[chan, y0 : y0 + t], dtype=np.float64)
        horizon = beyond_horizon(nx, ny, grid.cell_rad, (y0, y0 + len(rows)), (0, nx))
        sq += float((rows**2).sum())
        n += rows.size - (0 if horizon is None else int(horizon.sum()))
    return float(np.sqrt(sq / max(n, 1)))
