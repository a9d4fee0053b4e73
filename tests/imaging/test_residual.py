"""Exact residuals: a model equal to the sky leaves nothing, batched or one channel at a time."""

from __future__ import annotations

import numpy as np
import pytest
from msfactory import new_run_store, point_source_vis, random_uvw_m, write_stokes_i_ms

from skarim.config import (
    DeconvConfig,
    GridConfig,
    OutputConfig,
    ReadConfig,
    RunConfig,
    Weighting,
)
from skarim.deconv.cycles import finish_cycle
from skarim.imaging.grid import grid_channels
from skarim.imaging.residual import residual_channel, residual_channels

NPIX = 64
CELL_RAD = np.deg2rad(20 / 3600)
SOURCES = [(40, 20, 1.0), (10, 50, 0.5)]  # FITS (y, x) pixel and flux, Jy


def _point_sources_ms(tmp_path):
    """Two point sources on pixel centres, 3 channels, non-coplanar baselines."""
    rng = np.random.default_rng(5)
    freq = np.array([1.0e9, 1.1e9, 1.2e9])
    uvw = random_uvw_m(rng, 400, max_m=400.0, w_frac=1.0)
    vis = sum(
        point_source_vis(uvw, freq, -(x - NPIX / 2) * CELL_RAD, (y - NPIX / 2) * CELL_RAD, flux)
        for y, x, flux in SOURCES
    )
    return write_stokes_i_ms(tmp_path / "points.ms", uvw, freq, vis.astype(np.complex128))


def _gridded_store(tmp_path, ms, name, chunk_rows=150):
    cfg = RunConfig(
        read=ReadConfig(ms=ms, chunk_rows=chunk_rows),
        grid=GridConfig(
            npix_x=NPIX,
            npix_y=NPIX,
            cell_rad=CELL_RAD,
            tile=32,
            facet_pix=32,  # 4 facets: prediction and imaging cross facet edges
            channels_out=3,
            weighting=Weighting.briggs,
            epsilon=1e-10,
            double_precision=True,
        ),
        output=OutputConfig(name=str(tmp_path / name)),
    )
    store, groups = new_run_store(cfg)
    grid_channels(store, cfg.read, cfg.grid, groups)
    return cfg, store, groups


def test_the_true_model_leaves_no_residual(tmp_path):
    cfg, store, groups = _gridded_store(tmp_path, _point_sources_ms(tmp_path), "true")
    model = np.zeros((3, NPIX, NPIX), dtype=np.float32)
    for y, x, flux in SOURCES:
        model[:, y, x] = flux
    store.array("model")[...] = model
    stats = residual_channels(store, cfg.read, cfg.grid, groups)
    dirty, residual = store.array("dirty")[...], store.array("residual")[...]
    for c in range(3):
        assert dirty[c, 40, 20] == pytest.approx(1.0, abs=0.05)
        assert np.abs(residual[c]).max() < 1e-6 * np.abs(dirty[c]).max()
        assert stats[c]["flux"] == pytest.approx(1.5)
        assert stats[c]["rms"] < 1e-6


def test_batched_residuals_equal_one_channel_at_a_time(tmp_path, count_passes):
    ms = _point_sources_ms(tmp_path)
    model = np.zeros((3, NPIX, NPIX), dtype=np.float32)
    model[:, 40, 20] = [0.9, 0.8, 0.7]  # part of one source: a residual remains
    runs = {name: _gridded_store(tmp_path, ms, name) for name in ("batched", "single")}
    passes = count_passes
    passes.clear()  # count the residual stage only, not the gridding above
    cfg, store, groups = runs["batched"]
    store.array("model")[...] = model
    stats = residual_channels(store, cfg.read, cfg.grid, groups)
    assert len(passes) == 1 + 4  # weighting, then one pass per facet, for all three channels
    passes.clear()
    cfg, single, groups = runs["single"]
    single.array("model")[...] = model
    single_stats = [residual_channel(single, cfg.read, cfg.grid, g) for g in groups]
    assert len(passes) == 3 * (1 + 4)
    residual = store.array("residual")[...]
    np.testing.assert_array_equal(residual, single.array("residual")[...])
    assert stats == single_stats
    assert [s["flux"] for s in stats] == pytest.approx([0.9, 0.8, 0.7])
    assert residual[0, 40, 20] == pytest.approx(0.1, abs=0.02)
    assert residual[0, 10, 50] == pytest.approx(0.5, abs=0.05)


