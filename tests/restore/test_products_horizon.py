"""The horizon in every product: an all-sky snapshot imaged past it (skarim.restore.products)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from msfactory import point_source_vis, random_uvw_m, write_stokes_i_ms

from skarim.config import (
    ClusterConfig,
    DeconvConfig,
    GridConfig,
    OutputConfig,
    ReadConfig,
    RunConfig,
)
from skarim.io.store import RunStore
from skarim.run.pipeline import run_imaging

NPIX, TILE = 48, 32
CELL_RAD = math.radians(2.5)  # axes reach |l| = 1.05, corners 1.48; the sky is a disc of 23 px
SOURCES = [(24, 24, 1.0), (19, 30, 0.5)]  # FITS (y, x) and flux, Jy


def _no_sky(path) -> np.ndarray:
    """Where astropy's WCS of a product's own header finds no sky: ``(ny, nx)``."""
    header = fits.getheader(path)
    ny, nx = header["NAXIS2"], header["NAXIS1"]
    ra, _ = WCS(header).celestial.pixel_to_world_values(*np.meshgrid(np.arange(nx), np.arange(ny)))
    return ~np.isfinite(ra)


@pytest.fixture(scope="module")
def all_sky_run(tmp_path_factory):
    """A short-baseline snapshot at 50 MHz (a 3.4-pixel beam), imaged and deconvolved."""
    tmp = tmp_path_factory.mktemp("horizon")
    rng = np.random.default_rng(11)
    freq = np.array([5.0e7])
    uvw = random_uvw_m(rng, 400, max_m=20.0, w_frac=0.3)
    vis = sum(
        point_source_vis(uvw, freq, -(x - NPIX / 2) * CELL_RAD, (y - NPIX / 2) * CELL_RAD, flux)
        for y, x, flux in SOURCES
    )
    ms = write_stokes_i_ms(tmp / "sky.ms", uvw, freq, vis.astype(np.complex128))
    cfg = RunConfig(
        read=ReadConfig(ms=ms),
        grid=GridConfig(npix_x=NPIX, npix_y=NPIX, cell_rad=CELL_RAD, tile=TILE),
        deconv=DeconvConfig(device="cpu", major_cycles=1, polish_cycles=1),
        cluster=ClusterConfig(kind="sync"),
        output=OutputConfig(name=str(tmp / "sky")),
    )
    return cfg, run_imaging(cfg).products


def test_every_product_is_nan_beyond_the_horizon_and_finite_inside(all_sky_run):
    _, products = all_sky_run
    assert {"dirty", "psf", "model", "residual", "image"} <= products.keys()
    for name, path in products.items():
        data = fits.getdata(path)[0, 0]  # (y, x)
        no_sky = _no_sky(path)
        assert 0 < no_sky.sum() < no_sky.size, name
        np.testing.assert_array_equal(np.isnan(data), no_sky, err_msg=name)


def test_the_store_holds_zeros_beyond_the_horizon_and_the_sources_are_found(all_sky_run):
    cfg, products = all_sky_run
    store = RunStore.open(cfg.output.store_path)
    no_sky = _no_sky(products["dirty"])
    for name in ("dirty", "residual", "model"):
        plane = store.array(name)[0]  # (y, x)
        assert np.isfinite(plane).all(), name
    for name in ("dirty", "residual"):
        assert np.all(store.array(name)[0][no_sky] == 0.0), name
    image = fits.getdata(products["image"])[0, 0]
    for y, x, flux in SOURCES:
        assert image[y, x] == pytest.approx(flux, rel=0.1)
