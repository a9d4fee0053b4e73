"""SLURM and PBS clusters through dask-jobqueue: job recipes and the cluster they start.

A recipe (``pipelines/slurm.yaml``, ``pipelines/pbs.yaml``) books one batch job's cores,
memory, walltime and GPUs; :func:`jobqueue_cluster` divides each job into worker processes
with :func:`skarim.run.workers.plan_workers` and starts the scheduler of the cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from dask.utils import parse_bytes
from pydantic import BaseModel, ConfigDict, ValidationError

from skarim.config import ClusterKind
from skarim.errors import InputError, input_error
from skarim.run.workers import NANNY_PRELOAD, WorkerPlan, plan_workers

__all__ = ["JobRecipe", "load_recipe", "recipe_plan", "jobqueue_cluster"]


class JobRecipe(BaseModel):
    """One batch job of a SLURM or PBS cluster (``pipelines/slurm.yaml``, ``pbs.yaml``).

    Attributes
    ----------
    cores : int
        CPU cores booked per job.
    memory : str
        Memory booked per job (``"64GiB"``).
    walltime : str
        Wall-clock limit per job, ``HH:MM:SS``.
    queue : str or None
        Partition (SLURM) or queue (PBS).
    account : str or None
        Account or project charged.
    gpus : int
        GPUs booked per job (``--gres=gpu:N`` on SLURM, ``ngpus=N`` on PBS).
    processes : int or None
        Worker processes per job; None plans them with :func:`plan_workers`.
    min_jobs, max_jobs : int
        Bounds of adaptive scaling.
    job_extra_directives : list of str
        Further scheduler directives, verbatim.
    job_script_prologue : list of str
        Shell lines run before the worker starts (``module load``, environment activation).
    local_directory : str or None
        Worker scratch directory on the compute node.
    interface : str or None
        Network interface of the workers (``ib0``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    cores: int
    memory: str
    walltime: str
    queue: str | None = None
    account: str | None = None
    gpus: int = 0
    processes: int | None = None
    min_jobs: int = 1
    max_jobs: int = 1
    job_extra_directives: list[str] = []
    job_script_prologue: list[str] = []
    local_directory: str | None = None
    interface: str | None = None

    @property
    def memory_bytes(self) -> int:
        """Memory per job, bytes."""
        return int(parse_bytes(self.memory))


def load_recipe(path: Path) -> JobRecipe:
    """Read a job recipe from YAML.

    Raises
    ------
    InputError
        If the file cannot be read or a field is missing or invalid.
    """
    try:
        data = yaml.safe_load(Path(path).read_text())
        recipe = JobRecipe.model_validate(data)
        if recipe.min_jobs < 0 or recipe.max_jobs < max(recipe.min_jobs, 1):
            raise ValueError("need 0 <= min_jobs <= max_jobs and max_jobs >= 1")
        recipe.memory_bytes  # noqa: B018 - parse the memory now, not at cluster start
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read cluster config {path}: {exc}") from None
    except ValidationError as exc:
        raise input_error(exc, f"cluster config {path}:") from None
    except ValueError as exc:
        raise InputError(f"cluster config {path}: {exc}") from None
    return recipe


def recipe_plan(
    recipe: JobRecipe, device: str, threads_per_worker: int | None = None
) -> WorkerPlan:
    """The worker processes of one job of ``recipe`` for the RIM on ``device``.

    ``threads_per_worker`` (``--threads``) overrides the job's cores shared among its
    processes.
    """
    return plan_workers(
        recipe.cores,
        recipe.memory_bytes,
        recipe.gpus,
        device,
        n_workers=recipe.processes,
        threads_per_worker=threads_per_worker,
    )


def jobqueue_cluster(  # noqa: ANN201
    kind: ClusterKind,
    recipe: JobRecipe,
    device: str = "auto",
    threads_per_worker: int | None = None,
):
    """Start the scheduler of a SLURM or PBS cluster whose jobs follow ``recipe``.

    ``device`` (``cpu``, ``cuda``, ``auto``) decides with the recipe's GPUs how each job is
    divided into workers (:func:`skarim.run.workers.plan_workers`).

    No job is submitted until the cluster is scaled (:func:`skarim.run.cluster.open_cluster`
    makes it adaptive between ``min_jobs`` and ``max_jobs``); ``cluster.job_script()`` shows
    what would be.
    Each worker runs one task at a time (Dask ``cores = processes``) while the job books
    ``recipe.cores`` cores; tasks get the cores of their process as threads.

    Returns
    -------
    dask_jobqueue.SLURMCluster or dask_jobqueue.PBSCluster
    """
    plan = recipe_plan(recipe, device, threads_per_worker)
    common: dict[str, Any] = {
        "cores": plan.processes,
        "processes": plan.processes,
        "memory": recipe.memory,
        "walltime": recipe.walltime,
        "queue": recipe.queue,
        "account": recipe.account,
        "job_script_prologue": list(recipe.job_script_prologue),
        "local_directory": recipe.local_directory,
        "interface": recipe.interface,
        "worker_extra_args": [f"--preload-nanny={NANNY_PRELOAD}"]
        + ([f"--resources=GPU={plan.gpus_per_worker}"] if plan.gpus_per_worker else []),
    }
    extra = list(recipe.job_extra_directives)
    if kind is ClusterKind.slurm:
        from dask_jobqueue import SLURMCluster

        gres = [f"--gres=gpu:{recipe.gpus}"] if recipe.gpus else []
        return SLURMCluster(**common, job_cpu=recipe.cores, job_extra_directives=extra + gres)
    if kind is ClusterKind.pbs:
        from dask_jobqueue import PBSCluster
        from dask_jobqueue.pbs import pbs_format_bytes_ceil

        spec = f"select=1:ncpus={recipe.cores}:mem={pbs_format_bytes_ceil(recipe.memory_bytes)}"
        spec += f":ngpus={recipe.gpus}" if recipe.gpus else ""
        return PBSCluster(**common, resource_spec=spec, job_extra_directives=extra)
    raise InputError(f"no job queue for cluster kind {kind}; choose slurm or pbs")
