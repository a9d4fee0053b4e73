"""The pre-flight check of a run: refused in one line when a task cannot fit a worker's memory.

:func:`preflight` plans the run (:func:`skarim.run.budget.plan_budget`) from its
Measurement Set's counts, its workers (:func:`skarim.run.cluster.run_plan`) and the
machine's costs (:func:`skarim.run.costs.load_costs`) before the store is created and
before anything large is allocated. When a stage's task would need more than a worker may
hold (:func:`task_limit`), the run is refused with an :class:`~skarim.errors.InputError`
naming the task, its memory and its largest arrays, the limit, and what to change so that it
fits: ``--facet-pix``, the channels gridded together (``grid.memory_budget_mb``), the read
chunk (``read.chunk_mb``), ``--tile`` or ``--workers``, each change tried on the same model
and given with the memory it leaves. :func:`in_process_if_faster` then runs a small job in
this process when the same plan says a local cluster would not pay for its start.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import replace

from skarim.config import ClusterKind, RunConfig
from skarim.errors import InputError
from skarim.io.wcs import horizon_npix
from skarim.run.budget import RunBudget, StageBudget, plan_budget
from skarim.run.costs import Costs, load_costs
from skarim.run.observation import Observation
from skarim.run.workers import WorkerPlan

__all__ = [
    "DASK_TERMINATE",
    "HORIZON_SLACK",
    "SMALL_JOB_S",
    "check_field",
    "gib",
    "in_process_if_faster",
    "preflight",
    "refusal",
    "rim_steps",
    "task_limit",
]

log = logging.getLogger("skarim")

#: A job planned to take longer than this in one process, seconds, keeps its workers (their
#: memory limits, and an interrupt that need not wait for a ducc0 or torch call).
SMALL_JOB_S = 60.0

#: How far an image's axes may reach beyond the horizon (an all-sky image is padded a little).
HORIZON_SLACK = 1.1

DASK_TERMINATE = 0.95
"""Fraction of its memory limit at which Dask's nanny ends a worker process."""


def gib(nbytes: float) -> str:
    """Bytes as ``12.3 GiB`` (or MiB below a GiB)."""
    return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.0f} MiB"


def task_limit(cfg: RunConfig, plan: WorkerPlan) -> int:
    """Bytes a task may reach: a worker's limit (95% for Dask), this machine's memory for
    ``sync``; 0 where it is not known here (a joined scheduler)."""
    if plan.memory_per_worker:
        return int(plan.memory_per_worker * DASK_TERMINATE)
    if cfg.cluster.kind is ClusterKind.sync:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return 0


def rim_steps(cfg: RunConfig) -> int:
    """Steps of the run's RIM (its weights' configuration); 0 for a dirty-only run."""
    if cfg.dirty_only:
        return 0
    import torch

    from skarim.deconv.weights import cached_rim
    from skarim.deconv.weights_id import run_weights_path

    return cached_rim(run_weights_path(cfg.deconv), torch.device("cpu")).config.steps


def preflight(cfg: RunConfig, obs: Observation, costs: Costs | None = None) -> RunBudget | None:
    """Plan the run and refuse it if a task cannot fit a worker's memory.

    Parameters
    ----------
    cfg : RunConfig
        The run.
    obs : Observation
        The counts of its selection (:func:`skarim.run.observation.observation_of_ms`).
    costs : Costs, optional
        The machine's costs; default :func:`skarim.run.costs.load_costs`.

    Returns
    -------
    RunBudget or None
        The plan; None where the workers' memory is not known here.

    Raises
    ------
    InputError
        One line: the task that does not fit and what to change.
    """
    from skarim.run.cluster import run_plan

    plan, n_workers = run_plan(cfg)
    limit = task_limit(cfg, plan)
    if not limit:
        return None
    costs = costs or load_costs()
    steps = rim_steps(cfg)
    budget = plan_budget(cfg, obs, plan, n_workers, costs, rim_steps=steps)
    message = refusal(cfg, obs, plan, n_workers, costs, budget, limit, steps)
    if message:
        raise InputError(message)
    return budget


def check_field(cfg: RunConfig) -> None:
    """Refuse an image whose axes reach far beyond the horizon: those pixels hold no sky.

    Raises
    ------
    InputError
        Naming the field, the horizon's and the size that would reach it.
    """
    g = cfg.grid
    side = max(g.npix_x, g.npix_y)
    reach = side / 2 * g.cell_rad  # direction cosine of the axes' ends
    if reach > HORIZON_SLACK:
        fit = horizon_npix(g.cell_rad)
        raise InputError(
            f"the image reaches l = {reach:.2f} along its axes ({side} pixels of "
            f"{math.degrees(g.cell_rad) * 3600:.3g} arcsec), beyond the horizon at l = 1: "
            f"--size {fit} covers the whole sky at that --scale"
        )