def test_a_batch_read_whole_is_held_for_the_next_residuals(tmp_path, count_passes):
    ms = _point_sources_ms(tmp_path)
    model = np.zeros((3, NPIX, NPIX), dtype=np.float32)
    model[:, 40, 20] = 0.9
    chunked_cfg, chunked, groups = _gridded_store(tmp_path, ms, "chunked")  # 3 chunks
    count_passes.clear()
    chunked.array("model")[...] = model
    want = residual_channels(chunked, chunked_cfg.read, chunked_cfg.grid, groups)
    assert len(count_passes) == 1 + 4  # read in chunks: not held, read again
    count_passes.clear()
    cfg, store, groups = _gridded_store(tmp_path, ms, "whole", chunk_rows=None)  # one chunk
    assert len(count_passes) == 1  # the gridding's read, held for the residuals
    store.array("model")[...] = model
    for _ in range(2):
        got = residual_channels(store, cfg.read, cfg.grid, groups)
        assert [s["rms"] for s in got] == pytest.approx([s["rms"] for s in want], rel=1e-9)
        np.testing.assert_allclose(
            store.array("residual")[...], chunked.array("residual")[...], rtol=0, atol=1e-7
        )
    assert len(count_passes) == 1  # neither residual read the Measurement Set


def _cycle_config(cfg: RunConfig, cycles: int, converged_ratio: float = 0.0) -> RunConfig:
    deconv = {"major_cycles": cycles, "converged_ratio": converged_ratio}
    return cfg.model_copy(update={"deconv": cfg.deconv.model_copy(update=deconv)})


def test_a_cycle_that_makes_the_residual_worse_is_refused_and_stops_the_channel(tmp_path):
    cfg, store, groups = _gridded_store(tmp_path, _point_sources_ms(tmp_path), "cycles")
    cfg = _cycle_config(cfg, 3)
    truth = np.zeros((3, NPIX, NPIX), dtype=np.float32)
    for y, x, flux in SOURCES:
        truth[:, y, x] = flux
    # cycle 1: half the sky, better than nothing: accepted in every channel
    store.array("model_next")[...] = 0.5 * truth
    stats = finish_cycle(store, cfg, groups, 1)
    assert [s["stopped"] for s in stats] == [False] * 3
    assert np.array_equal(store.array("model")[...], 0.5 * truth)
    assert list(store.array("rcycle")[...]) == [1, 1, 1]
    residual_1 = store.array("residual")[...].copy()
    rms_1 = [s["rms"] for s in stats]
    # cycle 2: channel 1 gets the sky, channels 0 and 2 three times it (worse): refused there
    store.array("model_next")[...] = np.stack([3 * truth[0], truth[1], 3 * truth[2]])
    stats = finish_cycle(store, cfg, groups, 2)
    assert [s["stopped"] for s in stats] == [True, False, True]
    model = store.array("model")[...]
    assert np.array_equal(model[[0, 2]], 0.5 * truth[[0, 2]])  # previous model kept
    assert np.array_equal(model[1], truth[1])
    residual = store.array("residual")[...]
    assert np.allclose(residual[[0, 2]], residual_1[[0, 2]], atol=1e-6)  # and its residual
    assert np.abs(residual[1]).max() < 1e-6
    assert list(store.array("rcycle")[...]) == [3, 2, 3]  # the RIM's phase ends at cycle 3
    assert (store.array("cycle")[[0, 2]] == 3).all()
    assert stats[0]["refused_rms"] > stats[0]["rms"] == pytest.approx(store.array("rms")[0])
    assert stats[0]["refused_rms"] > stats[0]["previous_rms"] == rms_1[0]  # the warning's pair
    assert not stats[0]["unchanged"]
    # cycle 4 is the first of 2 polish cycles: a refusal there ends the channel at cycle 5
    assert cfg.deconv.polish_cycles == 2
    store.array("model_next")[...] = np.stack([truth[0], 3 * truth[1], truth[2]])
    stats = finish_cycle(store, cfg, groups, 4)
    assert [s["stopped"] for s in stats] == [False, True, False]
    assert list(store.array("rcycle")[...]) == [4, 5, 4]
    assert (store.array("cycle")[1] == 5).all()
    assert np.array_equal(store.array("model")[1], truth[1])
    # a cycle that changes nothing is refused too (as is a rerun after the copy-back)
    store.array("model_next")[0] = store.array("model")[0]
    unchanged = finish_cycle(store, cfg, groups[:1], 5)[0]
    assert unchanged["stopped"] and unchanged["unchanged"]  # logged as such, not as a rise


