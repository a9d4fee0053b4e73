"""Accepting, refusing and pruning a major cycle's models by their exact residuals."""

from __future__ import annotations

import numpy as np
import pytest
from msfactory import CELL_RAD, NPIX, SOURCES, gridded_store, new_run_store, point_sources_ms

from skarim.beam import beam_area, fwhm_to_sigma, psf_fwhm_pix, smooth_gaussian_truncated
from skarim.config import GridConfig, OutputConfig, ReadConfig, RunConfig
from skarim.deconv.major_cycle import PRUNE_SPAN_TILES, _prune, finish_cycle
from skarim.deconv.noise import channel_sigma
from skarim.deconv.tiles import tile_windows


def _cycle_config(cfg: RunConfig, cycles: int, converged_ratio: float = 0.0) -> RunConfig:
    deconv = {"major_cycles": cycles, "converged_ratio": converged_ratio}
    return cfg.model_copy(update={"deconv": cfg.deconv.model_copy(update=deconv)})


def test_a_cycle_that_makes_the_residual_worse_is_refused_and_stops_the_channel(tmp_path):
    cfg, store, groups = gridded_store(tmp_path, point_sources_ms(tmp_path), "cycles")
    cfg = _cycle_config(cfg, 3)
    truth = np.zeros((3, NPIX, NPIX), dtype=np.float32)
    for y, x, flux in SOURCES:
        truth[:, y, x] = flux
    # cycle 1: half the sky, better than nothing: accepted in every channel
    store.array("model_next")[...] = 0.5 * truth
    stats = finish_cycle(store, cfg, groups, 1)
    assert [s.stopped for s in stats] == [False] * 3
    assert np.array_equal(store.array("model")[...], 0.5 * truth)
    assert list(store.array("rcycle")[...]) == [1, 1, 1]
    residual_1 = store.array("residual")[...].copy()
    rms_1 = [s.rms for s in stats]
    # cycle 2: channel 1 gets the sky, channels 0 and 2 three times it (worse): refused there
    store.array("model_next")[...] = np.stack([3 * truth[0], truth[1], 3 * truth[2]])
    stats = finish_cycle(store, cfg, groups, 2)
    assert [s.stopped for s in stats] == [True, False, True]
    model = store.array("model")[...]
    assert np.array_equal(model[[0, 2]], 0.5 * truth[[0, 2]])  # previous model kept
    assert np.array_equal(model[1], truth[1])
    residual = store.array("residual")[...]
    assert np.allclose(residual[[0, 2]], residual_1[[0, 2]], atol=1e-6)  # and its residual
    assert np.abs(residual[1]).max() < 1e-6
    assert list(store.array("rcycle")[...]) == [3, 2, 3]  # the RIM's phase ends at cycle 3
    assert (store.array("cycle")[[0, 2]] == 3).all()
    assert stats[0].refused_rms > stats[0].rms == pytest.approx(store.array("rms")[0])
    assert stats[0].refused_rms > stats[0].previous_rms == rms_1[0]  # the warning's pair
    assert not stats[0].unchanged
    # cycle 4 is the first of 2 polish cycles: a refusal there ends the channel at cycle 5
    assert cfg.deconv.polish_cycles == 2
    store.array("model_next")[...] = np.stack([truth[0], 3 * truth[1], truth[2]])
    stats = finish_cycle(store, cfg, groups, 4)
    assert [s.stopped for s in stats] == [False, True, False]
    assert list(store.array("rcycle")[...]) == [4, 5, 4]
    assert (store.array("cycle")[1] == 5).all()
    assert np.array_equal(store.array("model")[1], truth[1])
    # a cycle that changes nothing is refused too (as is a rerun after the copy-back)
    store.array("model_next")[0] = store.array("model")[0]
    unchanged = finish_cycle(store, cfg, groups[:1], 5)[0]
    assert unchanged.stopped and unchanged.unchanged  # logged as such, not as a rise


