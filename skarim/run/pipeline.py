"""One imaging run: read -> grid -> (deconvolve) -> write, driven by a :class:`RunConfig`.

The command line and the tests call :func:`run_imaging`. It schedules the run's tasks on a
:class:`~skarim.run.cluster.TaskRunner` (a Dask cluster by default, or this process with
``--scheduler sync``) and takes their results as they come:

- output channels go in batches (at most :func:`skarim.imaging.grid.groups_per_batch`, and no more
  than spreads them over the workers): one gridding task per batch (:func:`grid_task`, one
  read of the Measurement Set per pass for the whole batch);
- per channel and major cycle, RIM tasks over blocks of tile rows
  (:func:`skarim.deconv.cycles.deconvolve_rows`, asking for a GPU when the RIM runs on CUDA); the
  same tasks run the polish cycles that follow the RIM's (Hogbom CLEAN on the residual);
- once all tile tasks of a batch's cycle are back, one exact-residual task for the batch
  (:func:`skarim.deconv.cycles.finish_cycle_task`).

Batches advance independently: batch 0 may be in its second cycle while batch 1 is still
gridding. What is already done according to the store's markers is not submitted again, and
every task skips what its markers say is done, so re-running a killed run resumes it
(DESIGN.md section 8). The run ends with a summary: wall time, task time per stage, tiles
and residuals computed, peak memory per worker; logged, and kept in the store's ``runs``
attribute.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np
from astropy.time import Time

from skarim.config import ClusterKind, GridConfig, ReadConfig, RunConfig
from skarim.errors import DeviceError, InputError
from skarim.imaging.grid import ChannelGroup, channel_groups, grid_channels, groups_per_batch
from skarim.io.ms_read import MSMeta, open_ms
from skarim.io.wcs import ImageWCS
from skarim.restore.products import write_products
from skarim.run.cluster import TaskRunner, open_runner
from skarim.run.store import RunStore

__all__ = [
    "RunResult",
    "grid_task",
    "image_wcs",
    "open_run_store",
    "run_imaging",
    "write_products",
]

log = logging.getLogger("skarim")


@dataclass
class RunResult:
    """What a run produced.

    Attributes
    ----------
    products : dict
        Product name (``dirty``, ``psf``...) to FITS path.
    store : Path
        The run's Zarr store.
    nonfinite : int
        NaN/inf visibilities flagged by this invocation's read passes.
    tiles_gridded : int
        Tiles gridded by this invocation (0 when everything was resumed from the store).
    tiles_deconvolved : int
        (channel, tile, cycle) passes, RIM or polish, run by this invocation.
    tiles_skipped : int
        Of the RIM's passes, those skipped: nothing in the tile's residual reached
        ``DeconvConfig.skip_sigma`` times the noise.
    residuals_computed : int
        Exact residuals (channel, cycle) computed by this invocation.
    cycles : list of dict
        Per (cycle, channel) finished by this invocation: noise, residual RMS, model flux.
    summary : dict
        The run's summary (also in the store's ``runs`` attribute): ``wall_s``, ``task_s``
        per stage, ``write_s``, the counts above, ``workers``, ``threads_per_worker``,
        ``peak_rss_bytes`` per worker.
    """

    products: dict[str, Path] = field(default_factory=dict)
    store: Path = Path()
    nonfinite: int = 0
    tiles_gridded: int = 0
    tiles_deconvolved: int = 0
    tiles_skipped: int = 0
    residuals_computed: int = 0
    cycles: list[dict] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def image_wcs(cfg: RunConfig, meta: MSMeta) -> ImageWCS:
    """Geometry of the output cubes: one plane per output channel group."""
    groups = channel_groups(len(meta.freq_hz), cfg.grid.channels_out)
    freq = [float(meta.freq_hz[g.start : g.stop].mean()) for g in groups]
    width = [float(np.abs(meta.chan_width_hz[g.start : g.stop]).sum()) for g in groups]
    date_obs = Time(meta.time_range_s[0] / 86400.0, format="mjd", scale="utc").isot
    return ImageWCS(
        npix_x=cfg.grid.npix_x,
        npix_y=cfg.grid.npix_y,
        cell_rad=cfg.grid.cell_rad,
        ra_rad=meta.phase_centre_rad[0],
        dec_rad=meta.phase_centre_rad[1],
        freq_hz=np.array(freq),
        chan_width_hz=np.array(width),
        telescope=meta.telescope or None,
        date_obs=date_obs,
    )


def open_run_store(cfg: RunConfig, meta: MSMeta, overwrite: bool | None = None) -> RunStore:
    """The run's store for this configuration and Measurement Set, created if absent.

    ``overwrite`` defaults to ``cfg.output.overwrite``; see
    :meth:`skarim.run.store.RunStore.open_or_create` for the refusal of a mismatched store.
    """
    return RunStore.open_or_create(
        cfg.output.store_path,
        config=cfg.fingerprint_dict(),
        ms_fingerprint=meta.fingerprint,
        wcs=image_wcs(cfg, meta),
        tile=cfg.grid.tile,
        overwrite=cfg.output.overwrite if overwrite is None else overwrite,
    )


def grid_task(
    store_path: Path, read: ReadConfig, grid: GridConfig, groups: list[ChannelGroup]
) -> dict:
    """Task: grid a batch of output channels into the store.

    See :func:`skarim.imaging.grid.grid_channels`.

    ``grid.nthreads`` is the thread count handed to ducc0. Facets already marked
    ``gridded`` are skipped.

    Returns
    -------
    dict
        ``tiles`` written, ``nonfinite`` visibilities dropped, ``seconds``.
    """
    start = perf_counter()
    store = RunStore.open(store_path, mode="r+")
    written: list[int] = []
    stats = grid_channels(store, read, grid, groups, on_tiles=written.append)
    seconds = perf_counter() - start
    return {"tiles": sum(written), "nonfinite": stats["nonfinite"], "seconds": seconds}


def run_imaging(
    cfg: RunConfig,
    on_tiles: Callable[[int], None] = lambda n: None,
    on_plan: Callable[[int], None] = lambda total: None,
) -> RunResult:
    """Image a Measurement Set as configured, resuming from the run's store.

    Parameters
    ----------
    cfg : RunConfig
        The run; ``cfg.cluster`` says where its tasks execute.
    on_tiles : callable
        Progress callback, called with a number of (channel, tile) units just finished
        (a tile gridded, or a tile through one RIM pass).
    on_plan : callable
        Called once with the total number of units of the run.

    Returns
    -------
    RunResult

    Raises
    ------
    InputError
        Bad input: the Measurement Set, the selection, all data flagged, or a cluster that
        cannot start.
    DeviceError, WeightsError
        The device or the RIM weights cannot be used (checked before any gridding).
    StoreMismatchError
        The store belongs to another MS or config and ``overwrite`` is off.
    """
    start = perf_counter()
    meta = open_ms(cfg.read)
    wcs = image_wcs(cfg, meta)
    if not cfg.dirty_only:
        _check_deconvolver(cfg)
    log.info(
        "%s: %d rows, field %s, %d channels %.4f-%.4f GHz, %s feeds -> %d x %d pixels, "
        "%d channel(s)",
        meta.path,
        meta.nrow,
        meta.field_name,
        len(meta.freq_hz),
        meta.freq_hz.min() / 1e9,
        meta.freq_hz.max() / 1e9,
        meta.feed,
        cfg.grid.npix_x,
        cfg.grid.npix_y,
        wcs.nchan,
    )
    store = open_run_store(cfg, meta)
    result = RunResult(store=cfg.output.store_path)
    groups = channel_groups(len(meta.freq_hz), cfg.grid.channels_out)
    with open_runner(cfg) as runner:
        device = None if cfg.dirty_only else _task_device_name(cfg, runner)
        log.info("tasks run on %s%s", runner.describe(), f"; RIM on {device}" if device else "")
        schedule = _Schedule(cfg, store, groups, runner, device, result, on_tiles)
        on_plan(schedule.total_units)
        on_tiles(schedule.done_units())
        schedule.run()
        peaks = runner.peak_memory()
    if result.nonfinite:
        log.warning("flagged %d NaN/inf visibilities", result.nonfinite)
        store.update_stats(nonfinite_flagged=result.nonfinite)
    if not np.any(store.array("sumwt")[...] > 0):
        raise InputError(f"all data flagged in {meta.path} for the selected field/spw/channels")
    written = perf_counter()
    names = ("dirty", "psf") if cfg.dirty_only else ("dirty", "psf", "model", "residual", "image")
    result.products = write_products(store, cfg, names)
    result.summary = {
        "scheduler": runner.describe(),
        "workers": runner.n_workers,
        "threads_per_worker": runner.threads,
        "wall_s": perf_counter() - start,
        "task_s": schedule.seconds,
        "write_s": perf_counter() - written,
        "tiles_gridded": result.tiles_gridded,
        "tiles_deconvolved": result.tiles_deconvolved,
        "tiles_skipped": result.tiles_skipped,
        "residuals_computed": result.residuals_computed,
        "major_cycles": 0 if cfg.dirty_only else cfg.deconv.major_cycles,
        "polish_cycles": 0 if cfg.dirty_only else cfg.deconv.polish_cycles,
        "channels": len(groups),
        "peak_rss_bytes": peaks,
    }
    store.record_run(result.summary)
    _log_summary(result.summary)
    return result


def _check_deconvolver(cfg: RunConfig) -> None:
    """Fail on unusable RIM weights, or a device this machine lacks, before any gridding."""
    import torch

    from skarim.deconv.cycles import cached_rim
    from skarim.deconv.rim_tiles import resolve_device

    cached_rim(cfg.deconv.weights, torch.device("cpu"))
    if cfg.cluster.kind in (ClusterKind.sync, ClusterKind.local) and cfg.cluster.scheduler is None:
        resolve_device(cfg.deconv.device)  # this machine runs the tasks


def _task_device_name(cfg: RunConfig, runner: TaskRunner) -> str:
    """``cpu`` or ``cuda`` for the RIM tasks: ``auto`` takes the GPUs the workers offer."""
    device = cfg.deconv.device.value
    if device == "cuda" and not runner.gpus:
        raise DeviceError("--device cuda asked for, but no worker of the cluster offers a GPU")
    if device == "auto":
        return "cuda" if runner.gpus else "cpu"
    return device


class _Schedule:
    """The tasks of one run, submitted as the results they depend on come back.

    Per batch of channels: grid (unless the store says it is gridded), then for each major
    cycle not finished in the store, RIM tasks over the blocks of tile rows holding a tile
    below that cycle, for each channel of the batch that has data, then the batch's residual
    task. Tags are ``("grid", b)``, ``("rim", b, k)``, ``("residual", b, k)`` for batch ``b``.
    """

    def __init__(
        self,
        cfg: RunConfig,
        store: RunStore,
        groups: list[ChannelGroup],
        runner: TaskRunner,
        device: str | None,
        result: RunResult,
        on_tiles: Callable[[int], None],
    ) -> None:
        from skarim.deconv.cycles import row_blocks, tile_windows

        self.cfg = _for_workers(cfg)
        self.store, self.runner = store, runner
        self.device, self.result, self.on_tiles = device, result, on_tiles
        self.path = cfg.output.store_path.resolve()
        self.cycles = 0 if cfg.dirty_only else cfg.deconv.total_cycles
        self.rim_cycles = cfg.deconv.major_cycles
        self.ntiles = cfg.grid.ntile_x * cfg.grid.ntile_y
        self.total_units = len(groups) * self.ntiles * (1 + self.cycles)
        per = min(groups_per_batch(cfg.grid), -(-len(groups) // runner.n_workers))
        self.batches = [groups[i : i + per] for i in range(0, len(groups), per)]
        self.active: dict[int, list[ChannelGroup]] = {}  # batch -> its channels with data
        self.wins = tile_windows(cfg)
        self.blocks = row_blocks(cfg, runner.n_workers)
        self.pending: dict[int, int] = {}  # batch -> RIM tasks of its running cycle still out
        self.sigma: dict[int, float] = {}  # channel -> noise of its running cycle
        self.seconds = {"grid": 0.0, "deconvolve": 0.0, "residual": 0.0}

    def done_units(self) -> int:
        """Units the store already holds: tiles gridded, tiles' RIM passes."""
        done = int(np.count_nonzero(self.store.array("gridded")[...]))
        if self.cycles:
            done += int(np.minimum(self.store.array("cycle")[...], self.cycles).sum())
        return done

    def run(self) -> None:
        """Submit the first task of every batch, then react to results until none is out."""
        grid = self.cfg.grid.model_copy(update={"nthreads": self.runner.threads})
        for b, groups in enumerate(self.batches):
            if all(self.store.channel_gridded(g.index) for g in groups):
                self._gridded(b)
            else:
                self._submit(("grid", b), grid_task, self.cfg.read, grid, groups)
        for tag, out in self.runner.completed():
            self._done(tag, out)

    def _submit(
        self,
        tag: Hashable,
        fn: Callable[..., dict],
        *args: Any,
        gpu: bool = False,
        priority: int = 0,
    ) -> None:
        self.runner.submit(tag, fn, self.path, *args, gpu=gpu, priority=priority)

    def _done(self, tag: tuple, out: dict) -> None:
        kind, b = tag[0], tag[1]
        if kind == "grid":
            self.seconds["grid"] += out["seconds"]
            self.result.tiles_gridded += out["tiles"]
            self.result.nonfinite += out["nonfinite"]
            self.on_tiles(out["tiles"])
            self._gridded(b)
        elif kind == "rim":
            self.seconds["deconvolve"] += out["seconds"]
            self.result.tiles_deconvolved += out["tiles"]
            self.result.tiles_skipped += out["skipped"]
            self.on_tiles(out["tiles"])
            self.pending[b] -= 1
            if self.pending[b] == 0:
                self._submit_residual(b, tag[2])
        else:
            self.seconds["residual"] += out["seconds"]
            for stats in out["channels"]:
                self._record(tag[2], stats)
                if stats["stopped"] or stats["converged"]:  # its phase's later cycles: done
                    self.on_tiles(self.ntiles * (self._phase_end(tag[2]) - tag[2]))
            self._start_cycle(b, tag[2] + 1)

    def _phase_end(self, cycle: int) -> int:
        """The last cycle of the phase (RIM, then polish) that ``cycle`` belongs to."""
        return self.rim_cycles if cycle <= self.rim_cycles else self.cycles

    def _record(self, cycle: int, stats: dict) -> None:
        chan = stats["channel"]
        self.result.residuals_computed += 1
        entry = {"cycle": cycle, "sigma": self.sigma[chan], **stats}
        self.result.cycles.append(entry)
        phase = "RIM" if cycle <= self.rim_cycles else "polish"
        if stats["stopped"] and not stats["unchanged"]:
            log.warning(
                "cycle %d channel %d: the residual rms would not fall (%.3g -> %.3g Jy/beam): "
                "the model of cycle %d is kept and the channel's %s cycles stop",
                cycle, chan, stats["previous_rms"], stats["refused_rms"], cycle - 1, phase,
            )  # fmt: skip
            return
        if stats["stopped"]:  # the cycle changed nothing: no tile held anything to do
            log.info(
                "cycle %d (%s) channel %d: nothing above the thresholds, the residual rms stays "
                "%.3g Jy/beam: the channel's %s cycles end",
                cycle, phase, chan, stats["previous_rms"], phase,
            )  # fmt: skip
            return
        end = f"; converged: the channel's {phase} cycles end" if stats["converged"] else ""
        log.info(
            "cycle %d (%s) channel %d: noise %.3g, residual rms %.3g Jy/beam (%.2f x its noise), "
            "model flux %.4g Jy%s",
            cycle, phase, chan, entry["sigma"], entry["rms"], entry["noise_ratio"], entry["flux"],
            end,
        )  # fmt: skip

    def _gridded(self, b: int) -> None:
        if not self.cycles:
            return
        active = []
        for group in self.batches[b]:
            if self.store.array("sumwt")[group.index] > 0:
                active.append(group)
                continue
            log.warning("output channel %d has no unflagged data: its planes are zero", group.index)
            done = np.minimum(self.store.array("cycle")[group.index], self.cycles).sum()
            self.on_tiles(self.ntiles * self.cycles - int(done))
        self.active[b] = active
        if active:
            self._start_cycle(b, min(int(self.store.array("rcycle")[g.index]) for g in active) + 1)

    def _start_cycle(self, b: int, cycle: int) -> None:
        from skarim.deconv.cycles import channel_sigma, deconvolve_rows

        if cycle > self.cycles:
            return
        source = "dirty" if cycle == 1 else "residual"
        tasks = []
        for group in self.active[b]:
            chan = group.index
            markers = self.store.array("cycle")[chan]  # (nty, ntx)
            blocks = [r for r in self.blocks if np.any(markers[r.start : r.stop] < cycle)]
            if blocks:  # when none, the channel was done before an interruption
                self.sigma[chan] = sigma = channel_sigma(self.store, chan, source, self.wins)
                tasks += [(chan, rows, sigma) for rows in blocks]
            elif int(self.store.array("rcycle")[chan]) < cycle:  # its residual is still due
                self.sigma[chan] = channel_sigma(self.store, chan, source, self.wins)
        self.pending[b] = len(tasks)
        if not tasks:
            self._submit_residual(b, cycle)
        for chan, rows, sigma in tasks:
            args = (self.cfg, chan, cycle, rows, sigma, self.runner.threads, self.device)
            self._submit(("rim", b, cycle), deconvolve_rows, *args, gpu=self.device == "cuda")

    def _submit_residual(self, b: int, cycle: int) -> None:
        from skarim.deconv.cycles import finish_cycle_task

        args = (self.cfg, self.active[b], cycle, self.runner.threads)
        # a batch's residual unblocks its next cycle: run it before waiting RIM tasks
        self._submit(("residual", b, cycle), finish_cycle_task, *args, priority=1)


