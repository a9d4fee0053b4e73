"""FITS masks put on the image grid: the image's own grid copied, any other resampled."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from msfactory import CELL_RAD, NPIX, new_run_store, point_sources_ms

from skarim.config import GridConfig, OutputConfig, ReadConfig, RunConfig
from skarim.errors import InputError
from skarim.io.mask import write_fits_mask
from skarim.io.ms_meta import open_ms
from skarim.run.pipeline import image_wcs


@pytest.fixture
def run(tmp_path):
    cfg = RunConfig(
        read=ReadConfig(ms=point_sources_ms(tmp_path)),
        grid=GridConfig(npix_x=NPIX, npix_y=NPIX, cell_rad=CELL_RAD, tile=32, channels_out=3),
        output=OutputConfig(name=str(tmp_path / "mask")),
    )
    store, _ = new_run_store(cfg)
    return store, image_wcs(cfg, open_ms(cfg.read))


def _write(path, data, header):
    fits.PrimaryHDU(data.astype(np.float32), header).writeto(path)
    return path


def test_a_mask_on_the_image_grid_is_copied_to_every_channel(run, tmp_path):
    store, wcs = run
    mask = np.zeros((NPIX, NPIX))
    mask[30:50, 10:30] = 1.0
    mask[5, 60] = np.nan  # not finite: outside
    header = wcs.celestial().to_header()
    inside = write_fits_mask(store, _write(tmp_path / "m.fits", mask, header), wcs)
    got = store.array("mask")[...]  # (chan, y, x)
    assert got.shape == (3, NPIX, NPIX)
    assert (got == (mask == 1)[None]).all()
    assert inside == pytest.approx(400 / NPIX**2)


def test_a_mask_on_another_grid_is_resampled_at_the_sky_position(run, tmp_path):
    store, wcs = run
    header = wcs.celestial().to_header()
    # half as many pixels of twice the size, on the same centre: pixel (y, x) of the image
    # is at pixel ((y - 32) / 2 + 16, (x - 32) / 2 + 16) of the mask
    header["CDELT1"] *= 2
    header["CDELT2"] *= 2
    header["CRPIX1"] = (header["CRPIX1"] - 1 - 32) / 2 + 16 + 1
    header["CRPIX2"] = (header["CRPIX2"] - 1 - 32) / 2 + 16 + 1
    mask = np.zeros((32, 32))
    mask[20:25, 5:10] = 1.0  # image pixels y 40-49, x 10-19 (edges rounded to the nearest)
    write_fits_mask(store, _write(tmp_path / "coarse.fits", mask, header), wcs)
    got = store.array("mask")[0].astype(bool)
    assert got[41:49, 11:19].all()
    assert not got[:38].any() and not got[51:].any()
    assert not got[:, :8].any() and not got[:, 21:].any()


def test_a_mask_with_nothing_inside_the_image_is_one_line(run, tmp_path):
    store, wcs = run
    path = _write(tmp_path / "empty.fits", np.zeros((NPIX, NPIX)), wcs.celestial().to_header())
    with pytest.raises(InputError, match="no pixel of the image is inside"):
        write_fits_mask(store, path, wcs)
    (tmp_path / "junk.fits").write_text("not a FITS file")
    with pytest.raises(InputError, match="cannot read it as FITS"):
        write_fits_mask(store, tmp_path / "junk.fits", wcs)
