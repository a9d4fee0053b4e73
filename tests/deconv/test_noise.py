"""Tests of skarim.deconv.noise: the robust noise of a residual with pixels beyond the horizon."""

from __future__ import annotations

import numpy as np
import pytest

from skarim.deconv.noise import robust_sigma


def test_robust_sigma_leaves_out_the_zeros_beyond_the_horizon_and_non_finite_pixels():
    rng = np.random.default_rng(4)
    noise = rng.normal(0.0, 2e-3, (128, 128))  # (y, x) Jy/beam
    assert robust_sigma(noise) == pytest.approx(2e-3, rel=0.03)
    yy, xx = np.mgrid[-64:64, -64:64] / 56.0
    blanked = np.where(xx**2 + yy**2 >= 1.0, 0.0, noise)  # a disc of sky, 0 around it
    blanked[0, :5] = np.nan
    assert robust_sigma(blanked) == pytest.approx(2e-3, rel=0.03)
    assert robust_sigma(np.zeros((8, 8))) == 0.0