def test_a_channel_whose_residual_is_noise_like_ends_its_phase_with_the_new_model(tmp_path):
    cfg, store, groups = gridded_store(tmp_path, point_sources_ms(tmp_path), "converged")
    cfg = _cycle_config(cfg, 3, converged_ratio=1.05)
    truth = np.zeros((3, NPIX, NPIX), dtype=np.float32)
    for y, x, flux in SOURCES:
        truth[:, y, x] = flux
    # channel 0 gets the whole sky: its residual is round-off, RMS about its MAD noise;
    # channels 1 and 2 half of it: their residuals hold sources, RMS far above the MAD
    store.array("model_next")[...] = np.stack([truth[0], 0.5 * truth[1], 0.5 * truth[2]])
    stats = finish_cycle(store, cfg, groups, 1)
    assert [s.converged for s in stats] == [True, False, False]
    assert [s.stopped for s in stats] == [False] * 3
    assert stats[0].noise_ratio <= 1.05 < min(s.noise_ratio for s in stats[1:])
    assert list(store.array("rcycle")[...]) == [3, 1, 1]  # the RIM's cycles 2 and 3 skipped
    assert (store.array("cycle")[0] == 3).all() and (store.array("cycle")[1:] == 0).all()
    assert np.array_equal(store.array("model")[0], truth[0])  # the new model, pruned: intact
    # with converged_ratio 0 every cycle runs
    store.array("model_next")[2] = truth[2]
    off = _cycle_config(cfg, 3, converged_ratio=0.0)
    assert not finish_cycle(store, off, groups[2:], 2)[0].converged
    assert int(store.array("rcycle")[2]) == 2


def test_pruning_drops_model_flux_the_data_lack_and_keeps_the_sources(tmp_path):
    cfg, store, groups = gridded_store(tmp_path, point_sources_ms(tmp_path), "prune")
    sigma = 1e-3  # Jy/beam: the residual's noise
    width = psf_fwhm_pix(store.array("psf")[0]) / 2.3548
    beam = 2 * np.pi * width**2  # pixels: Jy/pixel smoothed to Jy/beam
    floor = np.full((NPIX, NPIX), 2.0 * sigma / beam)  # 2 sigma once smoothed: a low floor
    floor[20, 44] += 10 * sigma  # and a 10 sigma point the data lack: above a 5 sigma cut
    model = floor.copy()
    for y, x, flux in SOURCES:
        model[y, x] += flux
    # the residual of that model: noise, minus the beam-smoothed flux the data do not hold
    lacking = smooth_gaussian_truncated(floor, width, int(np.ceil(4 * width))) * beam
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


def test_pruning_block_by_block_equals_pruning_the_whole_plane(tmp_path):
    # 600 x 72 pixels in 32-pixel tiles: blocks of 8 tiles (256 columns) plus halos, and a
    # partial last tile in both directions
    ms = point_sources_ms(tmp_path)
    cfg = RunConfig(
        read=ReadConfig(ms=ms),
        grid=GridConfig(npix_x=600, npix_y=72, cell_rad=CELL_RAD, tile=32),
        output=OutputConfig(name=str(tmp_path / "blocks")),
    )
    assert PRUNE_SPAN_TILES * cfg.grid.tile < 600
    store, _ = new_run_store(cfg)
    yy, xx = np.mgrid[-32:32, -32:32]
    store.array("psf")[0] = np.exp(-0.5 * (yy**2 + xx**2) / 2.0**2)  # FWHM 4.7 pixels
    rng = np.random.default_rng(2)
    model = np.where(rng.random((72, 600)) < 0.05, rng.exponential(0.01, (72, 600)), 0.0)
    residual = rng.normal(0, 1e-3, (72, 600))
    store.array("model_next")[0] = model
    store.array("residual")[0] = residual
    _prune(store, 0, cfg, 1e-3)
    fwhm = psf_fwhm_pix(store.array("psf")[0])
    width = fwhm_to_sigma(fwhm)
    whole = smooth_gaussian_truncated(
        store.array("model_next")[0].astype(np.float64), width, int(np.ceil(4 * width))
    )
    restored = whole * beam_area(fwhm) + store.array("residual")[0]
    expected = np.where(restored >= cfg.deconv.prune_sigma * 1e-3, model, 0.0)
    np.testing.assert_array_equal(store.array("model")[0], expected.astype(np.float32))
    assert 0 < np.count_nonzero(expected) < np.count_nonzero(model)  # the cut matters here
