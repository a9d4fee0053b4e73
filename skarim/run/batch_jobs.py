"""Which batch job each worker of a run ran in, for the run's summary.

:class:`BatchJobRecorder`, a worker plugin registered on every cluster
(:func:`skarim.run.cluster.open_cluster`), logs the SLURM or PBS job each worker runs in (the
scheduler keeps the events, also for the workers of jobs that replace others), and
:func:`batch_jobs` reads them back. Imported only where a Dask cluster runs: a run in this
process never imports ``distributed``.
"""

from __future__ import annotations

from typing import Any

from distributed import WorkerPlugin

from skarim.run.jobqueue import this_batch_job

__all__ = ["BATCH_JOB_TOPIC", "BatchJobRecorder", "batch_jobs"]

#: Scheduler event topic under which workers name their batch job.
BATCH_JOB_TOPIC = "skarim-batch-job"


class BatchJobRecorder(WorkerPlugin):
    """Logs the batch job of each worker that joins (scheduler event :data:`BATCH_JOB_TOPIC`).

    Registered by :func:`skarim.run.cluster.open_cluster` on every cluster: the scheduler
    runs it on its workers and on every worker that joins later, so a replaced job's
    successor is recorded too.
    """

    name = BATCH_JOB_TOPIC

    def setup(self, worker: Any) -> None:
        """Log ``{"job": id, "worker": address}`` when the worker runs inside a batch job."""
        job = this_batch_job()
        if job is not None:
            worker.log_event(BATCH_JOB_TOPIC, {"job": job, "worker": worker.address})


def batch_jobs(client: Any) -> list[str]:
    """Ids of the batch jobs whose workers joined ``client``'s scheduler, in order of joining.

    Empty when no worker ran inside a batch job (a local cluster outside SLURM or PBS).
    """
    jobs = [msg["job"] for _, msg in client.get_events(BATCH_JOB_TOPIC)]
    return list(dict.fromkeys(jobs))
