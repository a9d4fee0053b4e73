"""SLURM and PBS clusters through dask-jobqueue: job recipes, the cluster they start, job ids.

A recipe (``pipelines/slurm.yaml``, ``pipelines/pbs.yaml``) books one batch job's cores,
memory, walltime and GPUs; :func:`jobqueue_cluster` divides each job into worker processes
with :func:`skarim.run.workers.plan_workers` and starts the scheduler of the cluster.

Walltime: each worker retires on its own before its job's walltime (Dask's ``--lifetime``,
staggered so that the jobs of a cluster do not all end at once); its running task goes to
another worker and the adaptive cluster submits a new job in its place. A job killed outright
(``scancel``, a node failure, a walltime reached anyway) loses its worker: its tasks are
retried elsewhere and the job is replaced the same way.

Which batch job each worker ran in is recorded by :mod:`skarim.run.batch_jobs`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from skarim.config import ClusterKind
from skarim.errors import InputError, input_error
from skarim.run.workers import NANNY_PRELOAD, WorkerPlan, plan_workers

__all__ = [
    "WORKER_JOB_NAME",
    "JobRecipe",
    "jobqueue_cluster",
    "load_recipe",
    "recipe_plan",
    "this_batch_job",
]

#: Name of the worker jobs in the queue (``squeue``, ``qstat``).
WORKER_JOB_NAME = "skarim-worker"

#: Default worker lifetime and its stagger, as fractions of the walltime.
LIFETIME_FRACTION, STAGGER_FRACTION = 0.9, 0.05

_WALLTIME = re.compile(r"^(?:(\d+)-)?(\d+):(\d\d):(\d\d)$")


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
    log_directory : str or None
        Directory of the jobs' output files (``-o``/``-e``); None: the batch system's default
        (``slurm-<id>.out`` in the directory the run starts in, for SLURM).
    interface : str or None
        Network interface of the workers (``ib0``).
    lifetime : str or None
        How long each worker serves before it retires and its job is replaced (``"3h"``,
        ``"20s"``); None: 90% of the walltime.
    lifetime_stagger : str or None
        Random spread of ``lifetime``, plus or minus; None: 5% of the walltime.
        ``lifetime + lifetime_stagger`` must fall inside the walltime.
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
    log_directory: str | None = None
    interface: str | None = None
    lifetime: str | None = None
    lifetime_stagger: str | None = None

    @property
    def memory_bytes(self) -> int:
        """Memory per job, bytes."""
        from dask.utils import parse_bytes  # dask loads only for batch-job recipes

        return int(parse_bytes(self.memory))

    @property
    def walltime_s(self) -> int:
        """Wall-clock limit per job, seconds (``[D-]HH:MM:SS``)."""
        match = _WALLTIME.match(self.walltime)
        if match is None:
            raise ValueError(f"walltime {self.walltime!r} is not [D-]HH:MM:SS")
        days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
        return ((days * 24 + hours) * 60 + minutes) * 60 + seconds

    @property
    def lifetime_s(self) -> tuple[float, float]:
        """Worker lifetime and its stagger, seconds: the recipe's, or fractions of the walltime."""
        wall = self.walltime_s
        life = wall * LIFETIME_FRACTION if self.lifetime is None else self.lifetime
        stagger = (
            wall * STAGGER_FRACTION if self.lifetime_stagger is None else self.lifetime_stagger
        )
        from dask.utils import parse_timedelta

        life_s, stagger_s = float(parse_timedelta(life)), float(parse_timedelta(stagger))
        if life_s <= 0 or stagger_s < 0 or life_s + stagger_s >= wall:
            raise ValueError(
                f"lifetime {life_s:g} s plus stagger {stagger_s:g} s must be positive and end "
                f"before the walltime ({wall} s)"
            )
        return life_s, stagger_s


def load_recipe(path: Path) -> JobRecipe:
    """Read a job recipe from YAML.

    Raises
    ------
    InputError
        If the file cannot be read or a field is missing or invalid.
    """
    import yaml  # only with a cluster recipe: 0.03 s of every run otherwise

    try:
        data = yaml.safe_load(Path(path).read_text())
        recipe = JobRecipe.model_validate(data)
        if recipe.min_jobs < 0 or recipe.max_jobs < max(recipe.min_jobs, 1):
            raise ValueError("need 0 <= min_jobs <= max_jobs and max_jobs >= 1")
        recipe.memory_bytes  # noqa: B018 - parse the memory now, not at cluster start
        recipe.lifetime_s  # noqa: B018 - and the walltime and worker lifetime
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
    ``recipe.cores`` cores; tasks get the cores of their process as threads. Workers retire
    after the recipe's ``lifetime`` (:attr:`JobRecipe.lifetime_s`), before the walltime.

    Returns
    -------
    dask_jobqueue.SLURMCluster or dask_jobqueue.PBSCluster
    """
    plan = recipe_plan(recipe, device, threads_per_worker)
    lifetime_s, stagger_s = recipe.lifetime_s
    common: dict[str, Any] = {
        "job_name": WORKER_JOB_NAME,
        "cores": plan.processes,
        "processes": plan.processes,
        "memory": recipe.memory,
        "walltime": recipe.walltime,
        "queue": recipe.queue,
        "account": recipe.account,
        "job_script_prologue": list(recipe.job_script_prologue),
        "local_directory": recipe.local_directory,
        "log_directory": recipe.log_directory,
        "interface": recipe.interface,
        "worker_extra_args": [f"--preload-nanny={NANNY_PRELOAD}"]
        + [f"--lifetime={lifetime_s:.0f}s", f"--lifetime-stagger={stagger_s:.0f}s"]
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


def this_batch_job() -> str | None:
    """The SLURM or PBS job this process runs in, or None outside a batch job."""
    return os.environ.get("SLURM_JOB_ID") or os.environ.get("PBS_JOBID")
