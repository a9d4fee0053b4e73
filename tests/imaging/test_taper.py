"""Tests of skarim.imaging.taper: the Gaussian taper and uv range of the weights, as WSClean's."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from skarim.config import RunConfig, RunFlags, Weighting
from skarim.constants import SPEED_OF_LIGHT_M_S
from skarim.imaging.taper import UVTaper
from skarim.imaging.weighting import WeightGrid
from skarim.run.pipeline import run_imaging
from skarim.sim.simulate import SimulateConfig, simulate

ARCSEC_RAD = math.pi / 180 / 3600


def _corner_uv(cell: np.ndarray, nx: int, ny: int, cell_rad: float) -> np.ndarray:
    """uv distance of each cell's corner, wavelengths, written out from WSClean's xyToUV."""
    y, x = np.divmod(cell, nx)
    return np.hypot((x - nx // 2) / (nx * cell_rad), y / (ny * cell_rad))


def test_gaussian_taper_is_the_fourier_pair_of_an_image_gaussian_of_that_fwhm():
    # An image Gaussian exp(-4 ln2 l^2 / theta^2) has the Fourier transform
    # exp(-pi^2 theta^2 rho^2 / (4 ln 2)): 1/2 at rho = 2 ln 2 / (pi theta)
    theta = 30 * ARCSEC_RAD
    nx, ny, cell_rad = 400, 300, 2 * ARCSEC_RAD
    cell = np.arange(ny // 2 * nx)
    factors = UVTaper(gaussian_fwhm_rad=theta).cell_factors(cell, nx, ny, cell_rad)
    rho = _corner_uv(cell, nx, ny, cell_rad)
    expected = np.exp(-(math.pi**2) * theta**2 * rho**2 / (4 * math.log(2)))
    np.testing.assert_allclose(factors, expected, rtol=1e-12, atol=1e-300)
    assert factors[ny // 4 * nx + nx // 2] < 1  # off the origin: tapered
    assert factors[nx // 2] == 1.0  # the cell (u, v) = (0, 0)


def test_uv_range_cuts_cells_by_their_corner():
    nx, ny, cell_rad = 64, 64, 1 / (64 * 100.0)  # cells of 100 wavelengths
    cell = np.arange(ny // 2 * nx)
    rho = _corner_uv(cell, nx, ny, cell_rad)
    factors = UVTaper(min_uv_lambda=300.0, max_uv_lambda=1000.0).cell_factors(
        cell, nx, ny, cell_rad
    )
    np.testing.assert_array_equal(factors, ((rho >= 300.0) & (rho <= 1000.0)).astype(float))
    assert factors[3 * nx + nx // 2] == 1.0  # corner at exactly 300: kept, as WSClean's "<"
    assert factors[10 * nx + nx // 2] == 1.0  # exactly 1000: kept, as WSClean's ">"
    assert not UVTaper().active and UVTaper(max_uv_lambda=1.0).active


@pytest.mark.parametrize("weighting", list(Weighting))
def test_taper_multiplies_the_untapered_weights_cell_by_cell(weighting):
    """The uniform/Briggs statistics and the rank filter are those of the untapered grid."""
    rng = np.random.default_rng(3)
    freq_hz = np.array([1.0e9, 1.2e9])
    uvw_m = rng.normal(0.0, 300.0, (500, 3))
    weight = rng.uniform(0.5, 2.0, (500, 2)).astype(np.float32)
    taper = UVTaper(gaussian_fwhm_rad=20 * ARCSEC_RAD, min_uv_lambda=200.0, max_uv_lambda=2000.0)
    grids = [
        WeightGrid(npix_x=128, npix_y=96, cell_rad=4 * ARCSEC_RAD, weighting=weighting, taper=t)
        for t in (None, taper)
    ]
    plain, tapered = (grid_weights(g, uvw_m, freq_hz, weight) for g in grids)
    g = grids[1]
    u = uvw_m[:, :1] * freq_hz / SPEED_OF_LIGHT_M_S  # (nrow, nchan) wavelengths
    v = uvw_m[:, 1:2] * freq_hz / SPEED_OF_LIGHT_M_S
    flip = v < 0
    u, v = np.where(flip, -u, u), np.abs(v)
    x = np.floor(u * g.grid_npix_x * g.cell_rad + g.grid_npix_x // 2).astype(int)
    y = np.floor(v * g.grid_npix_y * g.cell_rad).astype(int)
    cell = y * g.grid_npix_x + x
    factor = taper.cell_factors(cell.ravel(), g.grid_npix_x, g.grid_npix_y, g.cell_rad)
    np.testing.assert_allclose(tapered, plain * factor.reshape(plain.shape), rtol=1e-6)
    assert 0 < np.count_nonzero(tapered) < np.count_nonzero(plain)  # the cuts dropped some
    every = np.arange(g.grid_npix_y // 2 * g.grid_npix_x)  # the grid -save-weights writes
    dense = taper.cell_factors(every, g.grid_npix_x, g.grid_npix_y, g.cell_rad)
    np.testing.assert_allclose(g.cell_factors.ravel(), grids[0].cell_factors.ravel() * dense)


def grid_weights(grid: WeightGrid, uvw_m, freq_hz, weight) -> np.ndarray:
    grid.add(uvw_m, freq_hz, weight)
    grid.finalize()
    return grid.imaging_weights(uvw_m, freq_hz, weight)


@pytest.fixture(scope="module")
def meerkat_ms(tmp_path_factory) -> Path:
    """A 30-minute MeerKAT track, 2 channels, a few sources: the WSClean comparison's MS."""
    out = tmp_path_factory.mktemp("taper")
    cfg = SimulateConfig(
        layout="meerkat",
        dec_deg=-30.0,
        duration_h=0.5,
        integration_s=120.0,
        freq_start_hz=1.3e9,
        chan_width_hz=8e6,
        nchan=2,
        npix=128,
        cell_rad=4 * ARCSEC_RAD,
        n_points=8,
        n_gaussians=1,
        seed=2,
    )
    return simulate(cfg, out / "sim.ms", out / "truth.fits").ms_path