def _for_workers(cfg: RunConfig) -> RunConfig:
    """The run with absolute paths, for workers whose working directory may differ."""
    deconv = cfg.deconv
    if deconv.weights is not None:
        deconv = deconv.model_copy(update={"weights": deconv.weights.resolve()})
    read = cfg.read.model_copy(update={"ms": cfg.read.ms.resolve()})
    return cfg.model_copy(update={"read": read, "deconv": deconv})


def _log_summary(s: dict[str, Any]) -> None:
    peaks = list(s["peak_rss_bytes"].values())
    task = ", ".join(f"{k} {v:.1f} s" for k, v in s["task_s"].items())
    log.info(
        "run summary: %.1f s wall on %s; task time %s; write %.1f s; %d tile(s) gridded, "
        "%d tile pass(es) deconvolved (%d RIM pass(es) skipped on empty tiles), %d residual(s) "
        "over %d RIM and %d polish cycle(s); peak memory per worker %.0f-%.0f MiB",
        s["wall_s"], s["scheduler"], task, s["write_s"], s["tiles_gridded"],
        s["tiles_deconvolved"], s["tiles_skipped"], s["residuals_computed"], s["major_cycles"],
        s["polish_cycles"],
        min(peaks) / 2**20, max(peaks) / 2**20,
    )  # fmt: skip