def in_process_if_faster(cfg: RunConfig, obs: Observation, budget: RunBudget | None) -> RunConfig:
    """The run in this process (``sync``, every core to each task) when the plan says a
    local cluster would not pay for its start; ``cfg`` as it is otherwise.

    Only a local cluster the user did not size (no ``--workers``, ``--scheduler`` or
    ``--cluster``), without GPUs and planned under :data:`SMALL_JOB_S` in one process is
    replaced: small jobs then take about as long as gridding them does. ``budget`` is
    :func:`preflight`'s plan of the run as configured.
    """
    cl = cfg.cluster
    if budget is None or cl.kind is not ClusterKind.local or cl.scheduler or cl.n_workers:
        return cfg
    if budget.gpus or budget.workers < 2:
        return cfg
    cores = budget.workers * budget.threads
    sync = cfg.model_copy(
        update={
            "cluster": cl.model_copy(update={"kind": ClusterKind.sync, "threads_per_worker": cores})
        }
    )
    plan = WorkerPlan(1, cores, 0)
    steps = rim_steps(cfg)
    alone = plan_budget(sync, obs, plan, 1, load_costs(), rim_steps=steps)
    if alone.wall_s >= min(budget.wall_s, SMALL_JOB_S):
        return cfg
    log.info(
        "a small job: it runs in this process (planned %.0f s, against %.0f s on a local "
        "cluster of %d workers; --workers N starts one)",
        alone.wall_s, budget.wall_s, budget.workers,
    )  # fmt: skip
    return sync


def refusal(
    cfg: RunConfig,
    obs: Observation,
    plan: WorkerPlan,
    n_workers: int,
    costs: Costs,
    budget: RunBudget,
    limit: int,
    steps: int = 10,
) -> str | None:
    """One line saying which task does not fit ``limit`` bytes and what would; None if all fit."""
    over = [s for s in budget.stages if s.memory_bytes > limit]
    if not over:
        return None
    stage = max(over, key=lambda s: s.memory_bytes)
    fixes: dict[str, str] = {}  # the first change of each kind that fits
    for kind, flag, (new_cfg, new_plan, new_n) in _changes(cfg, plan, n_workers):
        if kind in fixes:
            continue
        trial = plan_budget(new_cfg, obs, new_plan, new_n, costs, rim_steps=steps)
        worst = max(s.memory_bytes for s in trial.stages)
        scale = new_plan.memory_per_worker / plan.memory_per_worker if plan.memory_per_worker else 1
        if worst <= limit * scale:
            fixes[kind] = f"{flag} ({gib(worst)})"
    what = (
        "; change " + " or ".join(fixes.values())
        if fixes
        else "; no smaller facet, batch, chunk or tile, nor fewer workers, fits"
    )
    return (
        f"a {stage.name} task needs {gib(stage.memory_bytes)} ({_largest(stage)}) but a worker "
        f"may hold {gib(limit)}{what}"
    )


def _largest(stage: StageBudget) -> str:
    parts = sorted(stage.arrays, key=lambda p: -p[1])[:2]
    return ", ".join(f"{name} {gib(n)}" for name, n in parts)


def _changes(
    cfg: RunConfig, plan: WorkerPlan, n_workers: int
) -> Iterator[tuple[str, str, tuple[RunConfig, WorkerPlan, int]]]:
    """Smaller facets, batches, chunks and tiles, then fewer workers: (kind, flag, change)."""
    g, r = cfg.grid, cfg.read

    def grid(**update: int) -> RunConfig:
        return cfg.model_copy(update={"grid": g.model_copy(update=update)})

    same = (plan, n_workers)
    facet = (g.facet_pix // 2) // g.tile * g.tile
    while facet >= g.tile:
        yield "facet", f"--facet-pix {facet}", (grid(facet_pix=facet), *same)
        facet = (facet // 2) // g.tile * g.tile
    if g.channels_out > 1:
        one = "grid.memory_budget_mb: 1 (one channel per batch)"
        yield "batch", one, (grid(memory_budget_mb=1), *same)
    chunk = r.chunk_mb // 2
    while chunk >= 16 and r.chunk_rows is None:
        read = r.model_copy(update={"chunk_mb": chunk})
        yield "chunk", f"read.chunk_mb: {chunk}", (cfg.model_copy(update={"read": read}), *same)
        chunk //= 2
    tile = g.tile // 2
    while tile >= 64:
        yield "tile", f"--tile {tile}", (grid(tile=tile, facet_pix=max(g.facet_pix, tile)), *same)
        tile //= 2
    local = cfg.cluster.kind is ClusterKind.local and cfg.cluster.scheduler is None
    for n in range(n_workers - 1, 0, -1) if local else ():
        memory = plan.memory_per_worker * n_workers // n
        change = (cfg, replace(plan, processes=n, memory_per_worker=memory), n)
        yield "workers", f"--workers {n}", change
