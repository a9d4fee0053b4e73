"""Where a run's tasks execute: the worker plan of a run and the Dask cluster it connects to.

:func:`run_plan` gives a run's workers (this machine, a joined scheduler, or batch jobs);
:func:`open_cluster` turns a :class:`~skarim.config.RunConfig` into a connected
:class:`distributed.Client`, as a context manager: a ``LocalCluster`` of worker processes
sized to this machine (the default), a running scheduler joined by address
(``--scheduler tcp://host:8786``), or SLURM/PBS jobs started by dask-jobqueue from a recipe
(``--cluster slurm --cluster-config pipelines/slurm.yaml``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from skarim.config import ClusterKind, RunConfig
from skarim.errors import InputError
from skarim.run.jobqueue import jobqueue_cluster, load_recipe, recipe_plan
from skarim.run.workers import NANNY_PRELOAD, WorkerPlan, plan_workers

__all__ = ["run_plan", "open_cluster"]

log = logging.getLogger("skarim")


def _machine() -> tuple[int, int, int]:
    """Cores, memory (bytes) and GPUs of this machine."""
    import psutil
    import torch

    return len(os.sched_getaffinity(0)), psutil.virtual_memory().total, torch.cuda.device_count()


def _plan_device(cfg: RunConfig) -> str:
    """The device workers are planned for: a dirty-only run needs no GPU."""
    return "cpu" if cfg.dirty_only else cfg.deconv.device.value


def run_plan(cfg: RunConfig) -> tuple[WorkerPlan, int]:
    """The per-worker plan of a run and the most workers it will have.

    For ``local`` and ``sync`` this is this machine; for ``slurm``/``pbs`` one job of the
    recipe times ``max_jobs``; for a joined scheduler only ``threads_per_worker`` (default 1)
    is known here, and the worker count is read from the scheduler by
    :func:`skarim.run.runner.open_runner`.
    """
    cl = cfg.cluster
    device = _plan_device(cfg)
    if cl.kind in (ClusterKind.slurm, ClusterKind.pbs):
        recipe = load_recipe(cl.cluster_config)
        plan = recipe_plan(recipe, device, cl.threads_per_worker)
        return plan, plan.processes * recipe.max_jobs
    if cl.kind is ClusterKind.sync:
        return WorkerPlan(1, cl.threads_per_worker or 1, 0), 1
    if cl.scheduler is not None:
        return WorkerPlan(1, cl.threads_per_worker or 1, 0), 1
    cores, memory, gpus = _machine()
    plan = plan_workers(
        cores,
        memory,
        gpus,
        device,
        n_workers=cl.n_workers,
        threads_per_worker=cl.threads_per_worker,
    )
    return plan, plan.processes


@contextmanager
def open_cluster(cfg: RunConfig) -> Iterator[Any]:
    """Connect to the Dask cluster the run asks for; closes what it started on exit.

    Parameters
    ----------
    cfg : RunConfig
        ``cfg.cluster`` picks the cluster: ``local`` (a ``LocalCluster`` of
        :func:`run_plan`'s processes, or the scheduler at ``scheduler``), ``slurm`` or ``pbs``
        (dask-jobqueue, adaptive between the recipe's ``min_jobs`` and ``max_jobs``).

    Yields
    ------
    distributed.Client

    Raises
    ------
    InputError
        For ``sync``, which runs without Dask, or when the cluster cannot start or the
        scheduler cannot be reached.
    """
    from distributed import Client

    cl = cfg.cluster
    if cl.kind is ClusterKind.sync:
        raise InputError("the sync scheduler runs in this process: there is no cluster to open")
    with ExitStack() as stack:
        try:
            if cl.scheduler is not None:
                client = stack.enter_context(Client(cl.scheduler, timeout="30s"))
            else:
                stack.enter_context(cluster := _start_cluster(cfg))
                client = stack.enter_context(Client(cluster))
        except OSError as exc:  # the scheduler is unreachable, or a port or file is missing
            where = cl.scheduler or f"a {cl.kind} cluster"
            raise InputError(f"cannot start or reach {where}: {exc}") from exc
        yield client


def _start_cluster(cfg: RunConfig):  # noqa: ANN202 - a distributed or dask-jobqueue cluster
    from distributed import LocalCluster

    cl = cfg.cluster
    if cl.kind is ClusterKind.local:
        plan, _ = run_plan(cfg)
        return LocalCluster(
            n_workers=plan.processes,
            threads_per_worker=1,
            processes=True,
            memory_limit=plan.memory_per_worker,
            resources=plan.resources or None,
            preload_nanny=[NANNY_PRELOAD],
        )
    recipe = load_recipe(cl.cluster_config)
    cluster = jobqueue_cluster(cl.kind, recipe, _plan_device(cfg), cl.threads_per_worker)
    cluster.adapt(minimum_jobs=recipe.min_jobs, maximum_jobs=recipe.max_jobs)
    log.info("%s job script:\n%s", cl.kind, cluster.job_script())
    return cluster
