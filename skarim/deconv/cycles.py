"""Major cycles: RIM passes over the tiles of a channel, then an exact residual (DESIGN.md 7).

Cycle ``k`` of output channel ``c``:

1. every tile whose ``cycle`` is below ``k`` is deconvolved by the RIM on a window of the
   tile plus a ``margin`` halo, starting from the model of cycle ``k - 1`` (``model``) and its
   exact residual (``residual``; ``dirty`` for the first cycle); the window's core goes to
   ``model_next`` and the tile's ``cycle`` becomes ``k`` (in that order);
2. when all tiles are at ``k``, the exact residual of ``model_next`` is computed with ducc0
   (:func:`skarim.imaging.residual.residual_channels`, several channels per read of the Measurement
   Set) into ``residual_next``; if its RMS fell, ``model_next`` and ``residual_next`` are
   copied to ``model`` and ``residual``, then ``rms[c]`` and ``rcycle[c] = k`` are written;
   if it did not, the previous model and residual are kept and the channel's cycles of that
   phase stop (:func:`finish_cycle`).

Cycles ``major_cycles + 1`` to ``total_cycles`` polish the RIM's model: in step 1 the tile
pass is Hogbom CLEAN on the window of the residual (:func:`skarim.deconv.clean.hogbom`, signed, down
to ``polish_sigma`` noise) added to ``model``, instead of the RIM. The RIM's phase ends at
cycle ``major_cycles`` or at its first refused cycle; only then is the model pruned.

Every step reads only what the store says is finished and writes before it marks, so a run
killed anywhere resumes from the store, and the order in which tiles are processed does not
change the result.

The scheduled tasks are :func:`deconvolve_rows` (step 1 for a block of tile rows of one
channel) and :func:`finish_cycle_task` (step 2 for a batch of channels). Each opens the store
by path, writes only its own (channel, tile) region and markers, and returns small
statistics; both are idempotent, so a task retried after its worker died redoes at most what
it had not marked. A task owns whole tile rows because the ``cycle`` markers are stored one
chunk per tile row: no two concurrent tasks ever write the same chunk. The RIM is loaded
once per worker process (:func:`cached_rim`), and threads are handed to torch and ducc0 as
arguments.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

import numpy as np
import torch

from skarim.config import DeconvConfig, RunConfig
from skarim.deconv.clean import hogbom
from skarim.deconv.rim import RIM
from skarim.deconv.rim_tiles import (
    deconvolve_tiles,
    fit_psf,
    load_rim,
    resolve_precision,
    robust_sigma,
)
from skarim.imaging.grid import ChannelGroup
from skarim.imaging.residual import residual_channels
from skarim.metrics import psf_fwhm_pix
from skarim.run.store import RunStore

__all__ = [
    "REFUSE_RTOL",
    "TASKS_PER_WORKER",
    "TileWindow",
    "tile_windows",
    "row_blocks",
    "channel_sigma",
    "cached_rim",
    "task_device",
    "polish_tiles",
    "deconvolve_tile_batch",
    "deconvolve_rows",
    "finish_cycle",
    "finish_cycle_task",
]

#: RIM tasks per channel and cycle are at most this many times the workers: enough to
#: balance the load, few enough that a 100,000-tile image is not a 100,000-task graph.
TASKS_PER_WORKER = 4

#: A cycle must lower its channel's residual RMS by more than this fraction to be kept. A
#: cycle that changed nothing is refused, and so is a rerun of a refused cycle killed after
#: the previous model was copied back to ``model_next`` (its residual's RMS is the previous
#: one up to the gridder's round-off).
REFUSE_RTOL = 1e-6

#: Loaded networks of this process, keyed by (weights path, device, layer dtype).
_RIMS: dict[tuple[str, str, torch.dtype], RIM] = {}


@dataclass(frozen=True)
class TileWindow:
    """Tile ``(ty, tx)`` and its window: the core plus a halo, clipped to the image."""

    ty: int
    tx: int
    tile: int
    margin: int
    npix_x: int
    npix_y: int

    @property
    def core(self) -> tuple[slice, slice]:
        """``(y, x)`` slices of the tile in the image."""
        t = self.tile
        return slice(self.ty * t, (self.ty + 1) * t), slice(self.tx * t, (self.tx + 1) * t)

    def window(self) -> tuple[slice, slice, tuple[slice, slice]]:
        """Image slices of the window, and where they sit in a ``(t + 2m)^2`` array."""
        t, m = self.tile, self.margin
        y0, x0 = self.ty * t - m, self.tx * t - m
        ys, xs = max(y0, 0), max(x0, 0)
        ye, xe = min(y0 + t + 2 * m, self.npix_y), min(x0 + t + 2 * m, self.npix_x)
        inner = (slice(ys - y0, ye - y0), slice(xs - x0, xe - x0))
        return slice(ys, ye), slice(xs, xe), inner


def tile_windows(cfg: RunConfig) -> list[TileWindow]:
    """All tiles of the image, row-major."""
    g = cfg.grid
    return [
        TileWindow(ty, tx, g.tile, cfg.deconv.margin, g.npix_x, g.npix_y)
        for ty in range(g.ntile_y)
        for tx in range(g.ntile_x)
    ]


def row_blocks(cfg: RunConfig, n_workers: int) -> list[range]:
    """Tile rows cut into the contiguous blocks that RIM tasks cover, one task per block.

    There are at most ``TASKS_PER_WORKER * n_workers`` blocks, never more than the tile rows
    nor than the tile batches of a channel (``DeconvConfig.batch_tiles``).

    Examples
    --------
    >>> from skarim.config import GridConfig, ReadConfig
    >>> cfg = RunConfig(read=ReadConfig(ms="x.ms"),
    ...                 grid=GridConfig(npix_x=512, npix_y=512, cell_rad=1e-5, tile=32))
    >>> [(r.start, r.stop) for r in row_blocks(cfg, 1)]
    [(0, 4), (4, 8), (8, 12), (12, 16)]
    >>> len(row_blocks(cfg, 100))
    16
    """
    g = cfg.grid
    batches = -(-g.ntile_x * g.ntile_y // cfg.deconv.batch_tiles)
    n = max(1, min(g.ntile_y, batches, TASKS_PER_WORKER * n_workers))
    return [range(int(a[0]), int(a[-1]) + 1) for a in np.array_split(np.arange(g.ntile_y), n)]


def _read_windows(arr, chan: int, wins: list[TileWindow]) -> np.ndarray:  # noqa: ANN001
    size = wins[0].tile + 2 * wins[0].margin
    out = np.zeros((len(wins), size, size), dtype=np.float32)  # (b, w, w)
    for i, win in enumerate(wins):
        ys, xs, inner = win.window()
        out[i][inner] = arr[chan, ys, xs]
    return out


def channel_sigma(store: RunStore, chan: int, source: str, wins: list[TileWindow]) -> float:
    """Robust noise of a channel's residual from up to 16 tiles spread over the image."""
    pick = wins[:: max(1, len(wins) // 16)][:16]
    samples = [store.array(source)[(chan, *w.core)] for w in pick]
    return robust_sigma(np.concatenate([s.ravel() for s in samples]))


def cached_rim(
    weights: Path | None, device: torch.device, dtype: torch.dtype = torch.float32
) -> RIM:
    """The RIM of ``weights`` on ``device``, layers in ``dtype``, loaded once per process.

    See :func:`skarim.deconv.rim_tiles.load_rim`.
    """
    key = (str(weights), str(device), dtype)
    if key not in _RIMS:
        _RIMS[key] = load_rim(weights, device, dtype)
    return _RIMS[key]


def task_device(name: str) -> torch.device:
    """``cpu``, or for ``cuda`` the GPU of this worker process.

    A Dask worker whose name ends in a number ``n`` (LocalCluster workers ``0, 1, ...``;
    dask-jobqueue's ``<job>-<process>``) takes GPU ``n`` modulo the GPUs it sees, so worker
    processes sharing a node spread over its GPUs; outside a worker it is the current GPU.
    """
    if name != "cuda":
        return torch.device(name)
    from distributed import get_worker

    try:
        worker = str(get_worker().name)
    except ValueError:  # not inside a Dask worker: the sync scheduler
        return torch.device("cuda")
    index = re.search(r"(\d+)$", worker)
    return torch.device("cuda", int(index.group(1)) % torch.cuda.device_count() if index else 0)


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def polish_tiles(
    residual: np.ndarray, psf: np.ndarray, sigma: float, x0: np.ndarray, deconv: DeconvConfig
) -> np.ndarray:
    """A polish pass: ``x0`` plus Hogbom CLEAN of each window of its residual.

    Parameters
    ----------
    residual : numpy.ndarray
        ``(batch, w, w)`` windows of the exact residual of ``x0``, Jy/beam.
    psf : numpy.ndarray
        ``(2p, 2p)`` PSF with peak 1 at ``(p, p)``.
    sigma : float
        The residual's noise, Jy/beam; minor iterations stop at ``deconv.polish_sigma`` times it.
    x0 : numpy.ndarray
        ``(batch, w, w)`` current model windows, Jy/pixel.
    deconv : DeconvConfig
        ``polish_sigma`` and ``polish_gain``.

    Returns
    -------
    numpy.ndarray
        ``(batch, w, w)`` polished model windows, Jy/pixel, float32 (signed: CLEAN may take
        back flux the RIM put where there is none).
    """
    psf_w = fit_psf(psf, residual.shape[-1])  # (2w, 2w)
    steps = [
        hogbom(r, psf_w, sigma, gain=deconv.polish_gain, threshold_sigma=deconv.polish_sigma)
        for r in residual
    ]
    return (x0 + np.stack(steps)).astype(np.float32)


def deconvolve_tile_batch(
    store: RunStore,
    deconv: DeconvConfig,
    model: RIM | None,
    device: torch.device,
    chan: int,
    cycle: int,
    wins: list[TileWindow],
    sigma: float,
) -> tuple[int, int]:
    """One pass over tiles of one tile row of a channel.

    The pass is the RIM's (``model``) up to cycle
    ``deconv.major_cycles``, then the polish's (:func:`polish_tiles`; ``model`` may be None).
    Tiles already at ``cycle`` are left out. In a RIM pass, a tile whose residual stays below
    ``deconv.skip_sigma * sigma`` keeps its model without running the network. The cores go
    to ``model_next``, then the tiles' ``cycle`` markers are advanced.

    Returns
    -------
    tuple of int
        Tiles written, and of those the tiles whose RIM pass was skipped.
    """
    ty = wins[0].ty
    markers = store.array("cycle")[chan, ty]  # (ntx,)
    todo = [w for w in wins if markers[w.tx] < cycle]
    if not todo:
        return 0, 0
    source = "dirty" if cycle == 1 else "residual"
    residual = _read_windows(store.array(source), chan, todo)  # (b, w, w)
    x0 = None if cycle == 1 else _read_windows(store.array("model"), chan, todo)
    psf = store.array("psf")[chan]
    m, t = todo[0].margin, todo[0].tile
    skipped = 0
    if cycle > deconv.major_cycles:
        out = polish_tiles(residual, psf, sigma, x0, deconv)  # (b, w, w)
    else:
        out = np.zeros_like(residual) if x0 is None else x0.copy()  # (b, w, w)
        peak = np.abs(residual[:, m : m + t, m : m + t]).max(axis=(1, 2))  # (b,) in the cores
        busy = peak >= deconv.skip_sigma * sigma
        skipped = int(np.count_nonzero(~busy))
        if busy.any():
            start = None if x0 is None else x0[busy]
            out[busy] = deconvolve_tiles(model, residual[busy], psf, sigma, device, x0=start)
    for i, win in enumerate(todo):
        ys, xs = win.core
        # windows are indexed from the unclipped corner, so the core is always at [m, m + t)
        store.array("model_next")[chan, ys, xs] = out[i, m : m + t, m : m + t]
        markers[win.tx] = cycle
    store.array("cycle")[chan, ty] = markers  # one chunk per tile row, owned by this task
    return len(todo), skipped


def deconvolve_rows(
    store_path: Path,
    cfg: RunConfig,
    chan: int,
    cycle: int,
    rows: range,
    sigma: float,
    threads: int,
    device: str,
) -> dict[str, float]:
    """Task: pass ``cycle`` (RIM or polish) over tile rows ``rows`` of one channel, in batches.

    Parameters
    ----------
    store_path : Path
        The run's store, opened here.
    cfg : RunConfig
        The run (tile geometry, margin, batch size, weights).
    chan, cycle : int
        Output channel and major cycle.
    rows : range
        Tile rows covered; batches of ``batch_tiles`` tiles never cross a row.
    sigma : float
        The channel's noise for this cycle, Jy/beam (:func:`channel_sigma`).
    threads : int
        Threads handed to torch.
    device : str
        ``cpu`` or ``cuda``.

    Returns
    -------
    dict
        ``tiles`` written (tiles already at ``cycle`` are left out), ``skipped`` (of those,
        the tiles whose RIM pass was skipped, :func:`deconvolve_tile_batch`), ``seconds``.
    """
    start = perf_counter()
    store = RunStore.open(store_path, mode="r+")
    dev = task_device(device)
    model = None
    if cycle <= cfg.deconv.major_cycles:
        dtype = resolve_precision(cfg.deconv.precision, dev)
        model = cached_rim(cfg.deconv.weights, dev, dtype)
    batch = cfg.deconv.batch_tiles
    wins = tile_windows(cfg)
    written = skipped = 0
    with _torch_threads(threads):
        for ty in rows:
            row = [w for w in wins if w.ty == ty]
            for i in range(0, len(row), batch):
                done, idle = deconvolve_tile_batch(
                    store, cfg.deconv, model, dev, chan, cycle, row[i : i + batch], sigma
                )
                written, skipped = written + done, skipped + idle
    return {"tiles": written, "skipped": skipped, "seconds": perf_counter() - start}


def finish_cycle(
    store: RunStore, cfg: RunConfig, groups: list[ChannelGroup], cycle: int
) -> list[dict]:
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

    Returns
    -------
    list of dict
        Per channel of ``groups``: ``channel``, ``rms`` of the kept residual (Jy/beam),
        ``flux`` of the kept model (Jy), ``noise_ratio`` (the kept residual's RMS over its
        robust noise, before any pruning), ``stopped`` (True when the cycle was refused) and
        ``converged`` (True when the phase ended on a noise-like residual); a refused cycle
        adds ``refused_rms`` (its residual's), ``previous_rms`` (that of the residual it
        started from, which it did not lower) and ``unchanged`` (True when the two agree to
        :data:`REFUSE_RTOL`: the cycle changed nothing).
    """
    t = cfg.grid.tile
    rim_phase = cycle <= cfg.deconv.major_cycles
    last = cfg.deconv.major_cycles if rim_phase else cfg.deconv.total_cycles
    before = [_previous_rms(store, g.index, cycle, t) for g in groups]
    floor = 1 - REFUSE_RTOL
    candidate = residual_channels(
        store, cfg.read, cfg.grid, groups, model="model_next", out="residual_next"
    )
    refused = [g for g, s, b in zip(groups, candidate, before, strict=True) if s["rms"] > b * floor]
    stats = []
    for g, s, b in zip(groups, candidate, before, strict=True):
        if g in refused:  # the previous model again, with its residual (left in place)
            _copy_rows(store, "model", "model_next", g.index, cfg)
            s = {"rms": b, "flux": float(np.sum(store.array("model")[g.index], dtype=np.float64))}
        else:
            _copy_rows(store, "residual_next", "residual", g.index, cfg)
        stats.append(s)
    refused_rms = {g.index: s["rms"] for g, s in zip(groups, candidate, strict=True)}
    previous = {g.index: b for g, b in zip(groups, before, strict=True)}
    wins = tile_windows(cfg)
    noise = {g.index: channel_sigma(store, g.index, "residual", wins) for g in groups}
    ratio = cfg.deconv.converged_ratio
    converged = [
        g
        for g, s in zip(groups, stats, strict=True)
        if g not in refused and cycle < last and s["rms"] <= ratio * noise[g.index]
    ]
    ended = refused + converged  # the phase's later cycles are skipped for these
    kept_rms = {g.index: s["rms"] for g, s in zip(groups, stats, strict=True)}
    prune = rim_phase and cfg.deconv.prune_sigma > 0
    pruned = [g for g in groups if prune and (g in ended or cycle == last)]
    for g in groups:
        if g in pruned:
            _prune(store, g.index, cfg, noise[g.index])
        else:
            _copy_rows(store, "model_next", "model", g.index, cfg)
    if pruned:
        after = residual_channels(store, cfg.read, cfg.grid, pruned)
        redo = dict(zip(pruned, after, strict=True))
        stats = [redo.get(g, s) for g, s in zip(groups, stats, strict=True)]
    out = []
    for group, s in zip(groups, stats, strict=True):
        c = group.index
        store.array("rms")[c] = s["rms"]
        if group in ended:
            store.array("cycle")[c] = last
        store.array("rcycle")[c] = last if group in ended else cycle
        entry = {
            "channel": c,
            **s,
            "noise_ratio": kept_rms[c] / noise[c] if noise[c] > 0 else float("inf"),
            "stopped": group in refused,
            "converged": group in converged,
        }
        if group in refused:
            entry["refused_rms"], entry["previous_rms"] = refused_rms[c], previous[c]
            entry["unchanged"] = abs(refused_rms[c] - previous[c]) <= REFUSE_RTOL * previous[c]
        out.append(entry)
    return out


def _copy_rows(store: RunStore, src: str, dst: str, chan: int, cfg: RunConfig) -> None:
    """Copy one channel's plane between two image arrays, a tile row at a time."""
    t = cfg.grid.tile
    for ty in range(cfg.grid.ntile_y):
        rows = slice(ty * t, (ty + 1) * t)
        store.array(dst)[chan, rows] = store.array(src)[chan, rows]


def _gaussian_smooth(image: np.ndarray, width: float, radius: int) -> np.ndarray:
    """Separable unit-sum Gaussian of ``width`` pixels (truncated at ``radius``), zero outside."""
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / width) ** 2)
    kernel /= kernel.sum()
    out = image
    for axis in (0, 1):
        padded = np.pad(out, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)])
        n = out.shape[axis]
        out = sum(k * np.take(padded, np.arange(i, i + n), axis=axis) for i, k in enumerate(kernel))
    return out


