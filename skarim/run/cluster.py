"""Where a run's tasks execute: the worker plan of a run and the Dask cluster it connects to.

:func:`run_plan` gives a run's workers (this machine, a joined scheduler, or batch jobs);
:func:`open_cluster` turns a :class:`~skarim.config.RunConfig` into a connected
:class:`distributed.Client`, as a context manager: a ``LocalCluster`` of worker processes
sized to this machine (the default), a running scheduler joined by address
(``--scheduler tcp://host:8786``), or SLURM/PBS jobs started by dask-jobqueue from a recipe
(``--cluster slurm --cluster-config pipelines/slurm.yaml``). Every cluster's workers log the
batch job they run in (:class:`~skarim.run.batch_jobs.BatchJobRecorder`) for the run's summary.

Inside a SLURM job (a whole run submitted with ``pipelines/slurm-run.sbatch``) the local
cluster is sized to the job's CPUs and memory, not the node's.
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
from skarim.run.signals import WORKER_PRELOAD
from skarim.run.workers import NANNY_PRELOAD, WorkerPlan, plan_workers

__all__ = ["run_plan", "open_cluster"]

log = logging.getLogger("skarim")


def _machine(count_gpus: bool = True) -> tuple[int, int, int]:
    """Cores, memory (bytes) and GPUs of this machine, or of the SLURM job this process is in.

    A job's share comes from ``SLURM_CPUS_ON_NODE`` and ``SLURM_MEM_PER_NODE`` (MiB) or
    ``SLURM_MEM_PER_CPU`` (MiB per CPU): a node's other jobs keep theirs. GPUs are counted
    by torch, which a run that needs none (``count_gpus`` False) does not import: 0 then.
    """
    cores = len(os.sched_getaffinity(0))
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")  # psutil's total, sans import
    env = os.environ
    cores = min(cores, int(env.get("SLURM_CPUS_ON_NODE", cores)))
    if "SLURM_MEM_PER_NODE" in env:
        memory = min(memory, int(env["SLURM_MEM_PER_NODE"]) * 2**20)
    elif "SLURM_MEM_PER_CPU" in env:
        memory = min(memory, int(env["SLURM_MEM_PER_CPU"]) * 2**20 * cores)
    if not count_gpus:
        return cores, memory, 0
    import torch

    return cores, memory, torch.cuda.device_count()


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
    cores, memory, gpus = _machine(count_gpus=device != "cpu")
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
        For ``sync``, which runs without Dask, or when the cluster cannot start, the
        scheduler cannot be reached, or its workers cannot import skarim.
    """
    from distributed import Client

    from skarim.run.batch_jobs import BatchJobRecorder

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
        _check_workers(client)  # before anything of skarim is sent to them
        client.register_plugin(BatchJobRecorder())
        yield client


def _check_workers(client: Any) -> None:
    """Raise unless every connected worker can import skarim's tasks.

    A worker that cannot (another environment, a broken install) would drop every task it is
    sent, and the run would wait for ever. ``exec`` is sent rather than a function of skarim,
    which such a worker could not even unpickle.
    """
    try:
        client.run(exec, "import skarim.run.tasks")
    except Exception as exc:  # whatever the worker's import raised, re-raised here by Dask
        raise InputError(
            f"the Dask workers cannot import skarim's tasks ({type(exc).__name__}: {exc}); "
            "they must run the same skarim as this process"
        ) from None


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
            preload=[WORKER_PRELOAD],  # Ctrl-C stops the run, which stops its workers
        )
    recipe = load_recipe(cl.cluster_config)
    cluster = jobqueue_cluster(cl.kind, recipe, _plan_device(cfg), cl.threads_per_worker)
    cluster.adapt(minimum_jobs=recipe.min_jobs, maximum_jobs=recipe.max_jobs)
    log.info("%s job script:\n%s", cl.kind, cluster.job_script())
    return cluster
