"""The scheduler of one run: tasks submitted as the results they depend on come back.

Per batch of output channels: grid (unless the store says it is gridded), then for each
major cycle not finished in the store, tile-pass tasks over the blocks of tile rows holding a
tile below that cycle, for each channel of the batch that has data, then the batch's
finish-cycle task (exact residuals, accept or refuse). Batches advance independently: batch
0 may be in its second cycle while batch 1 is still gridding. What the store's markers say is
done is not submitted again, so re-running a killed run resumes it.

With ``DeconvConfig.join_channels`` the channels are deconvolved together
(:mod:`skarim.deconv.joined`): once every batch is gridded, each cycle is one joined
tile-pass task per block of tile rows covering all channels, then every batch's exact
residuals as :func:`~skarim.run.tasks.residual_share_task` s, then one finish-cycle task
that accepts or refuses all channels together. Their tags carry the batch :data:`JOINT`.
A joined run's batches are one per worker whatever the channel count (each task reads its
channels a part at a time, :func:`skarim.imaging.plan.split_batches`, from the reordered
visibilities, :mod:`skarim.imaging.reorder`): its tasks per cycle do not grow with the
channels.

When there are fewer batches than workers (a few large channels), each batch's facets are
shared out (:func:`skarim.imaging.plan.facet_shares`, one share per worker the batches leave
idle): its gridding is one task per share, and its exact residuals are one
:func:`~skarim.run.tasks.residual_share_task` per share before the finish-cycle task, which
then only decides.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from skarim.config import RunConfig
from skarim.imaging.plan import ChannelGroup, facet_shares, groups_per_batch
from skarim.io.store import RunStore
from skarim.run.runner import TaskRunner
from skarim.run.tasks import (
    CycleTaskResult,
    GridTaskResult,
    ResidualShareResult,
    TaskContext,
    TilePassResult,
    finish_cycle_task,
    grid_task,
    joined_pass_task,
    residual_share_task,
    tile_pass_task,
)

if TYPE_CHECKING:
    from skarim.deconv.major_cycle import ChannelCycleStats
    from skarim.imaging.residual import ResidualSums

__all__ = ["JOINT", "CycleRecord", "ScheduleTotals", "Schedule"]

log = logging.getLogger("skarim")

#: The batch index of a joined run's deconvolution tasks: all channels at once.
JOINT = -1


@dataclass(frozen=True)
class CycleRecord:
    """One (cycle, channel) finished by a run.

    Attributes
    ----------
    cycle : int
        The major cycle (the RIM's first, then the polish's).
    sigma : float
        The channel's robust noise the cycle's tile passes used, Jy/beam.
    stats : ChannelCycleStats
        How the cycle ended for the channel.
    """

    cycle: int
    sigma: float
    stats: ChannelCycleStats


@dataclass
class ScheduleTotals:
    """What the tasks of one invocation did, summed as their results came back."""

    nonfinite: int = 0
    tiles_gridded: int = 0
    tiles_deconvolved: int = 0
    tiles_skipped: int = 0
    grid_s: float = 0.0
    deconvolve_s: float = 0.0
    residual_s: float = 0.0

    @property
    def task_s(self) -> dict[str, float]:
        """Task seconds per stage."""
        return {"grid": self.grid_s, "deconvolve": self.deconvolve_s, "residual": self.residual_s}


class Schedule:
    """The tasks of one run. Tags are ``("grid", b, share)``, ``("rim", b, k)``, ``("share", b,
    k, share)`` and ``("residual", b, k)`` for batch ``b``, cycle ``k``.

    Parameters
    ----------
    cfg : RunConfig
        The run, its paths absolute (workers may run elsewhere).
    store : RunStore
        The run's store, for the markers.
    groups : list of ChannelGroup
        The output channels.
    runner : TaskRunner
        Where tasks run.
    ctx : TaskContext
        Handed to every task: the store's path, threads, the RIM's device.
    on_tiles : callable
        Progress: called with the (channel, tile) units just finished.
    """

    def __init__(
        self,
        cfg: RunConfig,
        store: RunStore,
        groups: list[ChannelGroup],
        runner: TaskRunner,
        ctx: TaskContext,
        on_tiles: Callable[[int], None],
    ) -> None:
        from skarim.deconv.tiles import row_blocks, tile_windows

        self.cfg, self.store, self.runner, self.ctx = cfg, store, runner, ctx
        self.on_tiles = on_tiles
        self.totals = ScheduleTotals()
        self.records: list[CycleRecord] = []
        self.cycles = 0 if cfg.dirty_only else cfg.deconv.total_cycles
        self.rim_cycles = cfg.deconv.major_cycles
        self.ntiles = cfg.grid.ntile_x * cfg.grid.ntile_y
        self.total_units = len(groups) * self.ntiles * (1 + self.cycles)
        per = -(-len(groups) // runner.n_workers)  # joined: one batch per worker, whatever
        if not cfg.deconv.join_channels:  # the channel count; each read a part at a time
            per = min(groups_per_batch(cfg.grid), per)
        self.batches = [groups[i : i + per] for i in range(0, len(groups), per)]
        self.shares = facet_shares(cfg.grid, runner.n_workers // max(1, len(self.batches)))
        self.outstanding: dict[tuple[str, int], int] = {}  # (stage, batch) -> shares still out
        self.sums: dict[int, list[ResidualSums]] = {}  # batch -> its shares' residual sums
        self.active: dict[int, list[ChannelGroup]] = {}  # batch -> its channels with data
        self.wins = tile_windows(cfg)
        self.blocks = row_blocks(cfg, runner.n_workers)
        self.pending: dict[int, int] = {}  # batch -> tile tasks of its running cycle still out
        self.sigma: dict[int, float] = {}  # channel -> noise of its running cycle
        self.residual_noise: dict[int, float] = {}  # channel -> its finished cycle's figure

    def done_units(self) -> int:
        """Units the store already holds: tiles gridded, tiles' passes."""
        done = int(np.count_nonzero(self.store.array("gridded")[...]))
        if self.cycles:
            done += int(np.minimum(self.store.array("cycle")[...], self.cycles).sum())
        return done

    def run(self) -> None:
        """Submit the first task of every batch, then react to results until none is out."""
        for b, groups in enumerate(self.batches):
            if all(self.store.channel_gridded(g.index) for g in groups):
                self._gridded(b)
            else:
                self.outstanding["grid", b] = len(self.shares)
                for i, share in enumerate(self.shares):
                    self._submit(("grid", b, i), grid_task, groups, share)
        for tag, out in self.runner.completed():
            self._done(tag, out)

    def _submit(
        self, tag: tuple, fn: Callable[..., Any], *args: Any, gpu: bool = False, priority: int = 0
    ) -> None:
        self.runner.submit(tag, fn, self.ctx, self.cfg, *args, gpu=gpu, priority=priority)

    def _done(
        self,
        tag: tuple,
        out: GridTaskResult | TilePassResult | ResidualShareResult | CycleTaskResult,
    ) -> None:
        b = tag[1]
        t = self.totals
        if isinstance(out, GridTaskResult):
            t.grid_s += out.seconds
            t.tiles_gridded += out.tiles
            t.nonfinite += out.nonfinite
            self.on_tiles(out.tiles)
            if self._last_share("grid", b):
                self._gridded(b)
        elif isinstance(out, ResidualShareResult):
            t.residual_s += out.seconds
            self.sums[b] += out.sums
            if self._last_share("share", b):
                candidate = tuple(self.sums.pop(b))
                self._submit(
                    ("residual", b, tag[2]), finish_cycle_task, self.active[b], tag[2], candidate,
                    priority=1,
                )  # fmt: skip
        elif isinstance(out, TilePassResult):
            t.deconvolve_s += out.seconds
            t.tiles_deconvolved += out.tiles
            t.tiles_skipped += out.skipped
            self.on_tiles(out.tiles)
            self.pending[b] -= 1
            if self.pending[b] == 0:
                self._submit_residual(b, tag[2])
        else:
            cycle = tag[2]
            t.residual_s += out.seconds
            for stats in out.channels:
                self._record(cycle, stats)
                if not stats.pruned:
                    self.residual_noise[stats.channel] = stats.noise
                if stats.stopped or stats.converged:  # its phase's later cycles: done
                    self.on_tiles(self.ntiles * (self._phase_end(cycle) - cycle))
            self._start_cycle(b, cycle + 1)

    def _last_share(self, stage: str, b: int) -> bool:
        """Count one share of ``stage`` back for batch ``b``: True when it was the last."""
        self.outstanding[stage, b] -= 1
        return self.outstanding[stage, b] == 0

    def _phase_end(self, cycle: int) -> int:
        """The last cycle of the phase (RIM, then polish) that ``cycle`` belongs to."""
        return self.rim_cycles if cycle <= self.rim_cycles else self.cycles

    def _record(self, cycle: int, stats: ChannelCycleStats) -> None:
        chan = stats.channel
        record = CycleRecord(cycle, self.sigma[chan], stats)
        self.records.append(record)
        phase = "RIM" if cycle <= self.rim_cycles else "polish"
        if stats.stopped and not stats.unchanged:
            log.warning(
                "cycle %d channel %d: the residual rms would not fall (%.3g -> %.3g Jy/beam): "
                "the model of cycle %d is kept and the channel's %s cycles stop",
                cycle, chan, stats.previous_rms, stats.refused_rms, cycle - 1, phase,
            )  # fmt: skip
            return
        if stats.stopped:  # the cycle changed nothing: no tile held anything to do
            log.info(
                "cycle %d (%s) channel %d: nothing above the thresholds, the residual rms stays "
                "%.3g Jy/beam: the channel's %s cycles end",
                cycle, phase, chan, stats.previous_rms, phase,
            )  # fmt: skip
            return
        end = f"; converged: the channel's {phase} cycles end" if stats.converged else ""
        log.info(
            "cycle %d (%s) channel %d: input residual robust noise %.3g (the thresholds' unit); "
            "new residual rms %.3g, robust noise %.3g Jy/beam (rms/noise %.2f); "
            "model flux %.4g Jy%s",
            cycle, phase, chan, record.sigma, stats.rms, stats.noise, stats.noise_ratio,
            stats.flux, end,
        )  # fmt: skip

    def _gridded(self, b: int) -> None:
        if not self.cycles:
            return
        active = []
        for group in self.batches[b]:
            if self.store.array("sumwt")[group.index] > 0:
                active.append(group)
                continue
            log.warning("output channel %d has no unflagged data: its planes are zero", group.index)
            done = np.minimum(self.store.array("cycle")[group.index], self.cycles).sum()
            self.on_tiles(self.ntiles * self.cycles - int(done))
        self.active[b] = active
        if self.cfg.deconv.join_channels:
            if len(self.active) == len(self.batches):  # every batch gridded
                self.active[JOINT] = [g for part in self.active.values() for g in part]
                self._start_joint(self._first_cycle(self.active[JOINT]))
        elif active:
            self._start_cycle(b, self._first_cycle(active))

    def _first_cycle(self, groups: list[ChannelGroup]) -> int:
        return min((int(self.store.array("rcycle")[g.index]) for g in groups), default=0) + 1

    def _start_joint(self, cycle: int) -> None:
        """Joined passes of ``cycle`` over the blocks of tile rows some channel still needs."""
        groups = sorted(self.active[JOINT], key=lambda g: g.index)
        if cycle > self.cycles or not groups:
            return
        source = "dirty" if cycle == 1 else "residual"
        for g in groups:
            self.sigma[g.index] = self._noise(g.index, source)
        sigmas = tuple(self.sigma[g.index] for g in groups)
        markers = np.stack([self.store.array("cycle")[g.index] for g in groups])  # (C, nty, ntx)
        blocks = [r for r in self.blocks if np.any(markers[:, r.start : r.stop] < cycle)]
        self.pending[JOINT] = len(blocks)
        if not blocks:
            self._submit_residual(JOINT, cycle)
        gpu = self.ctx.device == "cuda"
        for rows in blocks:
            self._submit(("rim", JOINT, cycle), joined_pass_task, cycle, rows, sigmas, gpu=gpu)

    def _noise(self, chan: int, source: str) -> float:
        """Robust noise of a channel's ``source`` image for its next cycle, Jy/beam: the
        finish task's figure when it is of the residual still in the store (nothing pruned
        since), measured here otherwise (:func:`skarim.deconv.noise.channel_sigma`)."""
        from skarim.deconv.noise import channel_sigma

        known = self.residual_noise.pop(chan, None)
        if source == "residual" and known is not None:
            return known
        return channel_sigma(self.store, chan, source, self.wins)

    def _start_cycle(self, b: int, cycle: int) -> None:
        if b == JOINT:
            self._start_joint(cycle)
            return
        if cycle > self.cycles:
            return
        source = "dirty" if cycle == 1 else "residual"
        tasks = []
        for group in self.active[b]:
            chan = group.index
            markers = self.store.array("cycle")[chan]  # (nty, ntx)
            blocks = [r for r in self.blocks if np.any(markers[r.start : r.stop] < cycle)]
            if blocks:  # when none, the channel was done before an interruption
                self.sigma[chan] = sigma = self._noise(chan, source)
                tasks += [(chan, rows, sigma) for rows in blocks]
            elif int(self.store.array("rcycle")[chan]) < cycle:  # its residual is still due
                self.sigma[chan] = self._noise(chan, source)
        self.pending[b] = len(tasks)
        if not tasks:
            self._submit_residual(b, cycle)
        gpu = self.ctx.device == "cuda"
        for chan, rows, sigma in tasks:
            self._submit(("rim", b, cycle), tile_pass_task, chan, cycle, rows, sigma, gpu=gpu)

    def _submit_residual(self, b: int, cycle: int) -> None:
        # a batch's residual unblocks its next cycle: run it before waiting tile tasks
        if b == JOINT:  # every batch's residuals, then one decision for all channels
            parts = [(i, self.active[i]) for i in range(len(self.batches)) if self.active[i]]
            self.outstanding["share", b] = len(parts) * len(self.shares)
            self.sums[b] = []
            for i, groups in parts:
                for k, share in enumerate(self.shares):
                    self._submit(
                        ("share", b, cycle, (i, k)), residual_share_task, groups, cycle, share,
                        priority=1,
                    )  # fmt: skip
            return
        if len(self.shares) == 1:
            self._submit(
                ("residual", b, cycle), finish_cycle_task, self.active[b], cycle, priority=1
            )
            return
        self.outstanding["share", b] = len(self.shares)
        self.sums[b] = []
        for i, share in enumerate(self.shares):
            self._submit(
                ("share", b, cycle, i), residual_share_task, self.active[b], cycle, share,
                priority=1,
            )  # fmt: skip
