"""The Hogbom polish of the model windows in the last major cycles."""

from __future__ import annotations

import numpy as np
import pytest

from skarim.config import DeconvConfig
from skarim.deconv.hogbom_deconvolver import polish_windows


def test_a_polish_pass_cleans_what_the_model_missed_or_overshot():
    w, (y, x) = 64, (30, 37)
    yy, xx = np.mgrid[-w:w, -w:w]
    psf = np.exp(-0.5 * (yy**2 + xx**2) / 1.5**2) * np.cos(0.4 * xx)  # sidelobes, peak 1
    shifted = psf[w - y : 2 * w - y, w - x : 2 * w - x]  # PSF (*) a unit source at (y, x)
    noise = np.random.default_rng(3).normal(0, 1e-4, (2, w, w))
    residual = np.stack([0.1 * shifted, -0.1 * shifted]) + noise  # Jy/beam
    x0 = np.zeros((2, w, w), dtype=np.float32)
    x0[:, y, x] = [0.9, 1.1]  # 10% short, 10% over
    out, quiet = polish_windows(
        residual, psf, 1e-4, x0, DeconvConfig(polish_sigma=3.0, polish_gain=0.1)
    )
    assert quiet == 0
    assert out[:, y, x] == pytest.approx([1.0, 1.0], abs=0.0015)  # 3 sigma of a 1e-4 noise
    elsewhere = out.copy()
    elsewhere[:, y, x] = 0
    assert np.abs(elsewhere).sum() < 0.01  # CLEAN took the noise little


def test_a_window_within_the_threshold_keeps_its_model_as_it_is():
    w = 32
    yy, xx = np.mgrid[-w:w, -w:w]
    psf = np.exp(-0.5 * (yy**2 + xx**2) / 1.5**2)
    rng = np.random.default_rng(4)
    residual = rng.uniform(-2.9e-4, 2.9e-4, (3, w, w))  # below 3 sigma of 1e-4 everywhere
    residual[1, 10, 12] = 5e-4  # but one window holds a source
    x0 = rng.normal(0, 1e-3, (3, w, w)).astype(np.float32)
    out, quiet = polish_windows(residual, psf, 1e-4, x0, DeconvConfig(polish_sigma=3.0))
    assert quiet == 2
    np.testing.assert_array_equal(out[[0, 2]], x0[[0, 2]])
    assert out[1, 10, 12] > x0[1, 10, 12]
