"""The plan of a run before it starts: tasks, memory per task, I/O, storage and time per stage.

:func:`plan_budget` is a pure function (no I/O) of the run's :class:`~skarim.config.RunConfig`,
the counts of its visibilities (:class:`~skarim.run.observation.Observation`), its workers
(:class:`~skarim.run.workers.WorkerPlan`) and the machine's :class:`~skarim.run.costs.Costs`.
It returns a :class:`RunBudget` of four stages, as :mod:`skarim.run.schedule` runs them:

- ``grid``: one task per batch of output channels and share of its facets
  (:func:`skarim.run.tasks.grid_task`; a batch's facets are shared out when there are fewer
  batches than workers, :func:`skarim.imaging.plan.facet_shares`);
- ``tile passes``: per major cycle, one task per channel and block of tile rows (joined
  channels: one per block, the RIM run once on the MFS; the spectral fit is not counted);
- ``residuals``: per major cycle, one exact-residual task per batch and share;
- ``products``: the FITS files, written by the driver.

A task's memory is its process (:attr:`Costs.worker_bytes` in a Dask worker, with
:attr:`Costs.worker_torch_bytes` when it deconvolves; :attr:`Costs.process_bytes` for the
driver and for ``--scheduler sync``, where one process runs everything) plus the arrays it
holds at its peak, sized as the code allocates them (:mod:`skarim.run.stage_memory`).
Time is counted in single-thread seconds of work (``cpu_s``, per run or per major cycle)
and spread over the workers and their threads
(:attr:`~skarim.run.costs.Costs.thread_efficiency`) for the wall time; reading a
Measurement Set takes one thread. Deconvolution time assumes that a fraction ``busy`` of
the tiles is deconvolved in every cycle (1: all, an upper bound: the RIM skips quiet tiles)
and that every cycle runs (a channel may converge sooner).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from skarim.config import ClusterKind, RunConfig
from skarim.io.ms_read import gathered_bytes
from skarim.run.costs import Costs
from skarim.run.observation import Observation
from skarim.run.stage_memory import DUCC_SUPPORT, Layout, stage_arrays
from skarim.run.workers import WorkerPlan

__all__ = ["POLISH_ITERATIONS", "StageBudget", "RunBudget", "plan_budget"]

POLISH_ITERATIONS = 100
"""Hogbom minor iterations assumed per polished window (the residual is near the noise)."""


@dataclass(frozen=True)
class StageBudget:
    """One stage of a run.

    Attributes
    ----------
    name : str
        ``grid``, ``tile passes``, ``residuals`` or ``products``.
    process : str
        ``worker`` or ``driver``: where its tasks run (``worker`` for all with ``sync``).
    tasks : int
        Tasks of the stage, per run (grid, products) or per major cycle.
    per_cycle : bool
        Whether ``tasks``, ``vis_read_bytes``, ``cpu_s``, ``gpu_s`` and ``wall_s`` are per
        major cycle.
    memory_bytes : int
        Peak resident memory of a process running one of its tasks, bytes.
    arrays : tuple of (str, int)
        What makes up ``memory_bytes`` at that peak: the process and the arrays, bytes.
    vis_read_bytes : int
        Bytes read from the Measurement Set (whole cells) and from scratch arrays.
    cpu_s, gpu_s : float
        Work on one CPU thread and on one GPU, seconds.
    wall_s : float
        Wall time with the run's workers, seconds.
    """

    name: str
    process: str
    tasks: int
    per_cycle: bool
    memory_bytes: int
    arrays: tuple[tuple[str, int], ...]
    vis_read_bytes: int
    cpu_s: float
    gpu_s: float
    wall_s: float


@dataclass(frozen=True)
class RunBudget:
    """The plan of a run (:func:`plan_budget`).

    Attributes
    ----------
    stages : tuple of StageBudget
        ``grid``, ``tile passes`` (absent for dirty-only runs), ``residuals`` (likewise),
        ``products``.
    workers, threads : int
        Worker processes and threads per task.
    gpus : bool
        Whether the RIM runs on GPUs.
    limit_bytes : int
        Memory of a worker process, bytes (0: not known).
    cycles : int
        Major cycles, the RIM's and the polish's.
    residuals : int
        Exact residuals per channel: one per cycle, and one after pruning.
    store_bytes, fits_bytes : int
        The Zarr store (uncompressed, at most) and the FITS products, bytes.
    wall_s : float
        The run's wall time, seconds.
    notes : tuple of str
        What the plan assumed.
    """

    stages: tuple[StageBudget, ...]
    workers: int
    threads: int
    gpus: bool
    limit_bytes: int
    cycles: int
    residuals: int
    store_bytes: int
    fits_bytes: int
    wall_s: float
    notes: tuple[str, ...]

    @property
    def worker_bytes(self) -> int:
        """The largest memory of a worker task, bytes."""
        return max(s.memory_bytes for s in self.stages if s.process == "worker")

    @property
    def driver_bytes(self) -> int:
        """The driver's peak (the products'), bytes; 0 when the driver is a worker (sync)."""
        return max((s.memory_bytes for s in self.stages if s.process == "driver"), default=0)

    def cycle_hours(self, key: str) -> float:
        """``cpu`` or ``gpu`` hours of one major cycle of the RIM (its tile passes and residual)."""
        return sum(getattr(s, f"{key}_s") for s in self.stages if s.per_cycle) / 3600


def plan_budget(
    cfg: RunConfig,
    obs: Observation,
    plan: WorkerPlan,
    n_workers: int,
    costs: Costs,
    *,
    busy: float = 1.0,
    rim_steps: int = 10,
) -> RunBudget:
    """Plan a run: each stage's tasks, memory per task, visibility I/O, work and wall time.

    Parameters
    ----------
    cfg : RunConfig
        The run.
    obs : Observation
        Its visibilities, counted.
    plan : WorkerPlan
        A worker's threads, memory and GPUs (:func:`skarim.run.cluster.run_plan`).
    n_workers : int
        Workers of the run.
    costs : Costs
        The machine's costs.
    busy : float
        Fraction of the tiles deconvolved in each cycle, 0 to 1.
    rim_steps : int
        Steps of the RIM (its weights' ``RIMConfig.steps``).

    Returns
    -------
    RunBudget
    """
    sync = cfg.cluster.kind is ClusterKind.sync
    gpus = plan.gpus_per_worker > 0 and not cfg.dirty_only
    lay = Layout.of(cfg, obs, n_workers, reuse_held=sync or n_workers == 1)
    arrays = stage_arrays(cfg, lay, costs, sync=sync, gpu=gpus)
    threads = plan.threads_per_worker
    speedup = 1 + (threads - 1) * costs.thread_efficiency  # of a task's threads
    work = _Work(cfg, lay, costs)
    cycles = 0 if cfg.dirty_only else cfg.deconv.total_cycles
    prune = not cfg.dirty_only and cfg.deconv.prune_sigma > 0
    residuals = cycles + int(prune)

    grid_cpu, grid_read, grid_io = work.grid()
    tile_cpu, tile_gpu, polish_cpu = work.tiles(busy, rim_steps, gpus)
    res_cpu, res_read, res_io = work.residuals()
    products_cpu = work.products()
    waves = lambda tasks: math.ceil(tasks / n_workers)  # noqa: E731 - rounds of tasks
    # reading the MS takes one thread whatever the task has; the rest runs on its threads
    shared = lay.batches * lay.shares  # grid and residual tasks
    grid_wall = waves(shared) * (grid_read + (grid_cpu - grid_read) / speedup) / shared
    blocks = (1 if cfg.deconv.join_channels else lay.channels) * lay.row_blocks
    tile_wall = waves(blocks) * (tile_cpu / speedup + tile_gpu) / blocks
    res_wall = waves(shared) * (res_read + (res_cpu - res_read) / speedup) / shared
    polish_wall = waves(blocks) * polish_cpu / blocks / speedup
    start = costs.run_s + (0.0 if sync or cfg.cluster.scheduler else costs.cluster_start_s)
    rim_cycles = 0 if cfg.dirty_only else cfg.deconv.major_cycles
    wall = start + grid_wall + products_cpu + residuals * res_wall
    wall += rim_cycles * tile_wall + (cycles - rim_cycles) * polish_wall

    where = "worker" if sync else "driver"
    stages = [_stage("grid", "worker", shared, False, arrays["grid"], grid_io, grid_cpu,
                     0.0, grid_wall)]  # fmt: skip
    if cycles:
        stages += [
            _stage("tile passes", "worker", blocks, True, arrays["tile passes"], 0,
                   tile_cpu, tile_gpu, tile_wall),
            _stage("residuals", "worker", shared, True, arrays["residuals"], res_io,
                   res_cpu, 0.0, res_wall),
        ]  # fmt: skip
    stages.append(_stage("products", where, 1, False, arrays["products"], 0, products_cpu,
                         0.0, products_cpu))  # fmt: skip
    return RunBudget(
        stages=tuple(stages),
        workers=n_workers,
        threads=threads,
        gpus=gpus,
        limit_bytes=plan.memory_per_worker,
        cycles=cycles,
        residuals=residuals,
        store_bytes=lay.store_bytes(cfg.dirty_only),
        fits_bytes=lay.fits_bytes(cfg.dirty_only),
        wall_s=wall,
        notes=tuple(_notes(cfg, costs, busy, gpus, obs)),
    )


def _stage(name: str, process: str, tasks: int, per_cycle: bool, arrays: dict[str, int],
           io: float, cpu: float, gpu: float, wall: float) -> StageBudget:  # fmt: skip
    parts = tuple((k, int(v)) for k, v in arrays.items() if v > 0)
    return StageBudget(name, process, tasks, per_cycle, sum(v for _, v in parts), parts,
                       int(io), cpu, gpu, wall)  # fmt: skip


def _notes(cfg: RunConfig, costs: Costs, busy: float, gpus: bool, obs: Observation) -> list[str]:
    notes = [f"costs: {costs.machine} ({costs.measured})"]
    if cfg.reorders:
        precision = "double" if cfg.grid.double_precision else "single"
        reordered = gathered_bytes(obs.rows, obs.channels, precision)
        notes.append(
            f"reordering (none with --no-reorder): the store also holds the Stokes I and "
            f"imaging weights of every selected visibility, {reordered / 2**30:.3g} GiB, until "
            "the run completes; the residuals' reads are costed as reads of the Measurement Set"
        )
    if not cfg.dirty_only:
        notes.append(
            f"deconvolution assumes {busy:.0%} of the tiles worked on in every cycle and "
            f"{POLISH_ITERATIONS} Hogbom iterations per polished window; every cycle runs"
        )
    if not math.isclose(cfg.grid.epsilon, costs.epsilon):
        notes.append(f"gridding costs were measured at epsilon {costs.epsilon:g}")
    if gpus and costs.rim_gpu_pixel_step_s == 0:
        notes.append("no GPU was measured: GPU time is unknown (skarim plan --calibrate on one)")
    return notes


class _Work:
    """Single-thread seconds of work and bytes read, per stage."""

    def __init__(self, cfg: RunConfig, lay: Layout, costs: Costs) -> None:
        self.cfg, self.lay, self.c = cfg, lay, costs
        self.natural = cfg.grid.weighting.value == "natural"
        self.double = 2.0 if cfg.grid.double_precision else 1.0

    def _ducc(self, nvis: float, pixels: float, planes: float) -> float:
        """One ducc0 call: gridding or degridding ``nvis`` visibilities on ``pixels``."""
        c = self.c
        return self.double * (c.ducc_vis_s * nvis + c.ducc_pixel_s * pixels * planes / DUCC_SUPPORT)

    def _passes(self, held: bool) -> tuple[float, float]:
        """Seconds and bytes of the reads of one batch: its shares' weighting and facet passes."""
        lay = self.lay
        reads = lay.shares if held else len(lay.facets) + (0 if self.natural else lay.shares)
        nbytes = reads * lay.ms_bytes
        return nbytes * self.c.read_byte_s, nbytes

    def _facet_passes(self, predict: bool) -> float:
        """Per channel: imaging every facet (and each share predicting every facet), with the
        imaging weights each share computes."""
        lay, c = self.lay, self.c
        vis = lay.group_vis
        per_facet = sum(self._ducc(vis, px, planes) for px, planes in lay.facets)
        weights = len(lay.facets) * vis * c.weights_vis_s
        weighting = 0.0 if self.natural else lay.shares * vis * c.weights_vis_s
        return per_facet * (1 + lay.shares if predict else 1) + weights + weighting

    def grid(self) -> tuple[float, float, float]:
        """Work, the part of it reading, and bytes read, of all grid tasks."""
        lay, c = self.lay, self.c
        read_s, nbytes = self._passes(lay.held)
        psf = self._ducc(lay.group_vis, (2 * lay.tile) ** 2, DUCC_SUPPORT)
        chan = self._facet_passes(False) + psf + lay.pixels * c.store_pixel_s
        reading = lay.batches * read_s
        return reading + lay.channels * chan, reading, lay.batches * nbytes

    def tiles(self, busy: float, steps: int, gpu: bool) -> tuple[float, float, float]:
        """CPU and GPU work of a RIM cycle's tile passes, CPU work of a polish cycle's."""
        lay, c = self.lay, self.c
        win = lay.tiles * lay.window**2
        io = lay.tiles * (2 * lay.window**2 + lay.tile**2) * c.store_pixel_s
        rim = busy * win * steps
        cpu = io + (0.0 if gpu else rim * c.rim_pixel_step_s)
        gpu_s = rim * c.rim_gpu_pixel_step_s if gpu else 0.0
        clean = busy * win * POLISH_ITERATIONS * c.hogbom_pixel_iteration_s
        if self.cfg.deconv.join_channels:  # one RIM on the MFS; every channel read and written
            d = min(self.cfg.deconv.deconvolution_channels or lay.channels, lay.channels)
            rim_cpu = cpu - io
            return lay.channels * io + rim_cpu, gpu_s, lay.channels * io + d * clean
        return lay.channels * cpu, lay.channels * gpu_s, lay.channels * (io + clean)

    def residuals(self) -> tuple[float, float, float]:
        """Work, the part of it reading, and bytes read, of one cycle's exact residuals."""
        lay, c = self.lay, self.c
        read_s, nbytes = self._passes(lay.held)
        if lay.reuse_held:  # the batch gridded or last residual-ed in this process is held
            read_s = nbytes = 0.0
        scratch = lay.scratch_bytes * len(lay.facets)  # each share's first pass writes it
        chan = self._facet_passes(True) + 4 * lay.pixels * c.store_pixel_s
        reading = lay.batches * (read_s + scratch * c.read_byte_s)
        return reading + lay.channels * chan, reading, lay.batches * (nbytes + scratch)

    def products(self) -> float:
        """The driver's work on the FITS files: every product's planes, MFS planes."""
        lay, c = self.lay, self.c
        names = 2 if self.cfg.dirty_only else 5
        plane = lay.pixels * c.fits_pixel_s
        restore = 0.0 if self.cfg.dirty_only else lay.pixels * c.restore_pixel_s
        per_chan = (names - 1) * plane + restore
        mfs = (names - 1) * lay.pixels * (c.fits_pixel_s + lay.channels * c.store_pixel_s)
        return lay.channels * per_chan + (mfs + restore if lay.channels > 1 else 0.0)
