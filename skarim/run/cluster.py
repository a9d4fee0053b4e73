"""Where a run's tasks execute: worker planning, Dask clusters, and the in-process runner.

:func:`plan_workers` is a pure function from a machine (or a batch job) to worker processes,
threads per worker, memory per worker and GPU resources. :func:`open_cluster` turns a
:class:`~skarim.config.RunConfig` into a connected :class:`distributed.Client`, as a context
manager: a ``LocalCluster`` of worker processes sized to this machine (the default), a running
scheduler joined by address (``--scheduler tcp://host:8786``), or SLURM/PBS jobs started by
dask-jobqueue from a recipe (``--cluster slurm --cluster-config pipelines/slurm.yaml``).
:func:`open_runner` hands the pipeline a :class:`TaskRunner` over either a Dask client or,
for ``--scheduler sync``, this process alone.

Every Dask worker runs one task at a time; the task gets its thread count as an argument
(``threads_per_worker``) and hands it to ducc0 (``GridConfig.nthreads``) and torch
(``torch.set_num_threads``). No environment variable is set; one that Dask sets is removed
(:func:`dask_setup`).
"""

from __future__ import annotations

import logging
import os
import resource
import sys
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml
from dask.utils import parse_bytes
from pydantic import BaseModel, ConfigDict, ValidationError

from skarim.config import ClusterKind, RunConfig
from skarim.errors import InputError

__all__ = [
    "MIN_WORKER_MEMORY",
    "WorkerPlan",
    "plan_workers",
    "JobRecipe",
    "load_recipe",
    "jobqueue_cluster",
    "run_plan",
    "open_cluster",
    "TaskRunner",
    "open_runner",
    "peak_rss_bytes",
    "dask_setup",
]

log = logging.getLogger("skarim")

#: Least memory a worker process is planned with, bytes: a tile batch of the RIM, a facet
#: accumulator and a read chunk fit in it at the default sizes.
MIN_WORKER_MEMORY = 2 * 2**30

#: Retries of a task that raised or whose worker died; tasks are idempotent.
TASK_RETRIES = 2

#: Loaded by every worker's nanny (``--preload-nanny``) to run :func:`dask_setup`.
NANNY_PRELOAD = "skarim.run.cluster"


def dask_setup(nanny: Any) -> None:
    """Nanny preload: start the worker without Dask's ``MALLOC_TRIM_THRESHOLD_``.

    Dask's nanny puts ``MALLOC_TRIM_THRESHOLD_=65536`` in its worker's environment so that
    freed memory goes back to the OS sooner. Any explicit value turns off glibc's adaptive
    mmap threshold, and the RIM's tensors are then mapped and unmapped at every step:
    measured, twice the CPU time per tile batch. skarim's tasks keep their memory bounded
    by the tile batch, so the worker starts with glibc's defaults instead.
    """
    nanny.pre_spawn_env.pop("MALLOC_TRIM_THRESHOLD_", None)


@dataclass(frozen=True)
class WorkerPlan:
    """Worker processes of a machine or a batch job.

    Attributes
    ----------
    processes : int
        Worker processes; each runs one task at a time.
    threads_per_worker : int
        Threads a task hands to ducc0 and torch.
    memory_per_worker : int
        Memory limit of a worker process, bytes (0: not known here, or not limited).
    gpus_per_worker : int
        GPUs a worker offers as the Dask resource ``GPU`` (0 or 1).
    """

    processes: int
    threads_per_worker: int
    memory_per_worker: int
    gpus_per_worker: int = 0

    @property
    def resources(self) -> dict[str, int]:
        """Dask worker resources (``{"GPU": 1}`` on a GPU worker, else empty)."""
        return {"GPU": self.gpus_per_worker} if self.gpus_per_worker else {}


