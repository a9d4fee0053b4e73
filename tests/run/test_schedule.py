"""The scheduler: a joined run's tasks per major cycle do not grow with its channel count, and
its driver measures no noise the finish tasks already measured."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from msfactory import CELL_RAD, new_run_store, point_source_vis, random_uvw_m, write_stokes_i_ms

from skarim.config import (
    ClusterConfig,
    DeconvConfig,
    GridConfig,
    OutputConfig,
    ReadConfig,
    RunConfig,
)
from skarim.deconv import noise
from skarim.imaging.plan import groups_per_batch
from skarim.run.runner import _SyncRunner
from skarim.run.schedule import Schedule
from skarim.run.tasks import TaskContext


class _TwoWorkers(_SyncRunner):
    """Runs every task in this process, as two workers would be given them; keeps each tag."""

    def __init__(self) -> None:
        super().__init__(threads=1)
        self.n_workers = 2
        self.tags: list[tuple] = []

    def submit(self, tag, fn, *args, gpu, priority):  # noqa: ANN001
        self.tags.append(tag)
        super().submit(tag, fn, *args, gpu=gpu, priority=priority)


@pytest.mark.parametrize("channels", [6, 12])
def test_a_joined_cycle_has_one_residual_task_per_worker_whatever_its_channels(tmp_path, channels):
    rng = np.random.default_rng(3)
    freq_hz = np.linspace(1.0e9, 1.4e9, channels)
    uvw = random_uvw_m(rng, 300, max_m=400.0, w_frac=0.5)
    vis = point_source_vis(uvw, freq_hz, 4 * CELL_RAD, -6 * CELL_RAD, 1.0)
    ms = write_stokes_i_ms(tmp_path / "obs.ms", uvw, freq_hz, vis.astype(np.complex128))
    cfg = RunConfig(
        read=ReadConfig(ms=ms),
        grid=GridConfig(
            npix_x=128, npix_y=128, cell_rad=CELL_RAD, tile=64, channels_out=channels,
            memory_budget_mb=1,  # a few channels per read
        ),
        deconv=DeconvConfig(
            device="cpu", major_cycles=1, polish_cycles=1, join_channels=True, fit_spectral_pol=2
        ),
        cluster=ClusterConfig(kind="sync"),
        output=OutputConfig(name=str(tmp_path / "run")),
    )  # fmt: skip
    assert groups_per_batch(cfg.grid) < channels / 2  # more reads than workers
    store, groups = new_run_store(cfg)
    runner = _TwoWorkers()
    ctx = TaskContext(cfg.output.store_path.resolve(), 1, "cpu")
    Schedule(cfg, store, groups, runner, ctx, lambda n: None).run()
    per_cycle = Counter((tag[0], tag[2]) for tag in runner.tags if tag[0] == "share")
    assert per_cycle == {("share", 1): 2, ("share", 2): 2}  # two cycles, two tasks each
    assert sum(tag[0] == "grid" for tag in runner.tags) == 2
    assert (store.array("rcycle")[...] == 2).all()  # every channel through both cycles


def test_the_driver_takes_each_channels_noise_from_its_finished_cycle(tmp_path, monkeypatch):
    """Without pruning, every residual a cycle starts from is the one its finish task
    measured: the driver measures only the dirty images (the finish tasks import their own
    reference to the function, so only the driver's calls are counted)."""
    calls: list[tuple[int, str]] = []
    measure = noise.channel_sigma

    def counted(store, chan, source, wins):  # noqa: ANN001, ANN202
        calls.append((chan, source))
        return measure(store, chan, source, wins)

    monkeypatch.setattr(noise, "channel_sigma", counted)
    rng = np.random.default_rng(3)
    freq_hz = np.linspace(1.0e9, 1.4e9, 4)
    uvw = random_uvw_m(rng, 300, max_m=400.0, w_frac=0.5)
    vis = point_source_vis(uvw, freq_hz, 4 * CELL_RAD, -6 * CELL_RAD, 1.0)
    ms = write_stokes_i_ms(tmp_path / "obs.ms", uvw, freq_hz, vis.astype(np.complex128))
    cycles = {}
    for prune_sigma in (0.0, 5.0):
        calls.clear()
        cfg = RunConfig(
            read=ReadConfig(ms=ms),
            grid=GridConfig(npix_x=128, npix_y=128, cell_rad=CELL_RAD, tile=64, channels_out=4),
            deconv=DeconvConfig(
                device="cpu", major_cycles=2, polish_cycles=1, join_channels=True,
                fit_spectral_pol=2, prune_sigma=prune_sigma, converged_ratio=0.0,
            ),
            cluster=ClusterConfig(kind="sync"),
            output=OutputConfig(name=str(tmp_path / f"run{prune_sigma:g}")),
        )  # fmt: skip
        store, groups = new_run_store(cfg)
        ctx = TaskContext(cfg.output.store_path.resolve(), 1, "cpu")
        Schedule(cfg, store, groups, _TwoWorkers(), ctx, lambda n: None).run()
        assert (store.array("rcycle")[...] == 3).all()
        cycles[prune_sigma] = sorted(calls)
    dirty = [(c, "dirty") for c in range(4)]
    assert cycles[0.0] == dirty
    # the pruning after the RIM's last cycle recomputes the residuals: measured again
    assert cycles[5.0] == sorted(dirty + [(c, "residual") for c in range(4)])
