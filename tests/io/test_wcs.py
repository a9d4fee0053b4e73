"""Tests of skarim.io.wcs: the FITS header and the pixel <-> sky mapping."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from astropy.wcs import WCS

from skarim.errors import InputError
from skarim.io.wcs import ImageWCS, beyond_horizon, horizon_npix

CELL_RAD = math.radians(1.5 / 3600)


def make_wcs(**changes) -> ImageWCS:
    """A 64 x 48 image of three evenly spaced channels at Dec -30."""
    fields = dict(
        npix_x=64,
        npix_y=48,
        cell_rad=CELL_RAD,
        ra_rad=math.radians(150.0),
        dec_rad=math.radians(-30.0),
        freq_hz=np.array([1.0e9, 1.05e9, 1.10e9]),
        chan_width_hz=np.full(3, 5.0e7),
        telescope="MeerKAT",
        date_obs="2024-05-01T12:00:00",
    )
    fields.update(changes)
    return ImageWCS(**fields)


def sin_pixel(wcs: ImageWCS, ra_rad: float, dec_rad: float) -> tuple[float, float]:
    """0-based pixel of a sky position from the SIN projection written out by hand."""
    dra = ra_rad - wcs.ra_rad
    l = math.cos(dec_rad) * math.sin(dra)  # noqa: E741 -- the direction cosine's name
    m = math.sin(dec_rad) * math.cos(wcs.dec_rad) - math.cos(dec_rad) * math.sin(
        wcs.dec_rad
    ) * math.cos(dra)
    return wcs.npix_x / 2 - l / wcs.cell_rad, wcs.npix_y / 2 + m / wcs.cell_rad


def test_header_axes_and_reference_values():
    wcs = make_wcs()
    h = wcs.header()
    cell_deg = math.degrees(CELL_RAD)
    assert [h[f"NAXIS{i}"] for i in range(1, 5)] == [64, 48, 3, 1]
    assert [h[f"CTYPE{i}"] for i in range(1, 5)] == ["RA---SIN", "DEC--SIN", "FREQ", "STOKES"]
    assert h["CDELT1"] == pytest.approx(-cell_deg, rel=1e-15)
    assert h["CDELT1"] < 0
    assert h["CDELT2"] == pytest.approx(cell_deg, rel=1e-15)
    assert (h["CRPIX1"], h["CRPIX2"]) == (33.0, 25.0)
    assert h["CRVAL1"] == pytest.approx(150.0, abs=1e-12)
    assert h["CRVAL2"] == pytest.approx(-30.0, abs=1e-12)
    assert (h["CUNIT1"], h["CUNIT2"], h["CUNIT3"]) == ("deg", "deg", "Hz")
    assert (h["CRPIX3"], h["CRVAL3"], h["CDELT3"]) == (1.0, 1.0e9, pytest.approx(5.0e7))
    assert (h["CRPIX4"], h["CRVAL4"], h["CDELT4"]) == (1.0, 1.0, 1.0)
    assert (h["RADESYS"], h["EQUINOX"], h["SPECSYS"]) == ("FK5", 2000.0, "TOPOCENT")
    assert h["TELESCOP"] == "MeerKAT"
    assert h["DATE-OBS"] == "2024-05-01T12:00:00.000"
    assert h["MJD-OBS"] == pytest.approx(60431.5, abs=1e-9)
    assert (h["OBSRA"], h["OBSDEC"]) == (pytest.approx(150.0), pytest.approx(-30.0))
    assert "COMMENT" not in h


def test_header_without_telescope_or_date():
    h = make_wcs(telescope=None, date_obs=None).header()
    for key in ("TELESCOP", "DATE-OBS", "MJD-OBS"):
        assert key not in h


def test_uneven_channels_fall_back_to_first_width_and_say_so():
    wcs = make_wcs(freq_hz=np.array([1.0e9, 1.05e9, 1.2e9]), chan_width_hz=[4e7, 4e7, 4e7])
    h = wcs.header()
    assert not wcs.evenly_spaced()
    assert h["CDELT3"] == 4e7
    assert "unevenly spaced" in str(h["COMMENT"])


def test_single_channel_uses_its_width():
    h = make_wcs(freq_hz=[1.4e9], chan_width_hz=[2.5e5]).header()
    assert (h["NAXIS3"], h["CRVAL3"], h["CDELT3"]) == (1, 1.4e9, 2.5e5)


def test_descending_channels_give_negative_spacing():
    h = make_wcs(freq_hz=[1.2e9, 1.1e9, 1.0e9], chan_width_hz=[-1e8] * 3).header()
    assert h["CDELT3"] == pytest.approx(-1e8)
    assert "COMMENT" not in h


def test_phase_centre_is_pixel_half_npix():
    wcs = make_wcs()
    x, y = wcs.pixel_of(wcs.ra_rad, wcs.dec_rad)
    assert x == pytest.approx(32.0, abs=1e-9)
    assert y == pytest.approx(24.0, abs=1e-9)


@pytest.mark.parametrize("dec0_deg", [-30.0, 0.0, 45.0, -80.0])
@pytest.mark.parametrize(("dx_pix", "dy_pix"), [(7.0, -3.0), (-20.5, 11.25), (0.0, 23.0)])
def test_offset_maps_to_sin_projection_pixel(dec0_deg, dx_pix, dy_pix):
    wcs = make_wcs(dec_rad=math.radians(dec0_deg))
    # a sky position roughly (dx_pix, dy_pix) pixels from the centre, in RA/Dec
    ra = wcs.ra_rad - dx_pix * CELL_RAD / math.cos(wcs.dec_rad)
    dec = wcs.dec_rad + dy_pix * CELL_RAD
    expected = sin_pixel(wcs, ra, dec)
    assert wcs.pixel_of(ra, dec) == pytest.approx(expected, abs=1e-6)
    # the 4-D header gives the same celestial pixel as its 2-D part
    x, y, _, _ = WCS(wcs.header()).all_world2pix(math.degrees(ra), math.degrees(dec), 1.0e9, 1.0, 0)
    assert (float(x), float(y)) == pytest.approx(expected, abs=1e-6)


def test_one_pixel_to_lower_x_is_one_cell_east():
    wcs = make_wcs(dec_rad=math.radians(60.0))
    ra_deg, dec_deg = wcs.celestial().wcs_pix2world(31.0, 24.0, 0)
    dra = math.radians(float(ra_deg)) - wcs.ra_rad
    l = math.cos(math.radians(float(dec_deg))) * math.sin(dra)  # noqa: E741
    assert dra > 0  # east: RA grows
    assert l == pytest.approx(CELL_RAD, rel=1e-9)


def test_dict_round_trip_through_json():
    wcs = make_wcs(freq_hz=[1.0e9, 1.3e9], chan_width_hz=[1e6, 2e6])
    back = ImageWCS.from_dict(json.loads(json.dumps(wcs.to_dict())))
    assert back == wcs
    assert hash(back) == hash(wcs)
    np.testing.assert_array_equal(back.freq_hz, [1.0e9, 1.3e9])
    assert back != make_wcs()
    assert back.header() == wcs.header()


def test_from_dict_names_missing_and_unknown_fields():
    d = make_wcs().to_dict()
    del d["cell_rad"]
    d["cel_rad"] = 1e-5
    with pytest.raises(InputError, match=r"missing \['cell_rad'\], unknown \['cel_rad'\]"):
        ImageWCS.from_dict(d)


def test_is_immutable():
    wcs = make_wcs()
    with pytest.raises(dataclasses.FrozenInstanceError):
        wcs.npix_x = 128
    with pytest.raises(ValueError, match="read-only"):
        wcs.freq_hz[0] = 2e9


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"npix_x": 63}, "npix_x must be a positive even integer"),
        ({"npix_y": 0}, "npix_y must be a positive even integer"),
        ({"cell_rad": -1e-5}, "cell_rad must be positive"),
        ({"dec_rad": 2.0}, "dec_rad must lie in"),
        ({"freq_hz": []}, "freq_hz must hold"),
        ({"chan_width_hz": [1e6, 1e6]}, "chan_width_hz has 2 values for 3 channels"),
        ({"date_obs": "yesterday"}, "date_obs 'yesterday' is not an ISO date"),
    ],
)
def test_rejects_bad_geometry(changes, match):
    with pytest.raises(InputError, match=match):
        make_wcs(**changes)


def test_beyond_horizon_is_where_the_sin_projection_has_no_sky():
    """Against astropy's WCS of the image's own header: NaN where SIN has no sky."""
    wcs = make_wcs(npix_x=64, npix_y=48, cell_rad=math.radians(3.0))  # |l| up to 1.68
    ra, _ = WCS(wcs.header()).celestial.pixel_to_world_values(*np.mgrid[0:64, 0:48])
    no_sky = ~np.isfinite(ra.T)  # (48, 64) FITS order
    whole = beyond_horizon(64, 48, wcs.cell_rad, (0, 48), (0, 64))
    np.testing.assert_array_equal(whole, no_sky)
    assert 0 < no_sky.sum() < no_sky.size
    block = beyond_horizon(64, 48, wcs.cell_rad, (10, 30), (40, 64))  # a block of it
    np.testing.assert_array_equal(block, no_sky[10:30, 40:64])
    assert beyond_horizon(64, 48, wcs.cell_rad, (20, 28), (28, 36)) is None  # the centre
    assert beyond_horizon(64, 48, CELL_RAD, (0, 48), (0, 64)) is None  # a narrow field


def test_horizon_npix_reaches_the_horizon_along_the_axes():
    for cell_rad in (0.0272, 0.01, 0.25, math.radians(0.6)):
        n = horizon_npix(cell_rad)
        assert n % 2 == 0 and n / 2 * cell_rad < 1.0 <= (n / 2 + 1) * cell_rad
        assert beyond_horizon(n, n, cell_rad, (n // 2, n // 2 + 1), (0, n)) is None