def _prune(store: RunStore, chan: int, cfg: RunConfig, noise: float) -> None:
    """``model = model_next`` where the restored image reaches ``prune_sigma`` noise.

    The restored image is ``model_next`` smoothed to the beam (a circular Gaussian of the PSF
    main lobe's FWHM, Jy/beam) plus ``residual`` (the exact residual of ``model_next``): flux
    the RIM put where the data hold none is cancelled by the residual's negative there, so it
    goes, while a source the data hold stays. ``noise`` is the residual's robust noise
    (:func:`channel_sigma`), Jy/beam. Works a tile row at a time with a halo of four
    smoothing widths, so memory follows the tile size.
    """
    t = cfg.grid.tile
    fwhm = psf_fwhm_pix(store.array("psf")[chan])
    width = fwhm / (2 * np.sqrt(2 * np.log(2)))
    halo = int(np.ceil(4 * width))
    level = cfg.deconv.prune_sigma * noise
    source = store.array("model_next")
    ny = source.shape[1]
    for ty in range(cfg.grid.ntile_y):
        y0, y1 = ty * t, (ty + 1) * t
        a0, a1 = max(y0 - halo, 0), min(y1 + halo, ny)
        block = np.asarray(source[chan, a0:a1], dtype=np.float64)  # (rows + halo, nx)
        smoothed = _gaussian_smooth(block, width, halo) * (2 * np.pi * width**2)  # Jy/beam
        restored = smoothed[y0 - a0 : y1 - a0] + store.array("residual")[chan, y0:y1]
        keep = restored >= level
        store.array("model")[chan, y0:y1] = np.where(keep, block[y0 - a0 : y1 - a0], 0.0)


