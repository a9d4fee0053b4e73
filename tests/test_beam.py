"""Tests of skarim.beam: the clean-beam fit, the beam kernel, and Gaussian widths and smoothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from skarim.beam import (
    Beam,
    beam_area,
    beam_kernel,
    fit_beam,
    fwhm_to_sigma,
    main_lobe_fwhm_pix,
    psf_fwhm_pix,
    sigma_to_fwhm,
    smooth_gaussian,
    smooth_gaussian_truncated,
)
from skarim.errors import InputError

CELL = np.deg2rad(1.0 / 3600)
WSCLEAN_PSF = Path(__file__).parent / "data" / "wsclean_psf_meerkat.npz"


@pytest.mark.parametrize("pa_deg", [0.5, 30.0, 89.7, 90.0, 135.0, 179.5])
def test_beam_fit_recovers_an_analytic_elliptical_gaussian(pa_deg):
    truth = Beam(major_deg=8.0 / 3600, minor_deg=5.0 / 3600, pa_deg=pa_deg)
    psf = beam_kernel(truth, CELL, (128, 128))
    fit = fit_beam(psf, CELL)
    assert fit.major_deg == pytest.approx(truth.major_deg, rel=0.01)
    assert fit.minor_deg == pytest.approx(truth.minor_deg, rel=0.01)
    diff = (fit.pa_deg - pa_deg + 90) % 180 - 90
    assert abs(diff) < 1.0


@pytest.mark.parametrize("shape", [(128, 128), (96, 130), (16, 16)])
def test_beam_kernel_is_the_analytic_gaussian_to_its_cut_off(shape):
    beam = Beam(major_deg=8.0 / 3600, minor_deg=5.0 / 3600, pa_deg=30.0)
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    east, north = -(xx - nx // 2), yy - ny // 2  # x grows to the west
    sa, sb = 8.0 / 2.3548200450309493, 5.0 / 2.3548200450309493  # sigmas in 1 arcsec pixels
    pa = np.radians(30.0)
    along = east * np.sin(pa) + north * np.cos(pa)
    across = east * np.cos(pa) - north * np.sin(pa)
    full = np.exp(-0.5 * ((along / sa) ** 2 + (across / sb) ** 2))
    got = beam_kernel(beam, CELL, shape)
    assert got.shape == shape and got[ny // 2, nx // 2] == 1.0
    np.testing.assert_allclose(got, full, rtol=0, atol=2e-8)


def test_position_angle_is_east_of_north():
    # a beam elongated along the x axis (east-west) has PA 90; along y (north-south) PA 0
    psf = np.zeros((64, 64))
    yy, xx = np.mgrid[0:64, 0:64]
    psf = np.exp(-0.5 * (((xx - 32) / 4.0) ** 2 + ((yy - 32) / 2.0) ** 2))
    assert fit_beam(psf, CELL).pa_deg == pytest.approx(90.0, abs=0.5)
    psf = np.exp(-0.5 * (((xx - 32) / 2.0) ** 2 + ((yy - 32) / 4.0) ** 2))
    assert fit_beam(psf, CELL).pa_deg % 180 == pytest.approx(0.0, abs=0.5) or fit_beam(
        psf, CELL
    ).pa_deg == pytest.approx(180.0, abs=0.5)


def test_beam_fit_reproduces_wsclean_on_its_own_psf():
    # WSClean 3.1's PSF of a simulated MeerKAT track (Briggs 0, 2 arcsec pixels) and the beam
    # it wrote into the header: 10.455" x 6.355", PA 175.2 deg
    ref = np.load(WSCLEAN_PSF)
    fit = fit_beam(ref["psf"], np.deg2rad(float(ref["cell_deg"])))
    assert fit.major_deg == pytest.approx(float(ref["bmaj_deg"]), rel=1e-6)
    assert fit.minor_deg == pytest.approx(float(ref["bmin_deg"]), rel=1e-6)
    assert fit.pa_deg == pytest.approx(float(ref["bpa_deg"]) % 180, abs=1e-4)


def test_beam_fit_sees_the_quadrant_west_and_north_of_the_peak_only():
    # as WSClean's fit: pixels with a negative offset on either axis do not shape the beam
    truth = Beam(major_deg=8.0 / 3600, minor_deg=5.0 / 3600, pa_deg=30.0)
    psf = beam_kernel(truth, CELL, (128, 128))  # peak at (64, 64)
    ignored, used = psf.copy(), psf.copy()
    ignored[60:64, 66:70] += 0.3  # south of the peak
    ignored[66:70, 60:64] += 0.3  # east of it
    used[66:70, 66:70] += 0.3  # north and west
    same, reference = fit_beam(ignored, CELL), fit_beam(psf, CELL)
    assert same.major_deg == pytest.approx(reference.major_deg, rel=1e-9)
    assert same.minor_deg == pytest.approx(reference.minor_deg, rel=1e-9)
    assert same.pa_deg == pytest.approx(reference.pa_deg, abs=1e-7)
    moved = fit_beam(used, CELL)
    assert moved.major_deg > 1.03 * truth.major_deg and moved.minor_deg < 0.97 * truth.minor_deg
    assert abs((moved.pa_deg - truth.pa_deg + 90) % 180 - 90) > 10.0


def test_beam_fit_refuses_a_psf_without_a_positive_peak():
    with pytest.raises(InputError, match="centre pixel is 0"):
        fit_beam(np.zeros((64, 64)), CELL)


@pytest.mark.parametrize(
    ("major", "minor", "pa", "match"),
    [
        (1e-3, 2e-3, 0.0, "0 < minor <= major"),
        (1e-3, 0.0, 0.0, "0 < minor <= major"),
        (float("nan"), 1e-3, 0.0, "finite"),
    ],
)
def test_beam_rejects_impossible_shapes(major, minor, pa, match):
    with pytest.raises(InputError, match=match):
        Beam(major, minor, pa)


def test_fwhm_sigma_and_area_of_a_gaussian():
    sigma = fwhm_to_sigma(5.0)
    assert np.exp(-0.5 * (2.5 / sigma) ** 2) == pytest.approx(0.5, rel=1e-15)
    assert sigma_to_fwhm(sigma) == pytest.approx(5.0, rel=1e-15)
    round_beam = Beam(major_deg=5.0 / 3600, minor_deg=5.0 / 3600, pa_deg=0.0)
    assert beam_kernel(round_beam, CELL, (64, 64)).sum() == pytest.approx(beam_area(5.0), rel=1e-9)


def test_both_smoothings_keep_flux_and_differ_by_the_cut_off():
    image = np.zeros((64, 64))
    image[30, 33] = 1.0
    fft = smooth_gaussian(image, 5.0)
    sigma = fwhm_to_sigma(5.0)
    cut = smooth_gaussian_truncated(image, sigma, int(np.ceil(4 * sigma)))
    assert fft.sum() == pytest.approx(1.0, rel=1e-9) and cut.sum() == pytest.approx(1.0, rel=1e-12)
    assert 1e-6 * fft.max() < np.abs(fft - cut).max() < 1e-3 * fft.max()


def test_the_two_main_lobe_widths_agree_on_a_round_lobe_only():
    yy, xx = np.mgrid[0:64, 0:64]
    round_psf = np.exp(-0.5 * ((xx - 32) ** 2 + (yy - 32) ** 2) / 3.0**2)
    assert psf_fwhm_pix(round_psf) == main_lobe_fwhm_pix(round_psf)
    assert psf_fwhm_pix(round_psf) == pytest.approx(sigma_to_fwhm(3.0), rel=0.05)
    long_psf = np.exp(-0.5 * (((xx - 32) / 8.0) ** 2 + ((yy - 32) / 2.0) ** 2))
    assert psf_fwhm_pix(long_psf) < 0.8 * main_lobe_fwhm_pix(long_psf)