#: WSClean's flags, skarim's, and the (taper FWHM arcsec, minuv, maxuv) they both mean
WSCLEAN_CASES = {
    "uniform-taper-uvrange": (
        ["-taper-gaussian", "20", "-minuv-l", "200", "-maxuv-l", "3000"],
        {"taper_gaussian": "20", "minuv_l": 200.0, "maxuv_l": 3000.0},
        (20.0, 200.0, 3000.0),
    ),
    "natural-taper-maxuv": (
        ["-weight", "natural", "-taper-gaussian", "15asec", "-maxuv-l", "2500"],
        {"weight": "natural", "taper_gaussian": "15asec", "maxuv_l": 2500.0},
        (15.0, 0.0, 2500.0),
    ),
    "briggs-taper-minuv": (
        ["-weight", "briggs", "0", "-taper-gaussian", "0.5amin", "-minuv-l", "300"],
        {"weight": "briggs:0", "taper_gaussian": "0.5amin", "minuv_l": 300.0},
        (30.0, 300.0, 0.0),
    ),
}


@pytest.mark.skipif(shutil.which("wsclean") is None, reason="WSClean is not installed")
@pytest.mark.parametrize("case", list(WSCLEAN_CASES))
def test_dirty_and_psf_equal_wscleans_with_the_same_flags(meerkat_ms, tmp_path, case):
    """WSClean 3.1 and skarim image the MS with the same taper and uv flags (WSClean's
    spellings and units on both sides); dirty images and PSFs agree to 1e-4 of the peak."""
    wsclean_flags, skarim_flags, meaning = WSCLEAN_CASES[case]
    npix, tile = 128, 64
    subprocess.run(
        ["wsclean", "-j", "2", "-size", str(npix), str(npix), "-scale", "4asec",
         "-use-wgridder", "-wgridder-accuracy", "1e-6", "-no-small-inversion", "-make-psf",
         "-name", str(tmp_path / "ws"), *wsclean_flags, str(meerkat_ms)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    flags = RunFlags(
        ms=meerkat_ms, size=str(npix), scale="4asec", tile=tile, name=str(tmp_path / "sk"),
        dirty_only=True, make_psf=True, scheduler="sync", **skarim_flags,
    )  # fmt: skip
    cfg = RunConfig.from_flags(flags)
    taper_asec = cfg.grid.taper_gaussian_rad / ARCSEC_RAD
    assert (taper_asec, cfg.grid.min_uv_lambda, cfg.grid.max_uv_lambda) == pytest.approx(meaning)
    grid = cfg.grid.model_copy(update={"epsilon": 1e-6, "double_precision": True})
    products = run_imaging(cfg.model_copy(update={"grid": grid})).products
    dirty = fits.getdata(products["dirty"])[0, 0].astype(np.float64)  # (y, x)
    psf = fits.getdata(products["psf"])[0, 0].astype(np.float64)  # (2 tile, 2 tile)
    ws_dirty = fits.getdata(tmp_path / "ws-dirty.fits")[0, 0].astype(np.float64)
    ws_psf = fits.getdata(tmp_path / "ws-psf.fits")[0, 0].astype(np.float64)
    half = min(tile, npix // 2)  # the PSF box both hold, about the phase centre
    ws_psf = ws_psf[npix // 2 - half : npix // 2 + half, npix // 2 - half : npix // 2 + half]
    psf = psf[tile - half : tile + half, tile - half : tile + half]
    assert np.abs(dirty - ws_dirty).max() < 1e-4 * np.abs(ws_dirty).max()
    assert np.abs(psf - ws_psf).max() < 1e-4 * np.abs(ws_psf).max()