def plan_workers(
    n_cores: int,
    memory_bytes: int,
    n_gpus: int = 0,
    device: str = "cpu",
    *,
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
) -> WorkerPlan:
    """Divide a machine (or one batch job) into worker processes.

    Without GPUs (or with ``device`` cpu) there is one single-threaded process per core,
    fewer when memory would leave a process under :data:`MIN_WORKER_MEMORY`, the spare cores
    going to threads. With GPUs and ``device`` cuda or auto there is one process per GPU,
    each with the GPU as resource ``GPU=1`` and an equal share of the cores.

    Parameters
    ----------
    n_cores : int
        CPU cores.
    memory_bytes : int
        Memory, bytes.
    n_gpus : int
        GPUs.
    device : str
        ``cpu``, ``cuda`` or ``auto`` (the GPUs when there are any).
    n_workers, threads_per_worker : int, optional
        Fix the processes or the threads instead of deriving them.

    Returns
    -------
    WorkerPlan

    Raises
    ------
    InputError
        If a count is below 1.

    Examples
    --------
    >>> plan_workers(16, 64 * 2**30)
    WorkerPlan(processes=16, threads_per_worker=1, memory_per_worker=4294967296, gpus_per_worker=0)
    >>> plan_workers(8, 4 * 2**30)  # memory, not cores, bounds the processes
    WorkerPlan(processes=2, threads_per_worker=4, memory_per_worker=2147483648, gpus_per_worker=0)
    >>> plan_workers(16, 128 * 2**30, n_gpus=2, device="auto")
    WorkerPlan(processes=2, threads_per_worker=8, memory_per_worker=68719476736, gpus_per_worker=1)
    >>> plan_workers(16, 128 * 2**30, n_gpus=2, device="cpu", threads_per_worker=4)
    WorkerPlan(processes=4, threads_per_worker=4, memory_per_worker=34359738368, gpus_per_worker=0)
    """
    if n_cores < 1 or memory_bytes < 1 or n_gpus < 0:
        raise InputError(f"cannot plan workers on {n_cores} cores, {memory_bytes} bytes")
    for name, value in (("workers", n_workers), ("threads per worker", threads_per_worker)):
        if value is not None and value < 1:
            raise InputError(f"{name} must be >= 1, got {value}")
    device = getattr(device, "value", device)
    use_gpu = n_gpus > 0 and device in ("cuda", "auto")
    if n_workers is not None:
        processes = n_workers
    elif use_gpu:
        processes = n_gpus
    else:
        by_cores = n_cores // (threads_per_worker or 1)
        processes = max(1, min(by_cores, memory_bytes // MIN_WORKER_MEMORY))
    threads = threads_per_worker or max(1, n_cores // processes)
    return WorkerPlan(processes, threads, memory_bytes // processes, int(use_gpu))


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
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise InputError(f"cluster config {path}: {where}: {err['msg']}") from None
    except ValueError as exc:
        raise InputError(f"cluster config {path}: {exc}") from None
    return recipe


def _recipe_plan(recipe: JobRecipe, device: str) -> WorkerPlan:
    return plan_workers(
        recipe.cores, recipe.memory_bytes, recipe.gpus, device, n_workers=recipe.processes
    )


def jobqueue_cluster(kind: ClusterKind, recipe: JobRecipe, device: str = "auto"):  # noqa: ANN201
    """Start the scheduler of a SLURM or PBS cluster whose jobs follow ``recipe``.

    ``device`` (``cpu``, ``cuda``, ``auto``) decides with the recipe's GPUs how each job is
    divided into workers (:func:`plan_workers`).

    No job is submitted until the cluster is scaled (:func:`open_cluster` makes it adaptive
    between ``min_jobs`` and ``max_jobs``); ``cluster.job_script()`` shows what would be.
    Each worker runs one task at a time (Dask ``cores = processes``) while the job books
    ``recipe.cores`` cores; tasks get the cores of their process as threads.

    Returns
    -------
    dask_jobqueue.SLURMCluster or dask_jobqueue.PBSCluster
    """
    plan = _recipe_plan(recipe, device)
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
    is known here, and the worker count is read from the scheduler by :func:`open_runner`.
    """
    cl = cfg.cluster
    device = _plan_device(cfg)
    if cl.kind in (ClusterKind.slurm, ClusterKind.pbs):
        recipe = load_recipe(cl.cluster_config)
        plan = _recipe_plan(recipe, device)
        return plan, plan.processes * recipe.max_jobs
    if cl.kind is ClusterKind.sync:
        return WorkerPlan(1, cl.threads_per_worker or cfg.grid.nthreads, 0), 1
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
    cluster = jobqueue_cluster(cl.kind, recipe, _plan_device(cfg))
    cluster.adapt(minimum_jobs=recipe.min_jobs, maximum_jobs=recipe.max_jobs)
    log.info("%s job script:\n%s", cl.kind, cluster.job_script())
    return cluster


class TaskRunner(Protocol):
    """Runs the pipeline's tasks: ``submit`` them, then take results as they finish.

    Attributes
    ----------
    n_workers : int
        Workers tasks are spread over (the pipeline sizes its tile batches by it).
    threads : int
        Threads each task is handed.
    gpus : bool
        Whether workers offer GPUs (the Dask resource ``GPU``).
    """

    n_workers: int
    threads: int
    gpus: bool

    def submit(
        self, tag: Hashable, fn: Callable[..., dict], *args: Any, gpu: bool, priority: int
    ) -> None:
        """Queue ``fn(*args)``; its result comes back from :meth:`completed` with ``tag``."""

    def completed(self) -> Iterator[tuple[Hashable, dict]]:
        """Results as tasks finish, including tasks submitted while iterating."""

    def peak_memory(self) -> dict[str, int]:
        """Peak resident memory of each worker process, bytes."""

    def describe(self) -> str:
        """Where tasks run, for the log."""


def peak_rss_bytes() -> int:
    """Peak resident memory of this process, bytes.

    ``VmHWM`` from ``/proc/self/status`` where there is one: ``ru_maxrss`` survives ``fork``
    and ``exec`` on Linux, so a worker process would report its parent's peak.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, else KiB


class _SyncRunner:
    """Runs each task in this process when it is submitted (``--scheduler sync``)."""

    def __init__(self, threads: int) -> None:
        import torch

        self.n_workers = 1
        self.threads = threads
        self.gpus = torch.cuda.is_available()
        self._done: deque[tuple[Hashable, dict]] = deque()

    def submit(
        self, tag: Hashable, fn: Callable[..., dict], *args: Any, gpu: bool, priority: int
    ) -> None:
        self._done.append((tag, fn(*args)))

    def completed(self) -> Iterator[tuple[Hashable, dict]]:
        while self._done:
            yield self._done.popleft()

    def peak_memory(self) -> dict[str, int]:
        return {"local": peak_rss_bytes()}

    def describe(self) -> str:
        return f"this process (sync), {self.threads} thread(s)"


class _DaskRunner:
    """Submits tasks to a Dask cluster, with retries; GPU tasks ask for ``GPU=1``."""

    def __init__(self, client: Any, threads: int, n_workers: int, gpus: bool) -> None:
        from distributed import as_completed

        self.client = client
        self.threads = threads
        self.n_workers = n_workers
        self.gpus = gpus
        self._tags: dict[str, Hashable] = {}
        self._pending = as_completed()

    def submit(
        self, tag: Hashable, fn: Callable[..., dict], *args: Any, gpu: bool, priority: int
    ) -> None:
        future = self.client.submit(
            fn,
            *args,
            pure=False,
            retries=TASK_RETRIES,
            priority=priority,
            resources={"GPU": 1} if gpu else None,
        )
        self._tags[future.key] = tag
        self._pending.add(future)

    def completed(self) -> Iterator[tuple[Hashable, dict]]:
        for future in self._pending:
            yield self._tags.pop(future.key), future.result()

    def peak_memory(self) -> dict[str, int]:
        return self.client.run(peak_rss_bytes)

    def describe(self) -> str:
        return f"{self.n_workers} Dask worker(s), {self.threads} thread(s) each"


@contextmanager
def open_runner(cfg: RunConfig) -> Iterator[TaskRunner]:
    """The :class:`TaskRunner` of a run: in this process for ``sync``, else on Dask.

    Logs the Dask dashboard's address.
    """
    plan, n_workers = run_plan(cfg)
    if cfg.cluster.kind is ClusterKind.sync:
        yield _SyncRunner(plan.threads_per_worker)
        return
    with open_cluster(cfg) as client:
        log.info("Dask dashboard: %s", client.dashboard_link)
        workers = client.scheduler_info()["workers"].values()
        gpus = plan.gpus_per_worker > 0 or any("GPU" in w.get("resources", {}) for w in workers)
        if cfg.cluster.scheduler is not None:
            n_workers = max(1, len(workers))
        yield _DaskRunner(client, plan.threads_per_worker, n_workers, gpus)