def _previous_rms(store: RunStore, chan: int, cycle: int, tile: int) -> float:
    """RMS of the residual a cycle starts from: the dirty image's for the first, Jy/beam."""
    if cycle > 1:
        return float(store.array("rms")[chan])
    dirty = store.array("dirty")
    sq, n = 0.0, 0
    for y0 in range(0, dirty.shape[1], tile):
        rows = np.asarray(dirty[chan, y0 : y0 + tile], dtype=np.float64)
        sq, n = sq + float((rows**2).sum()), n + rows.size
    return float(np.sqrt(sq / max(n, 1)))


def finish_cycle_task(
    store_path: Path, cfg: RunConfig, groups: list[ChannelGroup], cycle: int, threads: int
) -> dict:
    """Task: :func:`finish_cycle` for the channels whose ``rcycle`` is below ``cycle``.

    ``threads`` are handed to ducc0. Channels already finished (a retried task, or a run
    killed between two channels' markers) are left alone.

    Returns
    -------
    dict
        ``channels``: :func:`finish_cycle`'s statistics of the channels computed (possibly
        none), ``seconds``.
    """
    start = perf_counter()
    store = RunStore.open(store_path, mode="r+")
    todo = [g for g in groups if int(store.array("rcycle")[g.index]) < cycle]
    stats = []
    if todo:
        grid = cfg.grid.model_copy(update={"nthreads": threads})
        stats = finish_cycle(store, cfg.model_copy(update={"grid": grid}), todo, cycle)
    return {"channels": stats, "seconds": perf_counter() - start}
