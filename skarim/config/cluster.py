"""Where and how wide a run executes: never part of the store's fingerprint."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import model_validator

from skarim.config.stages import _Frozen

__all__ = ["ClusterKind", "ClusterConfig"]


class ClusterKind(StrEnum):
    """Where the tasks of a run execute."""

    sync = "sync"  # in this process, one task after another, no Dask (debugging)
    local = "local"  # a Dask LocalCluster of worker processes sized to this machine
    slurm = "slurm"  # Dask workers in SLURM jobs (dask-jobqueue)
    pbs = "pbs"  # Dask workers in PBS jobs (dask-jobqueue)


class ClusterConfig(_Frozen):
    """Where and how wide a run executes; never part of the store's fingerprint.

    Attributes
    ----------
    kind : ClusterKind
        ``local`` (default), ``sync``, ``slurm`` or ``pbs``.
    scheduler : str or None
        Address of a running Dask scheduler (``tcp://host:8786``) to join instead of
        starting a cluster; only with ``kind`` local.
    cluster_config : Path or None
        Job recipe (``pipelines/slurm.yaml``) for ``slurm`` and ``pbs``.
    n_workers : int or None
        Worker processes of a local cluster; None sizes it to the machine.
    threads_per_worker : int or None
        Threads each task hands to ducc0 and torch (``--threads``), under every scheduler;
        None: the machine's cores divided among the workers (local), the job's cores among
        its processes (slurm, pbs), 1 (joined scheduler, sync).
    """

    kind: ClusterKind = ClusterKind.local
    scheduler: str | None = None
    cluster_config: Path | None = None
    n_workers: int | None = None
    threads_per_worker: int | None = None

    @model_validator(mode="after")
    def _check(self) -> ClusterConfig:
        for name in ("n_workers", "threads_per_worker"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        jobqueue = self.kind in (ClusterKind.slurm, ClusterKind.pbs)
        if jobqueue and self.cluster_config is None:
            raise ValueError(f"--cluster {self.kind} needs --cluster-config pipelines/<site>.yaml")
        if not jobqueue and self.cluster_config is not None:
            raise ValueError("--cluster-config is only used with --cluster slurm or pbs")
        if self.scheduler is not None and self.kind is not ClusterKind.local:
            raise ValueError(f"--scheduler ADDRESS joins a running cluster; not with {self.kind}")
        return self
