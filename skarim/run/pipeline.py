"""One imaging run: read -> grid -> (deconvolve) -> write, driven by a :class:`RunConfig`.

The command line and the tests call :func:`run_imaging`. It schedules the run's tasks on a
:class:`~skarim.run.runner.TaskRunner` (a Dask cluster by default, or this process with
``--scheduler sync``) and takes their results as they come:

- output channels go in batches (at most :func:`skarim.imaging.plan.groups_per_batch`, and no
  more than spreads them over the workers): one gridding task per batch
  (:func:`skarim.run.tasks.grid_task`, one read of the Measurement Set per pass for the whole
  batch);
- per channel and major cycle, tile-pass tasks over blocks of tile rows
  (:func:`skarim.run.tasks.tile_pass_task`, asking for a GPU when the RIM runs on CUDA): the
  RIM's cycles, then the polish cycles (Hogbom CLEAN on the residual);
- once all tile tasks of a batch's cycle are back, one exact-residual task for the batch
  (:func:`skarim.run.tasks.finish_cycle_task`).

:class:`skarim.run.schedule.Schedule` submits them as their inputs come back; what is already
done according to the store's markers is not submitted again, and every task skips what its
markers say is done, so re-running a killed run resumes it (docs/design.md section 8) and logs
what it resumes from (:mod:`skarim.run.resume`). The store is locked for the whole run
(:mod:`skarim.io.store_lock`): a second run on it stops at once. An interrupted run
(``KeyboardInterrupt``) closes its workers and raises :class:`~skarim.errors.RunInterrupted`
saying what the store keeps. The run ends with a summary: wall time, task time per stage, tiles
and residuals computed, peak memory per worker; logged, and kept in the store's ``runs``
attribute.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np
from astropy.time import Time

from skarim.config import ClusterKind, RunConfig
from skarim.errors import InputError, RunInterrupted, WeightsError
from skarim.imaging.plan import channel_groups
from skarim.imaging.wgridder import CONVENTIONS
from skarim.io.ms_meta import MSMeta, open_ms
from skarim.io.ms_read import check_weights, gathered_bytes, read_step
from skarim.io.store import RunStore
from skarim.io.store_lock import hold_store
from skarim.io.wcs import ImageWCS
from skarim.restore.primary_beam import load_primary_beam
from skarim.restore.products import write_products
from skarim.run.observation import observation_of_ms
from skarim.run.preflight import check_field, in_process_if_faster, preflight
from skarim.run.resume import kept_line, store_progress
from skarim.run.runner import TaskRunner, open_runner, peak_rss_bytes
from skarim.run.schedule import CycleRecord, Schedule
from skarim.run.tasks import TaskContext

__all__ = [
    "RunResult",
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
        Of those passes, the ones that left the tile as it was: nothing in its residual
        reached the RIM's ``DeconvConfig.skip_sigma`` or the polish's ``polish_sigma`` times
        the noise.
    residuals_computed : int
        Exact residuals (channel, cycle) computed by this invocation.
    cycles : list of CycleRecord
        Per (cycle, channel) finished by this invocation: noise, residual RMS, model flux.
    summary : dict
        The run's summary (also in the store's ``runs`` attribute): ``wall_s``, ``task_s``
        per stage, ``write_s``, the counts above, ``workers``, ``threads_per_worker``,
        ``peak_rss_bytes`` per worker, ``driver_peak_rss_bytes`` of this process,
        ``batch_jobs`` (ids of the SLURM or PBS jobs the tasks ran in, in order of joining).
    """

    products: dict[str, Path] = field(default_factory=dict)
    store: Path = Path()
    nonfinite: int = 0
    tiles_gridded: int = 0
    tiles_deconvolved: int = 0
    tiles_skipped: int = 0
    residuals_computed: int = 0
    cycles: list[CycleRecord] = field(default_factory=list)
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
    :meth:`skarim.io.store.RunStore.open_or_create` for the refusal of a mismatched store.
    """
    from skarim.deconv.weights_id import run_weights_path, weights_sha256

    return RunStore.open_or_create(
        cfg.output.store_path,
        config=cfg.fingerprint_dict(weights_sha256(run_weights_path(cfg.deconv))),
        ms_fingerprint=meta.fingerprint,
        wcs=image_wcs(cfg, meta),
        tile=cfg.grid.tile,
        gridder_conventions=CONVENTIONS,
        makes_psf=cfg.makes_psf,
        overwrite=cfg.output.overwrite if overwrite is None else overwrite,
    )


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
        Bad input: the Measurement Set, the selection, no usable weight
        (:func:`skarim.io.ms_read.check_weights`), all data flagged, an output directory that
        cannot be written, a store in use by another run
        (:func:`skarim.io.store_lock.hold_store`), a cluster that cannot start, or a task that
        cannot fit a worker's memory (:func:`skarim.run.preflight.preflight`): all before the
        store is created. During the run, an I/O error (a full disk) or an allocation that
        fails: the store keeps what was finished, and the message says so.
    DeviceError, WeightsError
        The device or the RIM weights cannot be used (checked before any gridding).
    StoreMismatchError
        The store belongs to another MS or config and ``overwrite`` is off.
    RunInterrupted
        On ``KeyboardInterrupt`` (SIGINT, or SIGTERM where the command line turns it into
        one): the run's workers are stopped and the message says what the store keeps.
    """
    start = perf_counter()
    meta = open_ms(cfg.read)
    with hold_store(cfg.output.store_path) as left:
        if left is not None:
            log.warning(
                "took over the lock of %s left by %s, which is no longer running",
                cfg.output.store_path, left.describe(),
            )  # fmt: skip
        try:
            return _run(cfg, meta, start, on_tiles, on_plan)
        except KeyboardInterrupt:
            raise RunInterrupted(kept_line(cfg)) from None
        except OSError as exc:
            what = f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else exc
            raise InputError(f"I/O error ({what}); {kept_line(cfg)}") from exc
        except MemoryError as exc:  # an allocation the pre-flight plan did not foresee
            raise InputError(
                f"out of memory ({exc or 'MemoryError'}); a smaller --facet-pix or --tile, or "
                f"fewer --workers, lower a task's memory (`skarim plan` shows the plan); "
                f"{kept_line(cfg)}"
            ) from exc


