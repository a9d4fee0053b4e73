"""Tests of skarim.sim.sky: the analytic visibilities of a sky equal those of its image."""

from __future__ import annotations

import numpy as np
import pytest

from skarim.imaging.wgridder import Block, image_to_vis
from skarim.sim.sky import random_sky, render_sky, sky_visibilities


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