def test_a_channel_whose_residual_is_noise_like_ends_its_phase_with_the_new_model(tmp_path):
    cfg, store, groups = _gridded_store(tmp_path, _point_sources_ms(tmp_path), "converged")
    cfg = _cycle_config(cfg, 3, converged_ratio=1.05)
    truth = np.zeros((3, NPIX, NPIX), dtype=np.float32)
    for y, x, flux in SOURCES:
        truth[:, y, x] = flux
    # channel 0 gets the whole sky: its residual is round-off, RMS about its MAD noise;
    # channels 1 and 2 half of it: their residuals hold sources, RMS far above the MAD
    store.array("model_next")[...] = np.stack([truth[0], 0.5 * truth[1], 0.5 * truth[2]])
    stats = finish_cycle(store, cfg, groups, 1)
    assert [s["converged"] for s in stats] == [True, False, False]
    assert [s["stopped"] for s in stats] == [False] * 3
    assert stats[0]["noise_ratio"] <= 1.05 < min(s["noise_ratio"] for s in stats[1:])
    assert list(store.array("rcycle")[...]) == [3, 1, 1]  # the RIM's cycles 2 and 3 skipped
    assert (store.array("cycle")[0] == 3).all() and (store.array("cycle")[1:] == 0).all()
    assert np.array_equal(store.array("model")[0], truth[0])  # the new model, pruned: intact
    # with converged_ratio 0 every cycle runs
    store.array("model_next")[2] = truth[2]
    off = _cycle_config(cfg, 3, converged_ratio=0.0)
    assert not finish_cycle(store, off, groups[2:], 2)[0]["converged"]
    assert int(store.array("rcycle")[2]) == 2


def test_a_polish_pass_cleans_what_the_model_missed_or_overshot():
    from skarim.deconv.cycles import polish_tiles

    w, (y, x) = 64, (30, 37)
    yy, xx = np.mgrid[-w:w, -w:w]
    psf = np.exp(-0.5 * (yy**2 + xx**2) / 1.5**2) * np.cos(0.4 * xx)  # sidelobes, peak 1
    shifted = psf[w - y : 2 * w - y, w - x : 2 * w - x]  # PSF (*) a unit source at (y, x)
    noise = np.random.default_rng(3).normal(0, 1e-4, (2, w, w))
    residual = np.stack([0.1 * shifted, -0.1 * shifted]) + noise  # Jy/beam
    x0 = np.zeros((2, w, w), dtype=np.float32)
    x0[:, y, x] = [0.9, 1.1]  # 10% short, 10% over
    out = polish_tiles(residual, psf, 1e-4, x0, DeconvConfig(polish_sigma=3.0, polish_gain=0.1))
    assert out[:, y, x] == pytest.approx([1.0, 1.0], abs=0.0015)  # 3 sigma of a 1e-4 noise
    elsewhere = out.copy()
    elsewhere[:, y, x] = 0
    assert np.abs(elsewhere).sum() < 0.01  # CLEAN took the noise little