def _put_fits_mask(cfg: RunConfig, store: RunStore, wcs: ImageWCS) -> None:
    """The FITS mask into the store, before any tile is deconvolved (a resumed run keeps the
    masks it started with, the auto-mask included)."""
    mask = cfg.deconv.fits_mask
    if mask is None or cfg.dirty_only or store.array("cycle")[...].any():
        return
    from skarim.io.mask import write_fits_mask  # astropy.wcs loads only for a mask

    inside = write_fits_mask(store, mask, wcs)
    log.info("FITS mask %s: deconvolving %.1f%% of the image", mask, 100 * inside)


def _run(
    cfg: RunConfig,
    meta: MSMeta,
    start: float,
    on_tiles: Callable[[int], None],
    on_plan: Callable[[int], None],
) -> RunResult:
    """The run of :func:`run_imaging`, its store's lock held."""
    check_field(cfg)
    wcs = image_wcs(cfg, meta)
    check_weights(meta, cfg.read)  # before any work: the first chunk, for a healthy MS
    if not cfg.dirty_only:
        _check_deconvolver(cfg)
    obs = observation_of_ms(meta)
    budget = preflight(cfg, obs)  # a task that cannot fit a worker: refused, nothing written
    cfg = in_process_if_faster(cfg, obs, budget)
    if cfg.output.apply_primary_beam:  # a beam that cannot be modelled: refused before any work
        log.info("primary beam: %s", load_primary_beam(cfg.read.ms, wcs).describe())
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
    if store.clear_scratch():  # a killed run's tasks left them; none of this run's is out yet
        log.info("removed the scratch arrays an interrupted run left in %s", cfg.output.store_path)
    _prepare_reordered(cfg, meta, store)
    kept = store_progress(store, 0 if cfg.dirty_only else cfg.deconv.total_cycles)
    _put_fits_mask(cfg, store, wcs)
    if kept.started:
        log.info("resuming from %s: %s", cfg.output.store_path, kept.describe())
    groups = channel_groups(len(meta.freq_hz), cfg.grid.channels_out)
    with open_runner(cfg) as runner:
        device = "cpu" if cfg.dirty_only else _task_device_name(cfg, runner)
        rim = "" if cfg.dirty_only else f"; RIM on {device}, weights {_weights_name(cfg)}"
        log.info("tasks run on %s%s", runner.describe(), rim)
        ctx = TaskContext(cfg.output.store_path.resolve(), runner.threads, device)
        schedule = Schedule(_for_workers(cfg), store, groups, runner, ctx, on_tiles)
        on_plan(schedule.total_units)
        on_tiles(schedule.done_units())
        schedule.run()
        peaks = runner.peak_memory()
        jobs = runner.batch_jobs()
    totals = schedule.totals
    result = RunResult(
        store=cfg.output.store_path,
        nonfinite=totals.nonfinite,
        tiles_gridded=totals.tiles_gridded,
        tiles_deconvolved=totals.tiles_deconvolved,
        tiles_skipped=totals.tiles_skipped,
        residuals_computed=len(schedule.records),
        cycles=schedule.records,
    )
    if result.nonfinite:
        log.warning("flagged %d NaN/inf visibilities", result.nonfinite)
        store.update_stats(nonfinite_flagged=result.nonfinite)
    if not np.any(store.array("sumwt")[...] > 0):
        raise InputError(f"all data flagged in {meta.path} for the selected field/spw/channels")
    written = perf_counter()
    names = ("dirty", "psf") if cfg.makes_psf else ("dirty",)
    if not cfg.dirty_only:
        names += ("model", "residual", "image")
    result.products = write_products(store, cfg, names)
    if store.drop_reordered():
        log.info("removed the reordered visibilities from %s", cfg.output.store_path)
    result.summary = {
        "scheduler": runner.describe(),
        "workers": runner.n_workers,
        "threads_per_worker": runner.threads,
        "wall_s": perf_counter() - start,
        "task_s": totals.task_s,
        "write_s": perf_counter() - written,
        "tiles_gridded": result.tiles_gridded,
        "tiles_deconvolved": result.tiles_deconvolved,
        "tiles_skipped": result.tiles_skipped,
        "residuals_computed": result.residuals_computed,
        "major_cycles": 0 if cfg.dirty_only else cfg.deconv.major_cycles,
        "polish_cycles": 0 if cfg.dirty_only else cfg.deconv.polish_cycles,
        "channels": len(groups),
        "peak_rss_bytes": peaks,
        "driver_peak_rss_bytes": peak_rss_bytes(),
        "batch_jobs": jobs,
    }
    store.record_run(result.summary)
    _log_summary(result.summary)
    return result


