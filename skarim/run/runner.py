"""The pipeline's view of where tasks run: a :class:`TaskRunner` over Dask or this process.

:func:`open_runner` hands the scheduler a runner over a Dask client (:func:`open_cluster`)
or, for ``--scheduler sync``, over this process alone. Tasks are retried when they raise or
their worker dies: they are idempotent.

A task whose workers keep dying (Dask's ``KilledWorker``) ends the run with one line. On
``KeyboardInterrupt`` the tasks still out are cancelled and Dask's warnings silenced while the
cluster closes; the cluster's start is never cut in the middle
(:func:`skarim.run.signals.shielded`).
"""

from __future__ import annotations

import logging
import resource
import sys
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any, Protocol

from skarim.config import ClusterKind, RunConfig
from skarim.errors import InputError
from skarim.run.cluster import open_cluster, run_plan
from skarim.run.jobqueue import this_batch_job
from skarim.run.signals import shielded

__all__ = ["TASK_RETRIES", "TaskRunner", "open_runner", "peak_rss_bytes"]

log = logging.getLogger("skarim")

#: Retries of a task that raised or whose worker died; tasks are idempotent.
TASK_RETRIES = 2


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
        self, tag: Hashable, fn: Callable[..., Any], *args: Any, gpu: bool, priority: int
    ) -> None:
        """Queue ``fn(*args)``; its result comes back from :meth:`completed` with ``tag``."""

    def completed(self) -> Iterator[tuple[Hashable, Any]]:
        """Results as tasks finish, including tasks submitted while iterating."""

    def peak_memory(self) -> dict[str, int]:
        """Peak resident memory of each worker process, bytes."""

    def batch_jobs(self) -> list[str]:
        """Ids of the SLURM or PBS jobs the tasks ran in (empty outside a batch system)."""

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
        self.n_workers = 1
        self.threads = threads
        self._done: deque[tuple[Hashable, Any]] = deque()

    @property
    def gpus(self) -> bool:  # type: ignore[override]  # asked only of a run that deconvolves
        import torch

        return torch.cuda.is_available()

    def submit(
        self, tag: Hashable, fn: Callable[..., Any], *args: Any, gpu: bool, priority: int
    ) -> None:
        self._done.append((tag, fn(*args)))

    def completed(self) -> Iterator[tuple[Hashable, Any]]:
        while self._done:
            yield self._done.popleft()

    def peak_memory(self) -> dict[str, int]:
        return {"local": peak_rss_bytes()}

    def batch_jobs(self) -> list[str]:
        job = this_batch_job()
        return [job] if job else []

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
        self._futures: dict[str, Any] = {}  # key -> the future of a task still out
        self._pending = as_completed()

    def submit(
        self, tag: Hashable, fn: Callable[..., Any], *args: Any, gpu: bool, priority: int
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
        self._futures[future.key] = future
        self._pending.add(future)

    def completed(self) -> Iterator[tuple[Hashable, Any]]:
        from distributed import KilledWorker

        for future in self._pending:
            del self._futures[future.key]
            tag = self._tags.pop(future.key)
            try:
                result = future.result()
            except KilledWorker:
                raise InputError(
                    f"the workers running task {tag} died {TASK_RETRIES + 1} times "
                    "(out of memory, or a crash: see the workers' log above)"
                ) from None
            yield tag, result

    def stop(self) -> None:
        """Cancel the tasks still out and silence the warnings of the cluster's closing."""
        logging.getLogger("distributed").setLevel(logging.ERROR)
        with suppress(Exception):  # a scheduler already gone has nothing left to cancel
            self.client.cancel(list(self._futures.values()))

    def peak_memory(self) -> dict[str, int]:
        return self.client.run(peak_rss_bytes)

    def batch_jobs(self) -> list[str]:
        from skarim.run.batch_jobs import batch_jobs

        return batch_jobs(self.client)

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
    with ExitStack() as stack:
        with shielded():  # a cluster cut in the middle of its start would leave processes behind
            client = stack.enter_context(open_cluster(cfg))
        log.info("Dask dashboard: %s", client.dashboard_link)
        workers = client.scheduler_info()["workers"].values()
        gpus = plan.gpus_per_worker > 0 or any("GPU" in w.get("resources", {}) for w in workers)
        if cfg.cluster.scheduler is not None:
            n_workers = max(1, len(workers))
        runner = _DaskRunner(client, plan.threads_per_worker, n_workers, gpus)
        try:
            yield runner
        except KeyboardInterrupt:
            runner.stop()
            raise
