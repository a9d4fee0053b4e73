"""Tests of skarim.sim.sky: the analytic visibilities of a sky equal those of its image; curved
spectra."""

from __future__ import annotations

import numpy as np
import pytest

from skarim.imaging.wgridder import Block, image_to_vis
from skarim.sim.sky import SkyModel, random_sky, render_sky, sky_visibilities


def test_analytic_visibilities_equal_the_prediction_of_the_rendered_sky():
    rng = np.random.default_rng(1)
    npix, cell = 256, np.deg2rad(2 / 3600)
    sky = random_sky(rng, npix, 1.4e9, n_points=5, n_gaussians=3)
    uvw = rng.uniform(-3000, 3000, (2000, 3))
    uvw[:, 2] *= 0.3  # non-coplanar: the w term counts
    freq = np.array([1.3e9, 1.5e9])
    analytic = sky_visibilities(sky, uvw, freq, npix, cell, rows_per_block=300)
    for c, f in enumerate(freq):
        image = render_sky(sky, npix, npix, f)
        gridded = image_to_vis(
            uvw_m=uvw,
            freq_hz=freq[c : c + 1],
            image=image,
            block=Block.full(npix, npix, cell),
            epsilon=1e-10,
        )[:, 0]
        # the rendered Gaussians are sampled on pixels: they agree to 1e-5 of the peak
        assert np.abs(analytic[:, c] - gridded).max() < 1e-5 * np.abs(gridded).max()
    zero = sky_visibilities(sky, np.zeros((1, 3)), freq[:1], npix, cell)
    total = np.sum(sky.flux_jy * (freq[0] / sky.ref_freq_hz) ** sky.spectral_index)
    assert zero[0, 0] == pytest.approx(total, rel=1e-12)


def _one_source(alpha: float, beta: float | None, f0: float = 1.3e9) -> SkyModel:
    one = np.ones(1)
    return SkyModel(
        x_pix=32 * one, y_pix=32 * one, flux_jy=2.0 * one, spectral_index=alpha * one,
        major_pix=0 * one, minor_pix=0 * one, pa_rad=0 * one, ref_freq_hz=f0,
        curvature=None if beta is None else beta * one,
    )  # fmt: skip


def test_curved_spectrum_has_the_analytic_flux_ratio_and_log_slope():
    """``S(f) / S0 = (f / f0)^(alpha + beta ln(f / f0))``: at ``f = e f0`` that is
    ``e^(alpha + beta)``, at ``f = f0 / 2`` it is ``2^(-alpha + beta ln 2)``."""
    f0, alpha, beta = 1.3e9, -0.7, -0.3
    sky = _one_source(alpha, beta, f0)
    assert sky.flux_at(np.e * f0)[0] / 2.0 == pytest.approx(np.exp(alpha + beta), rel=1e-13)
    expected = 2.0 ** (-alpha + beta * np.log(2.0))
    assert sky.flux_at(f0 / 2)[0] / 2.0 == pytest.approx(expected, rel=1e-13)
    # the log-slope alpha + 2 beta ln(f / f0), against a centred difference
    f, h = 1.7e9, 1e-5
    numeric = (np.log(sky.flux_at(f * np.exp(h))) - np.log(sky.flux_at(f * np.exp(-h)))) / (2 * h)
    assert sky.log_slope_at(f)[0] == pytest.approx(alpha + 2 * beta * np.log(f / f0), abs=1e-12)
    assert sky.log_slope_at(f)[0] == pytest.approx(numeric[0], abs=1e-8)
    # rendered and observed at zero spacing, the same flux
    image = render_sky(sky, 64, 64, f)
    assert image.sum() == pytest.approx(sky.flux_at(f)[0], rel=1e-14)
    vis = sky_visibilities(sky, np.zeros((1, 3)), np.array([f]), 64, np.deg2rad(2 / 3600))
    assert vis[0, 0].real == pytest.approx(sky.flux_at(f)[0], rel=1e-14)


def test_zero_curvature_is_the_power_law_bit_for_bit():
    """``beta = 0`` and no curvature give the same fluxes; a sky drawn without ranges is the
    seed's power-law sky, and leaves the generator (so the noise) where that sky left it."""
    power, flat = _one_source(-0.7, None), _one_source(-0.7, 0.0)
    for f in (0.9e9, 1.3e9, 1.7e9):
        np.testing.assert_array_equal(power.flux_at(f), flat.flux_at(f))
        np.testing.assert_array_equal(power.flux_at(f), 2.0 * (f / 1.3e9) ** -0.7)
    rng = np.random.default_rng(5)
    sky = random_sky(rng, 128, 1.3e9, n_points=6, n_gaussians=2)
    assert sky.curvature is None
    # the seed's power-law sky and next draw, pinned: the spectral options must not move them
    assert sky.spectral_index[:3].tolist() == [
        -0.8961494712088025, -0.7346310449724064, -0.9578837493507717,
    ]  # fmt: skip
    assert sky.flux_jy[1] == 0.11378603360228795
    assert sky.x_pix[:3].tolist() == [81.0, 94.0, 14.0]
    assert rng.random() == 0.8062153310270436


def test_random_sky_draws_indices_and_curvatures_in_their_ranges():
    sky = random_sky(
        np.random.default_rng(2), 256, 1.3e9, n_points=200, n_gaussians=20,
        spectral_index_range=(-2.0, 1.0), curvature_range=(-0.5, 0.2),
    )  # fmt: skip
    assert sky.spectral_index.min() >= -2.0 and sky.spectral_index.max() <= 1.0
    assert sky.spectral_index.min() < -1.8 and sky.spectral_index.max() > 0.8  # spread out
    assert sky.curvature is not None and len(sky.curvature) == 220
    assert sky.curvature.min() >= -0.5 and sky.curvature.max() <= 0.2
