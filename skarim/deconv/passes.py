"""Tile passes: step 1 of a major cycle, a tile deconvolver over the tiles of one channel.

In cycle ``k`` every tile of a channel whose ``cycle`` marker is below ``k`` is deconvolved
on its window (:mod:`skarim.deconv.tiles`), starting from the model of cycle ``k - 1``
(``model``) and its exact residual (``residual``; ``dirty`` for the first cycle); the
window's core goes to ``model_next`` and the tile's ``cycle`` becomes ``k``, in that order.
The deconvolver is the RIM's in the RIM phase and the Hogbom polish after it
(:func:`skarim.deconv.deconvolver.phase_deconvolver`).

:func:`deconvolve_rows` covers a block of tile rows of one channel; the worker task
:func:`skarim.run.tasks.tile_pass_task` calls it. It writes only its own (channel, tile)
region and markers and is idempotent, so a task retried after its worker died redoes at
most what it had not marked. A task owns whole tile rows because the ``cycle`` markers are
stored one chunk per tile row: no two concurrent tasks ever write the same chunk. The RIM
is loaded once per worker process (:func:`skarim.deconv.weights.cached_rim`).
"""

from __future__ import annotations

import numpy as np

from skarim.config import RunConfig
from skarim.deconv.deconvolver import TileDeconvolver, WindowBatch, phase_deconvolver
from skarim.deconv.device import ComputeDevice
from skarim.deconv.noise import local_box_pix, local_sigma
from skarim.deconv.tiles import TileWindow, read_windows, tile_windows, write_cores
from skarim.io.store import RunStore

__all__ = ["deconvolve_tile_batch", "deconvolve_rows"]


def deconvolve_tile_batch(
    store: RunStore,
    deconvolver: TileDeconvolver,
    chan: int,
    cycle: int,
    wins: list[TileWindow],
    sigma: float,
    masked: bool = False,
    local_box_pix: int = 0,
) -> tuple[int, int]:
    """One pass of ``deconvolver`` over tiles of one tile row of a channel.

    Tiles already at ``cycle`` are left out. The cores of the model windows go to
    ``model_next``, then the tiles' ``cycle`` markers are advanced.

    Parameters
    ----------
    store : RunStore
        The run's store.
    deconvolver : TileDeconvolver
        The cycle's deconvolver (:func:`skarim.deconv.deconvolver.phase_deconvolver`).
    chan, cycle : int
        Output channel and major cycle.
    wins : list of TileWindow
        Tiles of one tile row.
    sigma : float
        The channel's noise for this cycle, Jy/beam.
    masked : bool
        Deconvolve inside the store's ``mask`` only (:mod:`skarim.io.mask`).
    local_box_pix : int
        When positive, each tile's noise is the residual's around it, over a box of this
        side (:func:`skarim.deconv.noise.local_sigma`), instead of ``sigma``.

    Returns
    -------
    tuple of int
        Tiles written, and of those the tiles the deconvolver left as they were (the RIM's
        skipped quiet tiles).
    """
    ty = wins[0].ty
    markers = store.array("cycle")[chan, ty]  # (ntx,)
    todo = [w for w in wins if markers[w.tx] < cycle]
    if not todo:
        return 0, 0
    source = "dirty" if cycle == 1 else "residual"
    residual = read_windows(store.array(source), chan, todo)  # (b, w, w)
    x0 = None if cycle == 1 else read_windows(store.array("model"), chan, todo)
    psf = store.array("psf")[chan]
    m, t = todo[0].margin, todo[0].tile
    mask = read_windows(store.array("mask"), chan, todo) > 0 if masked else None  # (b, w, w)
    sigmas: float | np.ndarray = sigma
    if local_box_pix > 0:
        sigmas = np.array([local_sigma(store, chan, source, w, local_box_pix) for w in todo])
    batch = WindowBatch(residual, psf, sigmas, x0, slice(m, m + t), mask)
    out, skipped = deconvolver.deconvolve(batch)
    write_cores(store.array("model_next"), chan, todo, out)
    for win in todo:
        markers[win.tx] = cycle
    store.array("cycle")[chan, ty] = markers  # one chunk per tile row, owned by this task
    return len(todo), skipped


def deconvolve_rows(
    store: RunStore,
    cfg: RunConfig,
    chan: int,
    cycle: int,
    rows: range,
    sigma: float,
    device: ComputeDevice,
) -> tuple[int, int]:
    """Pass ``cycle`` (RIM or polish) over tile rows ``rows`` of one channel, in batches.

    Parameters
    ----------
    store : RunStore
        The run's store.
    cfg : RunConfig
        The run (tile geometry, margin, batch size, weights, skip and polish settings).
    chan, cycle : int
        Output channel and major cycle.
    rows : range
        Tile rows covered; batches of ``batch_tiles`` tiles never cross a row.
    sigma : float
        The channel's noise for this cycle, Jy/beam
        (:func:`skarim.deconv.noise.channel_sigma`).
    device : ComputeDevice
        Where the RIM runs, and its layers' dtype
        (:func:`skarim.deconv.device.select_device`).

    Returns
    -------
    tuple of int
        Tiles written (tiles already at ``cycle`` are left out) and, of those, the tiles
        whose RIM pass was skipped (:func:`deconvolve_tile_batch`).
    """
    d = cfg.deconv
    deconvolver = phase_deconvolver(cycle, d, device)
    batch = d.batch_tiles
    wins = tile_windows(cfg)
    masked = d.fits_mask is not None or (d.auto_mask and cycle > d.major_cycles)
    box = 0
    if d.local_rms:
        box = local_box_pix(d, store.array("psf")[chan], cfg.grid.tile + 2 * d.margin)
    written = skipped = 0
    for ty in rows:
        row = [w for w in wins if w.ty == ty]
        for i in range(0, len(row), batch):
            done, idle = deconvolve_tile_batch(
                store, deconvolver, chan, cycle, row[i : i + batch], sigma, masked, box
            )
            written, skipped = written + done, skipped + idle
    return written, skipped
