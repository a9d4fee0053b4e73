"""The run planner: array sizes against hand counts, memory that follows the facet and not the
image, the SKA case, the refusal before anything is written, and the plan against measured runs.

The measured check calibrates this machine's costs (quick mode, in its own process), then
images one simulated MeerKAT-like observation at three sizes, each ``skarim image
--scheduler sync --dirty-only`` in its own process, and compares the plan's memory with the
process's peak resident memory (within 25%) and its wall time with the run's (within 2x).
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from msfactory import point_sources_ms

from skarim.beam import KERNEL_SIGMAS, fwhm_to_sigma
from skarim.config import ClusterConfig, GridConfig, OutputConfig, ReadConfig, RunConfig
from skarim.errors import InputError
from skarim.io.ms_meta import open_ms
from skarim.io.store import RunStore
from skarim.run.budget import plan_budget
from skarim.run.costs import Costs
from skarim.run.observation import (
    SKA_MID,
    Observation,
    observation_of_ms,
    target_observation,
)
from skarim.run.pipeline import run_imaging
from skarim.run.preflight import check_field, refusal
from skarim.run.stage_memory import DUCC_OFACTOR, DUCC_SUPPORT, Layout
from skarim.run.workers import WorkerPlan

MIB = 2**20
ARCSEC = float(np.deg2rad(1 / 3600))
COSTS = Costs(
    machine="test", measured="test", epsilon=1e-4, ducc_vis_s=1e-6, ducc_pixel_s=4e-7,
    ducc_pixel_bytes=18.0, ducc_vis_bytes=30.0, weights_vis_s=1e-7, read_byte_s=2e-9,
    store_pixel_s=5e-8, fits_pixel_s=3e-8, restore_pixel_s=2e-7, rim_pixel_step_s=2e-6,
    rim_gpu_pixel_step_s=0.0, rim_pixel_bytes=1500.0, hogbom_pixel_iteration_s=3e-9,
    thread_efficiency=0.5, run_s=3.0, cluster_start_s=2.0, process_bytes=300 * MIB,
    worker_bytes=220 * MIB, worker_torch_bytes=100 * MIB,
)  # fmt: skip


def _cfg(npix: int, facet: int, channels_out: int = 1, **kw) -> RunConfig:
    grid = GridConfig(npix_x=npix, npix_y=npix, cell_rad=ARCSEC, tile=256, facet_pix=facet,
                      channels_out=channels_out)  # Briggs 0, the default  # fmt: skip
    return RunConfig(read=ReadConfig(ms=Path("x.ms")), grid=grid, **kw)


def test_array_sizes_and_work_of_a_small_run_are_the_hand_counts():
    # 1024^2 in four 512^2 facets, 2 output channels of 2 input channels, 10,000 rows read
    # whole (one chunk), held; one worker
    cfg = _cfg(1024, 512, channels_out=2)
    obs = Observation(rows=10_000, channels=4, spw_channels=4, correlations=4,
                      max_uv_wavelengths=5000.0, max_w_wavelengths=0.0)  # fmt: skip
    b = plan_budget(cfg, obs, WorkerPlan(1, 1, 4 * 2**30), 1, COSTS)
    grid, tiles, residuals, products = b.stages
    assert [s.name for s in b.stages] == ["grid", "tile passes", "residuals", "products"]
    assert (grid.tasks, tiles.tasks, residuals.tasks) == (1, 2 * 4, 1)  # 2 channels x 4 blocks
    g = dict(grid.arrays)
    vis = 10_000 * 2  # one output channel's visibilities
    stokes = 10_000 * (4 * (8 + 4) + 24)  # the batch's 4 channels and UVW, read whole
    facet = 512 * 512 * 8  # a float64 accumulator, the PSF's the same (2 tiles a side)
    ducc = 18 * 512 * 512 + 30 * vis
    phases = {
        "weighting pass, reading": 10_000 * (4 * 4 * 9 + 16 + 25) + stokes,
        "weighting pass, weights": stokes + 48 * vis,
        # a call before its own accumulator is written: the other channel's facet and PSF
        "ducc0 call": 2 * facet + stokes + vis * (8 + 4) + ducc,
        "imaging weights": 2 * facet + stokes + 48 * vis,
        "image added": 4 * facet + 512 * 512 * 8 + stokes,
    }
    assert g["process"] == 320 * MIB
    assert g["weight grids (at most)"] == 2 * 16 * vis  # one cell per visibility at most
    assert grid.memory_bytes == 320 * MIB + 2 * 16 * vis + max(phases.values())
    assert g["facet accumulators (float64)"] == 2 * facet  # the largest phase: image added
    assert grid.memory_bytes == sum(g.values())
    t = dict(tiles.arrays)
    w = 256 + 2 * 24
    assert t["tile windows"] == 6 * 4 * w * w * 4
    assert t["RIM activations"] == 1500 * w * w
    assert t["held batches"] == 10_000 * (4 * 12 + 24) + 2 * 16 * vis
    assert b.store_bytes == 2 * (5 * 1024**2 + 512**2) * 4
    assert b.fits_bytes == 4 * (2 * (4 * 1024**2 + 512**2) + 4 * 1024**2 + 512**2)
    assert (b.cycles, b.residuals) == (5, 6)
    # work: one read of the MS (held), per channel 4 facets and the PSF through ducc0 (7
    # w-planes), the imaging weights (a weighting pass and one lookup per facet), the store
    ducc = 1e-6 * vis + 4e-7 * 512 * 512
    per_chan = 4 * ducc + 5 * vis * 1e-7 + ducc + 1024**2 * 5e-8
    assert grid.cpu_s == pytest.approx(10_000 * (4 * 4 * 9 + 16 + 25) * 2e-9 + 2 * per_chan)
    assert b.worker_bytes == max(s.memory_bytes for s in b.stages[:3])


def test_a_selection_gathered_from_several_chunks_is_planned_as_held():
    # 10,000 rows of 4 channels read 1 MiB at a time (5,667 rows of 185 bytes): their Stokes
    # I (72 bytes a row) fits the chunk's budget, so the batch is gathered and held
    obs = Observation(rows=10_000, channels=4, spw_channels=4, correlations=4,
                      max_uv_wavelengths=5000.0, max_w_wavelengths=0.0)  # fmt: skip
    whole = _cfg(1024, 512, channels_out=2)
    gathered = whole.model_copy(update={"read": ReadConfig(ms=Path("x.ms"), chunk_mb=1)})
    given = whole.model_copy(update={"read": ReadConfig(ms=Path("x.ms"), chunk_rows=5_667)})
    read_rows = MIB // (4 * 4 * 9 + 16 + 25)
    lay = Layout.of(gathered, obs, 1, reuse_held=True)
    assert (lay.gathered, lay.held, lay.rows_chunk, lay.read_rows) == (True, True, 10_000, 5_667)
    assert lay.raw_chunk_bytes == read_rows * 185
    streamed = Layout.of(given, obs, 1, reuse_held=True)  # rows given: read as given
    assert (streamed.gathered, streamed.held, streamed.rows_chunk) == (False, False, 5_667)
    plans = [plan_budget(c, obs, WorkerPlan(1, 1, 4 * 2**30), 1, COSTS) for c in (whole, gathered)]
    (grid_w, tiles_w, *_), (grid_g, tiles_g, *_) = (p.stages for p in plans)
    # held as if read in one chunk: the same tasks' peaks (reading a 1 MiB chunk into the
    # gathered selection is not the largest phase) and the same held batch
    assert grid_g.memory_bytes == grid_w.memory_bytes
    assert dict(tiles_g.arrays)["held batches"] == dict(tiles_w.arrays)["held batches"] > 0
    assert grid_g.cpu_s == pytest.approx(grid_w.cpu_s)


def test_w_planes_follow_the_facets_span_of_n():
    cfg = _cfg(2048, 512)
    obs = Observation(rows=100, channels=1, spw_channels=1, correlations=4,
                      max_uv_wavelengths=1e5, max_w_wavelengths=2e5)  # fmt: skip
    lay = Layout.of(cfg, obs, 1, reuse_held=True)
    assert len(lay.facets) == 16
    corner = 1024 * ARCSEC  # the first facet spans l, m in [-1024, -512] pixels: no origin
    near = 512 * ARCSEC
    span = np.sqrt(1 - 2 * near**2) - np.sqrt(1 - 2 * corner**2)
    assert lay.facets[0][1] == pytest.approx(2e5 * DUCC_OFACTOR * span + DUCC_SUPPORT)
    assert lay.facets[5][1] == pytest.approx(  # touches the origin: n - 1 from 0
        2e5 * DUCC_OFACTOR * (1 - np.sqrt(1 - 2 * near**2)) + DUCC_SUPPORT
    )


def test_task_memory_follows_the_facet_not_the_image():
    obs = Observation(rows=200_000, channels=2, spw_channels=2, correlations=4,
                      max_uv_wavelengths=2e4, max_w_wavelengths=1e3)  # fmt: skip
    plans = {
        n: plan_budget(_cfg(n, 4096), obs, WorkerPlan(1, 1, 0), 1, COSTS) for n in (8192, 32768)
    }
    small, large = ({s.name: s for s in plans[n].stages} for n in (8192, 32768))
    for name in ("grid", "tile passes", "residuals"):
        assert small[name].memory_bytes == large[name].memory_bytes, name
    assert plans[32768].store_bytes == 16 * plans[8192].store_bytes - 15 * (2 * 256) ** 2 * 4
    # a product band's rows (the restoring beam's halo each side) follow the image's width;
    # its FFTs, over column blocks, do not
    reach = math.ceil(KERNEL_SIGMAS * fwhm_to_sigma(1 / (2e4 * ARCSEC)))
    bands = [dict(s["products"].arrays)["product bands"] for s in (small, large)]
    assert bands[1] - bands[0] == (32768 - 8192) * ((256 + 2 * reach) * 4 + 256 * 8)


def test_the_ska_case_plans_without_a_measurement_set():
    obs = target_observation(SKA_MID)
    assert obs.rows == 197 * 196 // 2 * 8 * 3600  # 1 s dumps over 8 h
    cfg = _cfg(120_000, 8192, channels_out=1000)
    cfg = cfg.model_copy(update={"grid": cfg.grid.model_copy(update={"cell_rad": 0.06 * ARCSEC})})
    b = plan_budget(cfg, obs, WorkerPlan(64, 16, 256 * 2**30), 64, COSTS)
    stages = {s.name: s for s in b.stages}
    assert stages["grid"].tasks == 1000  # one channel per batch: 8192^2 facets
    assert stages["tile passes"].tasks == 1000 * 4 * 64  # TASKS_PER_WORKER blocks per worker
    assert dict(stages["grid"].arrays)["facet accumulators (float64)"] == 8192**2 * 8
    assert b.store_bytes == 1000 * (5 * 120_000**2 + 512**2) * 4
    # every batch reads whole cells (1000 channels) once per facet pass and its weighting pass
    row = 1000 * 4 * 9 + 16 + 25
    assert stages["grid"].vis_read_bytes == 1000 * (15 * 15 + 1) * obs.rows * row
    assert b.worker_bytes < 64 * 2**30
    # a major cycle's work is its tile passes' and its residuals', on CPUs alone here
    per_cycle = stages["tile passes"].cpu_s + stages["residuals"].cpu_s
    assert b.cycle_hours("cpu") == pytest.approx(per_cycle / 3600)
    assert b.cycle_hours("gpu") == 0


def test_refusal_names_the_task_and_the_changes_that_fit():
    cfg = _cfg(8192, 8192)
    obs = Observation(rows=10_000, channels=1, spw_channels=1, correlations=4,
                      max_uv_wavelengths=1e4, max_w_wavelengths=1e2)  # fmt: skip
    plan = WorkerPlan(8, 1, 3 * 2**29)
    budget = plan_budget(cfg, obs, plan, 8, COSTS)
    assert dict(budget.stages[0].arrays)["ducc0 working grid"] == 18 * 8192**2 + 30 * 10_000
    message = refusal(cfg, obs, plan, 8, COSTS, budget, limit=int(0.95 * 3 * 2**29))
    assert message is not None and "\n" not in message
    assert message.startswith("a residuals task needs")
    assert "but a worker may hold 1.4 GiB" in message
    assert "--facet-pix 4096" in message and "--workers 5" in message
    assert refusal(cfg, obs, plan, 8, COSTS, budget, limit=2**40) is None


def test_a_run_that_cannot_fit_is_refused_before_anything_is_written(tmp_path):
    ms = point_sources_ms(tmp_path)
    name = tmp_path / "huge"
    cfg = RunConfig(
        read=ReadConfig(ms=ms),
        grid=GridConfig(npix_x=200_000, npix_y=200_000, cell_rad=ARCSEC, facet_pix=200_000),
        output=OutputConfig(name=str(name)),
        cluster=ClusterConfig(kind="sync"),
        deconv={"major_cycles": 1},
    )
    with pytest.raises(InputError, match=r"^a (grid|residuals) task needs .* --facet-pix"):
        run_imaging(cfg)
    assert not Path(f"{name}.zarr").exists()
    assert list(tmp_path.glob("huge*")) == []


@pytest.fixture(scope="module")
def measured_costs():
    from skarim.run.calibrate import calibrate

    return calibrate(quick=True)


@pytest.fixture(scope="module")
def meerkat_ms(tmp_path_factory):
    from skarim.sim.simulate import SimulateConfig, simulate

    cfg = SimulateConfig(npix=1024, cell_rad=1.5 * ARCSEC, nchan=2, duration_h=1.0,
                         integration_s=60.0, noise_jy=0.5, predict="components",
                         max_antennas=32)  # fmt: skip
    return simulate(cfg, tmp_path_factory.mktemp("plan") / "meerkat.ms").ms_path


@pytest.mark.parametrize("npix", [1024, 2048, 3072])
def test_plan_is_within_25_percent_of_the_peak_memory_and_2x_of_the_wall(
    npix, meerkat_ms, measured_costs, tmp_path
):
    cmd = [sys.executable, "-m", "skarim", "image", str(meerkat_ms), "--size", str(npix),
           "--scale", "1.5asec", "--dirty-only", "--scheduler", "sync", "--name", "run",
           "--quiet"]  # fmt: skip
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = RunStore.open(tmp_path / "run.zarr").group.attrs["runs"][-1]
    peak = summary["driver_peak_rss_bytes"]  # one process ran every task and the products
    cfg = _cfg(npix, 8192, dirty_only=True, cluster=ClusterConfig(kind="sync"))
    cfg = cfg.model_copy(update={"grid": cfg.grid.model_copy(update={"cell_rad": 1.5 * ARCSEC}),
                                 "read": ReadConfig(ms=meerkat_ms)})  # fmt: skip
    obs = observation_of_ms(open_ms(cfg.read))
    budget = plan_budget(cfg, obs, WorkerPlan(1, 1, 0), 1, measured_costs)
    assert budget.worker_bytes == pytest.approx(peak, rel=0.25), (budget.worker_bytes, peak)
    ratio = budget.wall_s / summary["wall_s"]
    assert 0.5 < ratio < 2.0, (budget.wall_s, summary["wall_s"])
    assert math.isfinite(budget.cycle_hours("cpu"))


def test_an_image_reaching_far_beyond_the_horizon_is_refused(tmp_path):
    def cfg(npix):
        grid = GridConfig(npix_x=npix, npix_y=npix, cell_rad=6 * ARCSEC)
        return RunConfig(read=ReadConfig(ms=tmp_path / "x.ms"), grid=grid)

    with pytest.raises(InputError, match=r"l = 1\.46 .* --size 68754 covers the whole sky"):
        check_field(cfg(100096))
    check_field(cfg(68754))  # the whole sky, axes to l = 1: imaged


def test_a_small_job_runs_in_this_process_unless_workers_are_asked_for(tmp_path):
    ms = point_sources_ms(tmp_path)

    def run(name, cluster):
        cfg = RunConfig(
            read=ReadConfig(ms=ms),
            grid=GridConfig(npix_x=64, npix_y=64, cell_rad=20 * ARCSEC, tile=32),
            output=OutputConfig(name=str(tmp_path / name)),
            cluster=cluster,
            dirty_only=True,
        )
        run_imaging(cfg)
        return RunStore.open(cfg.output.store_path).group.attrs["runs"][-1]

    alone = run("alone", ClusterConfig())
    assert alone["workers"] == 1 and set(alone["peak_rss_bytes"]) == {"local"}
    sized = run("sized", ClusterConfig(n_workers=2, threads_per_worker=1))
    assert sized["workers"] == 2 and len(sized["peak_rss_bytes"]) == 2


def test_joined_tile_passes_follow_the_deconvolution_channels_not_the_output_channels():
    def joined_arrays(channels: int, **deconv) -> int:
        obs = Observation(rows=20_000, channels=channels, spw_channels=channels, correlations=4,
                          max_uv_wavelengths=2e4, max_w_wavelengths=1e3)  # fmt: skip
        cfg = _cfg(512, 4096, channels_out=channels)
        update = {"join_channels": True, **deconv}
        cfg = cfg.model_copy(update={"deconv": cfg.deconv.model_copy(update=update)})
        stage = {s.name: s for s in plan_budget(cfg, obs, WorkerPlan(1, 1, 0), 1, COSTS).stages}
        assert stage["tile passes"].tasks == 1  # one block of tile rows, all channels
        arrays = dict(stage["tile passes"].arrays)
        return sum(v for k, v in arrays.items() if k.startswith("joined"))

    grouped = {
        n: joined_arrays(n, fit_spectral_pol=2, deconvolution_channels=16) for n in (64, 1024)
    }
    assert grouped[64] == grouped[1024] > 0
    assert joined_arrays(64) == 4 * grouped[64]  # every output channel deconvolved: 64, not 16


def test_the_plan_notes_the_reordered_copy_on_disk():
    obs = Observation(rows=47_400, channels=1024, spw_channels=1024, correlations=4,
                      max_uv_wavelengths=2e4, max_w_wavelengths=1e3)  # fmt: skip

    def notes(**read) -> list[str]:
        cfg = _cfg(512, 4096, channels_out=16)
        cfg = cfg.model_copy(update={"read": cfg.read.model_copy(update=read)})
        budget = plan_budget(cfg, obs, WorkerPlan(1, 1, 0), 1, COSTS)
        return [n for n in budget.notes if n.startswith("reordering")]

    # 47,400 rows x 1024 channels x (8 + 4) bytes, and 24 bytes of UVW a row
    size_gib = (47_400 * 1024 * 12 + 47_400 * 24) / 2**30
    assert len(notes()) == 1 and f"{size_gib:.3g} GiB" in notes()[0]
    assert notes(reorder=False) == []