def _prepare_reordered(cfg: RunConfig, meta: MSMeta, store: RunStore) -> None:
    """Give the store its reordered-visibility arrays when the run reorders
    (:mod:`skarim.imaging.reorder`); remove any a run left when it does not."""
    if not cfg.reorders:
        if store.drop_reordered():
            log.info("removed the reordered visibilities a run left (--no-reorder)")
        return
    nchan = len(meta.freq_hz)
    store.add_reordered(meta.nrow, nchan, read_step(meta, cfg.read), cfg.grid.double_precision)
    size = gathered_bytes(meta.nrow, nchan, "double" if cfg.grid.double_precision else "single")
    log.info(
        "reordering: Stokes I and imaging weights of %d rows x %d channels (%.0f MiB) kept in "
        "the store for the major cycles, removed at the end (--no-reorder: read the "
        "Measurement Set each cycle)", meta.nrow, nchan, size / 2**20,
    )  # fmt: skip


def _check_deconvolver(cfg: RunConfig) -> None:
    """Fail on unusable RIM weights, or a device this machine lacks, before any gridding."""
    import torch

    from skarim.deconv.device import select_device
    from skarim.deconv.weights import cached_rim
    from skarim.deconv.weights_id import run_weights_path

    d = cfg.deconv
    weights = run_weights_path(d)
    terms = cached_rim(weights, torch.device("cpu")).config.terms
    if terms > 1 and not (d.join_channels and d.fit_spectral_pol == terms):
        raise WeightsError(
            f"RIM weights {weights} have {terms} spectral terms: they deconvolve joined "
            f"channels, with --join-channels --fit-spectral-pol {terms}"
        )
    if cfg.cluster.kind in (ClusterKind.sync, ClusterKind.local) and cfg.cluster.scheduler is None:
        select_device(cfg.deconv.device)  # this machine runs the tasks


def _weights_name(cfg: RunConfig) -> str:
    """The run's RIM weights for its log: the shipped file's name, or the path it was given."""
    from skarim.deconv.weights_id import run_weights_path

    path = run_weights_path(cfg.deconv)
    return f"{path.name} (shipped)" if cfg.deconv.weights is None else str(path)


def _task_device_name(cfg: RunConfig, runner: TaskRunner) -> str:
    """``cpu`` or ``cuda`` for the RIM tasks: ``auto`` takes the GPUs the workers offer."""
    from skarim.deconv.device import select_device

    return select_device(cfg.deconv.device, gpus=runner.gpus).device.type


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
        "%d tile pass(es) deconvolved (%d skipped on empty tiles), %d residual(s) "
        "over %d RIM and %d polish cycle(s); peak memory per worker %.0f-%.0f MiB, driver "
        "%.0f MiB",
        s["wall_s"], s["scheduler"], task, s["write_s"], s["tiles_gridded"],
        s["tiles_deconvolved"], s["tiles_skipped"], s["residuals_computed"], s["major_cycles"],
        s["polish_cycles"],
        min(peaks) / 2**20, max(peaks) / 2**20, s["driver_peak_rss_bytes"] / 2**20,
    )  # fmt: skip
    if s["batch_jobs"]:
        log.info("workers ran in batch job(s) %s", ", ".join(s["batch_jobs"]))
