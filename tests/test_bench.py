"""The benchmark's scorer on cases with known answers (no tools run, no timings)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from scoring import (  # noqa: E402
    beam_fwhm_pix,
    json_safe,
    residual_rms,
    score_model,
    truth_per_output_channel,
)

from skarim.beam import Beam  # noqa: E402

FWHM_PIX = 4.0


@pytest.fixture
def truth() -> np.ndarray:
    """``(2, 64, 64)`` sky: two points and a Gaussian, positive total flux."""
    rng = np.random.default_rng(3)
    cube = np.zeros((2, 64, 64))
    cube[:, 20, 30] = [1.0, 0.8]
    cube[:, 40, 12] = [0.05, 0.04]
    yy, xx = np.mgrid[0:64, 0:64]
    cube += 0.01 * np.exp(-((yy - 44) ** 2 + (xx - 44) ** 2) / 18.0)
    return cube + 1e-4 * rng.random(cube.shape)


def test_perfect_model_scores_infinite_snr(truth: np.ndarray) -> None:
    s = score_model(truth.copy(), truth, FWHM_PIX)
    assert s.snr_db == math.inf
    assert s.smoothed_snr_db > 100.0  # equal up to FFT round-off
    assert s.flux_ratio == pytest.approx(1.0)
    assert s.peak_offset_pix == 0.0


def test_zero_model_scores_zero_db(truth: np.ndarray) -> None:
    s = score_model(np.zeros_like(truth), truth, FWHM_PIX)
    assert s.snr_db == pytest.approx(0.0, abs=1e-12)
    assert s.smoothed_snr_db == pytest.approx(0.0, abs=1e-9)
    assert s.flux_ratio == 0.0


@pytest.mark.parametrize("factor", [0.5, 0.9, 2.0])
def test_scaled_model_scores_the_analytic_value(truth: np.ndarray, factor: float) -> None:
    """``model = a truth`` gives ``-20 log10|1 - a|`` dB raw and smoothed: 6.02 dB for a half."""
    expected = -20.0 * math.log10(abs(1.0 - factor))
    s = score_model(factor * truth, truth, FWHM_PIX)
    assert s.snr_db == pytest.approx(expected, abs=1e-9)
    assert s.smoothed_snr_db == pytest.approx(expected, abs=1e-6)
    assert s.flux_ratio == pytest.approx(factor)
    if factor == 0.5:
        assert s.snr_db == pytest.approx(10.0 * math.log10(4.0)) == pytest.approx(6.0206, abs=1e-4)


def test_smoothing_forgives_a_one_pixel_shift(truth: np.ndarray) -> None:
    """A point moved by a fraction of the beam costs much less after smoothing."""
    shifted = np.roll(truth, 1, axis=-1)
    s = score_model(shifted, truth, FWHM_PIX)
    assert s.smoothed_snr_db > s.snr_db + 5.0
    assert s.peak_offset_pix == pytest.approx(1.0)


def test_shape_mismatch_is_refused(truth: np.ndarray) -> None:
    with pytest.raises(ValueError, match="shape"):
        score_model(truth[:1], truth, FWHM_PIX)


def test_truth_is_averaged_over_output_channel_groups() -> None:
    truth = np.arange(4, dtype=float)[:, None, None] * np.ones((4, 8, 8))  # planes 0, 1, 2, 3
    out = truth_per_output_channel(truth, 2)
    assert out.shape == (2, 8, 8)
    np.testing.assert_allclose(out[:, 0, 0], [0.5, 2.5])


def test_residual_rms_and_beam_width() -> None:
    assert residual_rms(np.full((2, 4, 4), -3.0)) == pytest.approx(3.0)
    cell_rad = math.radians(2.0 / 3600)
    beam = Beam(major_deg=8.0 / 3600, minor_deg=2.0 / 3600, pa_deg=30.0)
    assert beam_fwhm_pix(beam, cell_rad) == pytest.approx(2.0)  # sqrt(8 * 2) / 2


def test_json_safe_replaces_non_finite() -> None:
    assert json_safe({"a": [math.inf, -math.inf, math.nan, 1.5]}) == {
        "a": ["inf", "-inf", "nan", 1.5]
    }