def test_pruning_drops_model_flux_the_data_lack_and_keeps_the_sources(tmp_path):
    from skarim.deconv.cycles import _gaussian_smooth, _prune, channel_sigma, tile_windows
    from skarim.metrics import psf_fwhm_pix

    cfg, store, groups = _gridded_store(tmp_path, _point_sources_ms(tmp_path), "prune")
    sigma = 1e-3  # Jy/beam: the residual's noise
    width = psf_fwhm_pix(store.array("psf")[0]) / 2.3548
    beam = 2 * np.pi * width**2  # pixels: Jy/pixel smoothed to Jy/beam
    floor = np.full((NPIX, NPIX), 2.0 * sigma / beam)  # 2 sigma once smoothed: a low floor
    floor[20, 44] += 10 * sigma  # and a 10 sigma point the data lack: above a 5 sigma cut
    model = floor.copy()
    for y, x, flux in SOURCES:
        model[y, x] += flux
    # the residual of that model: noise, minus the beam-smoothed flux the data do not hold
    lacking = _gaussian_smooth(floor, width, int(np.ceil(4 * width))) * beam
    noise = np.random.default_rng(0).normal(0, sigma, (NPIX, NPIX))
    store.array("residual")[...] = np.broadcast_to(noise - lacking, (3, NPIX, NPIX))
    store.array("model_next")[...] = np.broadcast_to(model, (3, NPIX, NPIX))
    _prune(store, 0, cfg, channel_sigma(store, 0, "residual", tile_windows(cfg)))
    pruned = store.array("model")[0]
    for y, x, _ in SOURCES:  # the sources stay, and the floor within a beam of them
        assert pruned[y, x] == pytest.approx(model[y, x])
    assert pruned[20, 44] == 0  # the model smoothed alone holds it at 10 sigma
    far = np.ones((NPIX, NPIX), bool)
    for y, x, _ in SOURCES:
        far[max(y - 12, 0) : y + 13, max(x - 12, 0) : x + 13] = False
    assert np.count_nonzero(pruned[far]) == 0
    assert np.count_nonzero(pruned) < 0.5 * pruned.size


def test_a_rim_pass_skips_the_tiles_whose_residual_holds_nothing(tmp_path):
    import torch

    from skarim.deconv.cycles import cached_rim, deconvolve_tile_batch, tile_windows

    cfg, store, _ = _gridded_store(tmp_path, _point_sources_ms(tmp_path), "skip")
    sigma = 1e-3  # Jy/beam
    rng = np.random.default_rng(1)
    residual = rng.normal(0, sigma, (NPIX, NPIX))
    residual[40, 20] += 0.2  # 200 sigma in tile (1, 0); tile (1, 1) holds noise only
    floor = np.full((NPIX, NPIX), 1e-4, dtype=np.float32)  # the model of the cycle before
    store.array("residual")[0] = residual
    store.array("model")[0] = floor
    row = [w for w in tile_windows(cfg) if w.ty == 1]  # tiles (1, 0) and (1, 1)
    rim, cpu = cached_rim(None, torch.device("cpu")), torch.device("cpu")
    written, skipped = deconvolve_tile_batch(store, cfg.deconv, rim, cpu, 0, 2, row, sigma)
    assert (written, skipped) == (2, 1) and cfg.deconv.skip_sigma == 8.0
    assert list(store.array("cycle")[0, 1]) == [2, 2]
    out = store.array("model_next")[0]
    np.testing.assert_array_equal(out[32:, 32:], floor[32:, 32:])  # the empty tile: as it was
    assert out[32:, :32].max() > 100 * floor.max()  # the source's tile: the RIM ran there
    # with skipping off, the RIM runs on both tiles and moves the empty one's model too
    store.array("cycle")[0, 1] = [1, 1]
    every = cfg.deconv.model_copy(update={"skip_sigma": 0.0})
    assert deconvolve_tile_batch(store, every, rim, cpu, 0, 2, row, sigma) == (2, 0)
    assert not np.array_equal(store.array("model_next")[0, 32:, 32:], floor[32:, 32:])
