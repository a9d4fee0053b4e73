"""Worker processes: how a machine or a batch job is divided into them, and their setup.

:func:`plan_workers` is a pure function from a machine (or a batch job) to worker processes,
threads per worker, memory per worker and GPU resources. Every Dask worker runs one task at a
time; the task gets its thread count as an argument and hands it to ducc0 and torch. No
environment variable is set; one that Dask sets is removed (:func:`dask_setup`, loaded by
every worker's nanny).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from skarim.errors import InputError

__all__ = ["MIN_WORKER_MEMORY", "NANNY_PRELOAD", "WorkerPlan", "plan_workers", "dask_setup"]

#: Least memory a worker process is planned with, bytes: a tile batch of the RIM, a facet
#: accumulator and a read chunk fit in it at the default sizes.
MIN_WORKER_MEMORY = 2 * 2**30

#: Loaded by every worker's nanny (``--preload-nanny``) to run :func:`dask_setup`.
NANNY_PRELOAD = "skarim.run.workers"


def dask_setup(nanny: Any) -> None:
    """Nanny preload: start the worker without Dask's ``MALLOC_TRIM_THRESHOLD_``.

    Dask's nanny puts ``MALLOC_TRIM_THRESHOLD_=65536`` in its worker's environment so that
    freed memory goes back to the OS sooner. Any explicit value turns off glibc's adaptive
    mmap threshold, and the RIM's tensors are then mapped and unmapped at every step, which
    costs CPU time on every tile batch. skarim's tasks keep their memory bounded
    by the tile batch, so the worker starts with glibc's defaults instead.
    """
    nanny.pre_spawn_env.pop("MALLOC_TRIM_THRESHOLD_", None)  # the process starts without it
    nanny.env.pop("MALLOC_TRIM_THRESHOLD_", None)  # and it is not set once it runs


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
