"""The worker tasks of a run: every function the scheduler submits, and what each returns.

A task takes a :class:`TaskContext` (the store, the threads it may use, the device of the
RIM) and the run's :class:`~skarim.config.RunConfig`; it opens the store by path, writes only
its own (channel, tile) region and progress markers, and returns a small frozen result. Tasks
are idempotent: a task retried after its worker died redoes at most what it had not marked.

- :func:`grid_task`: grid a share of the facets of a batch of output channels
  (:func:`skarim.imaging.grid.grid_channels`);
- :func:`tile_pass_task`: one major cycle's pass (RIM or polish) over a block of tile rows of
  one channel (:func:`skarim.deconv.passes.deconvolve_rows`);
- :func:`joined_pass_task`: one major cycle's joined pass over a block of tile rows of every
  channel holding data (:func:`skarim.deconv.joined.deconvolve_joined_rows`);
- :func:`residual_share_task`: a share of the facets of a batch's exact residuals, when a
  large channel's facets are shared out between workers
  (:func:`skarim.imaging.residual.residual_facets`);
- :func:`finish_cycle_task`: a batch's exact residuals (or the sums the shares returned) and
  the accept/refuse decision of one major cycle
  (:func:`skarim.deconv.major_cycle.finish_cycle`); on a Dask worker, the residuals of the
  channels it prunes are recomputed by :func:`residual_part_task` s that it submits itself,
  one per worker.

Threads are handed to ducc0 and torch as arguments: no environment variable is set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Literal

import numpy as np

from skarim.config import RunConfig
from skarim.imaging.grid import grid_channels
from skarim.imaging.plan import ChannelGroup, FacetShare
from skarim.io.store import RunStore

if TYPE_CHECKING:
    from skarim.deconv.major_cycle import ChannelCycleStats
    from skarim.imaging.residual import ResidualSums

__all__ = [
    "TaskContext",
    "GridTaskResult",
    "TilePassResult",
    "ResidualShareResult",
    "ResidualPartResult",
    "CycleTaskResult",
    "grid_task",
    "tile_pass_task",
    "joined_pass_task",
    "residual_share_task",
    "finish_cycle_task",
    "residual_part_task",
]


@dataclass(frozen=True)
class ResidualPartResult:
    """What :func:`residual_part_task` did: ``rms`` (Jy/beam) and ``flux`` (Jy) per channel,
    in order, and its seconds."""

    stats: tuple[dict[str, float], ...]
    seconds: float


@dataclass(frozen=True)
class TaskContext:
    """Where a task writes and what it may use.

    Attributes
    ----------
    store_path : Path
        The run's Zarr store (absolute: workers may run elsewhere).
    threads : int
        Threads the task hands to ducc0 and torch.
    device : {"cpu", "cuda"}
        Where the RIM runs; ``cuda`` takes this worker's GPU
        (:func:`skarim.deconv.device.select_device`).
    """

    store_path: Path
    threads: int = 1
    device: Literal["cpu", "cuda"] = "cpu"


@dataclass(frozen=True)
class GridTaskResult:
    """What :func:`grid_task` did: ``tiles`` written, ``nonfinite`` visibilities dropped."""

    tiles: int
    nonfinite: int
    seconds: float


@dataclass(frozen=True)
class TilePassResult:
    """What :func:`tile_pass_task` did: ``tiles`` written, of those ``skipped`` (left as they
    were: nothing above the RIM's or the polish's threshold)."""

    tiles: int
    skipped: int
    seconds: float


@dataclass(frozen=True)
class ResidualShareResult:
    """What :func:`residual_share_task` did: the sums of the residuals it wrote."""

    sums: tuple[ResidualSums, ...]
    seconds: float


@dataclass(frozen=True)
class CycleTaskResult:
    """What :func:`finish_cycle_task` did: one entry per channel it finished (maybe none)."""

    channels: tuple[ChannelCycleStats, ...]
    seconds: float


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _worker_name() -> str | None:
    """Name of the Dask worker running this task; None outside one (the sync scheduler)."""
    from distributed import get_worker

    try:
        return str(get_worker().name)
    except ValueError:
        return None


def grid_task(
    ctx: TaskContext, cfg: RunConfig, groups: list[ChannelGroup], share: FacetShare
) -> GridTaskResult:
    """Grid a share of the facets of a batch of output channels; facets done are skipped."""
    start = perf_counter()
    store = RunStore.open(ctx.store_path, mode="r+")
    written: list[int] = []
    stats = grid_channels(store, cfg.read, cfg.grid, groups, ctx.threads, written.append, share)
    return GridTaskResult(sum(written), stats["nonfinite"], perf_counter() - start)


def tile_pass_task(
    ctx: TaskContext, cfg: RunConfig, chan: int, cycle: int, rows: range, sigma: float
) -> TilePassResult:
    """Pass ``cycle`` (RIM or polish) over tile rows ``rows`` of channel ``chan``.

    ``sigma`` is the channel's noise for this cycle, Jy/beam
    (:func:`skarim.deconv.noise.channel_sigma`). Tiles already at ``cycle`` are left out.
    """
    from skarim.deconv.device import select_device
    from skarim.deconv.passes import deconvolve_rows

    start = perf_counter()
    store = RunStore.open(ctx.store_path, mode="r+")
    device = select_device(ctx.device, cfg.deconv.precision, worker=_worker_name())
    with _torch_threads(ctx.threads):
        written, skipped = deconvolve_rows(store, cfg, chan, cycle, rows, sigma, device)
    return TilePassResult(written, skipped, perf_counter() - start)


def joined_pass_task(
    ctx: TaskContext, cfg: RunConfig, cycle: int, rows: range, sigmas: tuple[float, ...]
) -> TilePassResult:
    """Joined pass ``cycle`` over tile rows ``rows`` of every channel holding data.

    ``sigmas`` are those channels' noise for this cycle, Jy/beam, in channel order
    (:func:`skarim.deconv.joined.joined_channels`). Tiles already at ``cycle`` in every
    channel are left out.
    """
    from skarim.deconv.device import select_device
    from skarim.deconv.joined import deconvolve_joined_rows

    start = perf_counter()
    store = RunStore.open(ctx.store_path, mode="r+")
    device = select_device(ctx.device, cfg.deconv.precision, worker=_worker_name())
    with _torch_threads(ctx.threads):
        written, skipped = deconvolve_joined_rows(store, cfg, cycle, rows, np.array(sigmas), device)
    return TilePassResult(written, skipped, perf_counter() - start)


def _due(store: RunStore, groups: list[ChannelGroup], cycle: int) -> list[ChannelGroup]:
    """The channels whose cycle ``cycle`` is not finished (``rcycle`` below it)."""
    return [g for g in groups if int(store.array("rcycle")[g.index]) < cycle]


def residual_share_task(
    ctx: TaskContext, cfg: RunConfig, groups: list[ChannelGroup], cycle: int, share: FacetShare
) -> ResidualShareResult:
    """The candidate residuals of cycle ``cycle`` on a share of the facets, channels still due."""
    from skarim.imaging.residual import residual_facets

    start = perf_counter()
    store = RunStore.open(ctx.store_path, mode="r+")
    todo = _due(store, groups, cycle)
    sums = residual_facets(
        store, cfg.read, cfg.grid, todo, share, "model_next", "residual_next", ctx.threads
    ) if todo else []  # fmt: skip
    return ResidualShareResult(tuple(sums), perf_counter() - start)


def finish_cycle_task(
    ctx: TaskContext,
    cfg: RunConfig,
    groups: list[ChannelGroup],
    cycle: int,
    candidate: tuple[ResidualSums, ...] | None = None,
) -> CycleTaskResult:
    """Exact residuals and the decision of cycle ``cycle`` for the channels still due.

    Channels whose ``rcycle`` already reached ``cycle`` (a retried task, or a run killed
    between two channels' markers) are left alone. ``candidate``: the sums the
    :func:`residual_share_task` of every share returned, whose residuals are then not
    computed again.
    """
    from skarim.deconv.major_cycle import finish_cycle

    start = perf_counter()
    store = RunStore.open(ctx.store_path, mode="r+")
    todo = _due(store, groups, cycle)
    sums = None if candidate is None else list(candidate)
    joined = cfg.deconv.join_channels
    spread = _spread_residuals(ctx, cfg) if len(todo) > 1 else None
    stats = finish_cycle(store, cfg, todo, cycle, ctx.threads, sums, joined, spread) if todo else []
    return CycleTaskResult(tuple(stats), perf_counter() - start)


def residual_part_task(
    ctx: TaskContext, cfg: RunConfig, groups: list[ChannelGroup]
) -> ResidualPartResult:
    """The exact residuals of the store's ``model`` for some channels, into ``residual``: a
    part of a finish-cycle task's recomputation (:func:`_spread_residuals`)."""
    from skarim.imaging.residual import residual_channels

    start = perf_counter()
    store = RunStore.open(ctx.store_path, mode="r+")
    stats = residual_channels(store, cfg.read, cfg.grid, groups, nthreads=ctx.threads)
    return ResidualPartResult(tuple(stats), perf_counter() - start)


def _spread_residuals(
    ctx: TaskContext, cfg: RunConfig
) -> Callable[[list[ChannelGroup]], list[dict[str, float]]] | None:
    """Exact residuals of many channels as :func:`residual_part_task` s, one per worker,
    submitted from inside a task running on a Dask worker (which leaves its thread to them
    while it waits); None in any other process, which computes them itself."""
    try:
        from distributed import get_worker, worker_client

        get_worker()
    except (ImportError, ValueError):  # not on a Dask worker
        return None

    def residuals(groups: list[ChannelGroup]) -> list[dict[str, float]]:
        with worker_client() as client:
            parts = max(1, min(len(groups), len(client.scheduler_info()["workers"])))
            per = -(-len(groups) // parts)
            chunks = [groups[i : i + per] for i in range(0, len(groups), per)]
            futures = [client.submit(residual_part_task, ctx, cfg, c, pure=False) for c in chunks]
            results: list[ResidualPartResult] = client.gather(futures)
        return [s for r in results for s in r.stats]

    return residuals
