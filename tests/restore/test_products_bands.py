"""The run's FITS products streamed in bands: edge bands cut to the image, memory by the band.

The stores here are real Zarr stores (:class:`skarim.io.store.RunStore`) filled with known
arrays, so that the products can be compared with the same products made from whole planes.
"""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from skarim.beam import Beam, beam_kernel, fit_beam
from skarim.config import GridConfig, OutputConfig, ReadConfig, RunConfig
from skarim.io.store import RunStore
from skarim.io.wcs import ImageWCS
from skarim.restore.products import PRODUCTS, channel_beams, mfs_weights, write_products
from skarim.restore.restore import restore_channel

CELL_RAD = math.radians(1.0 / 3600)
SUMWT = (1.0, 3.0, 2.0, 4.0)  # per channel


def _store(tmp_path: Path, ny: int, nx: int, nchan: int, tile: int) -> tuple[RunStore, RunConfig]:
    """A store of ``nchan`` channels of ``ny x nx`` noise and point sources, Gaussian PSFs."""
    wcs = ImageWCS(
        npix_x=nx,
        npix_y=ny,
        cell_rad=CELL_RAD,
        ra_rad=1.0,
        dec_rad=-0.5,
        freq_hz=np.linspace(1.0e9, 1.3e9, nchan),
        chan_width_hz=np.full(nchan, 1.0e8),
    )
    name = tmp_path / f"s{nchan}x{ny}x{nx}"
    cfg = RunConfig(
        read=ReadConfig(ms=tmp_path / "unused.ms"),
        grid=GridConfig(npix_x=nx, npix_y=ny, cell_rad=CELL_RAD, channels_out=nchan, tile=tile),
        output=OutputConfig(name=str(name)),
    )
    store = RunStore.open_or_create(
        cfg.output.store_path,
        config={"test": name.name},
        ms_fingerprint={},
        wcs=wcs,
        tile=tile,
        gridder_conventions={},
    )
    rng = np.random.default_rng(ny + nx + nchan)
    for c in range(nchan):
        beam = Beam((4.0 + c) / 3600, 3.0 / 3600, 20.0 * c)  # a PSF the beam fit finds again
        store.array("psf")[c] = beam_kernel(beam, CELL_RAD, (2 * tile, 2 * tile))
        for y0 in range(0, ny, tile):
            rows = min(tile, ny - y0)
            model = np.zeros((rows, nx), dtype=np.float32)
            model.flat[rng.integers(0, model.size, 5)] = rng.uniform(0.5, 2.0, 5)
            store.array("model")[c, y0 : y0 + rows] = model
            store.array("residual")[c, y0 : y0 + rows] = 0.01 * rng.standard_normal((rows, nx))
            store.array("dirty")[c, y0 : y0 + rows] = rng.standard_normal((rows, nx))
    store.array("sumwt")[...] = np.array(SUMWT[:nchan])
    return store, cfg


def test_products_with_partial_edge_bands_equal_those_made_from_whole_planes(tmp_path):
    # neither 200 nor 160 is a multiple of the 64-pixel tile: the last band has 8 rows
    store, cfg = _store(tmp_path, ny=200, nx=160, nchan=3, tile=64)
    products = write_products(store, cfg, tuple(PRODUCTS))
    arrays = {name: store.array(name)[...] for name in ("dirty", "psf", "model", "residual")}
    for name, expected in arrays.items():
        np.testing.assert_array_equal(fits.getdata(products[name])[0], expected)
    weights = mfs_weights(store)
    mfs = {name: _weighted_sum(weights, cube) for name, cube in arrays.items()}
    for name, plane in mfs.items():
        np.testing.assert_array_equal(fits.getdata(products[f"MFS-{name}"])[0, 0], plane)

    beams = channel_beams(store)
    assert beams[2].major_deg == pytest.approx(6.0 / 3600, rel=1e-3)
    image = fits.getdata(products["image"])[0]  # (nchan, ny, nx)
    for c, beam in enumerate(beams):
        whole = restore_channel(arrays["model"][c], arrays["residual"][c], beam, CELL_RAD)
        np.testing.assert_allclose(image[c], whole, rtol=0, atol=3e-7 * np.abs(whole).max())
    mfs_beam = fit_beam(mfs["psf"], CELL_RAD)
    whole = restore_channel(mfs["model"], mfs["residual"], mfs_beam, CELL_RAD)
    got = fits.getdata(products["MFS-image"])[0, 0]
    np.testing.assert_allclose(got, whole, rtol=0, atol=3e-7 * np.abs(whole).max())


def _weighted_sum(weights: np.ndarray, cube: np.ndarray) -> np.ndarray:
    """``sum_c weights[c] * cube[c]`` in float64, channel after channel, as float32."""
    return sum(w * plane.astype(np.float64) for w, plane in zip(weights, cube, strict=True)).astype(
        np.float32
    )


def _products_peak(tmp_path: Path, ny: int, nx: int, nchan: int) -> int:
    """Peak of traced allocations (numpy's included) while every product is written."""
    store, cfg = _store(tmp_path, ny=ny, nx=nx, nchan=nchan, tile=128)
    tracemalloc.start()
    try:
        write_products(store, cfg, tuple(PRODUCTS))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_follows_the_image_width_not_its_height_or_channels(tmp_path):
    # bands of one tile row (128 rows) by the image's width
    base = _products_peak(tmp_path, ny=256, nx=256, nchan=2)
    # four times the height, one more channel: six times the data, the same bands
    taller = _products_peak(tmp_path, ny=1024, nx=256, nchan=3)
    assert taller < 1.3 * base
    # sixteen times the area: bands four times wider, fixed costs (PSF, beams, headers) alike;
    # a whole cube or plane in memory would make it about sixteen times
    wider = _products_peak(tmp_path, ny=1024, nx=1024, nchan=2)
    assert wider < 4 * base
