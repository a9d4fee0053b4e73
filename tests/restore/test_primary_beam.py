"""The primary beam (skarim.restore.primary_beam) and its products (``--apply-primary-beam``).

Published half-power widths (full widths) the models are held to, within 2%:

- MeerKAT, L band: 57.5 arcmin x (1.5 GHz / freq), the circularised Stokes I beam of Mauch et
  al. 2020, ApJ 888, 61, section 2.2, equation 4 (a cosine-tapered aperture fitted to SARAO's
  holography, the measurements katbeam's tables hold).
- VLA: 42 arcmin / freq_GHz between 1 and 50 GHz, the VLA Observational Status Summary,
  "Field of View" (science.nrao.edu/facilities/vla/docs/manuals/oss/performance/fov).
"""

from __future__ import annotations

import math
import subprocess
import sys

import casacore.images as cim
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS
from katbeam import JimBeam
from msfactory import new_run_store, point_source_vis, random_uvw_m, write_stokes_i_ms

from skarim.config import GridConfig, OutputConfig, ReadConfig, RunConfig, Weighting
from skarim.errors import InputError
from skarim.imaging.grid import grid_channels
from skarim.io.wcs import ImageWCS
from skarim.restore.primary_beam import AIRY, beam_rows, primary_beam_of
from skarim.restore.products import mfs_weights, write_products

MEERKAT_HPBW_ARCMIN_AT_1_5_GHZ = 57.5  # Mauch et al. 2020, eq. 4
VLA_HPBW_ARCMIN_AT_1_GHZ = 42.0  # VLA OSS, Field of View

NPIX, TILE = 64, 32
CELL_RAD = math.radians(1.5 / 60)  # 96 arcmin across: MeerKAT's beam falls to a few per cent
FREQ_HZ = np.array([0.95e9, 1.45e9])
CHAN_WEIGHT = np.array([1.0, 3.0])  # unequal: the MFS weights are not a plain mean
LIMIT = 0.1
SRC_X, SRC_Y = 40, 26  # 0-based FITS pixel of the point component put in the model


def _half_power_radius_arcmin(telescope: str, diameter_m: float, freq_hz: float, guess: float):
    """The radius of the disc of the area where the beam is >= 0.5, from a 400^2 image whose
    cell puts ``guess`` arcmin at 150 pixels."""
    beam = primary_beam_of(telescope, np.full(8, diameter_m), np.array([freq_hz]))
    cell = math.radians(guess / 60) / 150
    wcs = ImageWCS(400, 400, cell, 0.0, 0.0, [freq_hz], [1e6])
    pb = beam_rows(beam, wcs, np.eye(1))(0, 0, 400)  # (y, x)
    return beam, math.degrees(math.sqrt((pb >= 0.5).sum() / math.pi) * cell) * 60


@pytest.mark.parametrize("freq_hz", [1.284e9, 1.4e9, 1.5e9])
def test_meerkat_half_power_radius_is_mauch_2020s(freq_hz):
    published = MEERKAT_HPBW_ARCMIN_AT_1_5_GHZ / 2 * 1.5e9 / freq_hz
    beam, radius = _half_power_radius_arcmin("MeerKAT", 13.5, freq_hz, published)
    assert beam.model == "MKAT-AA-L-JIM-2020"
    assert radius == pytest.approx(published, rel=0.02)


@pytest.mark.parametrize("freq_hz", [1.5e9, 6.0e9, 22.0e9])
def test_vla_half_power_radius_is_the_observational_status_summarys(freq_hz):
    published = VLA_HPBW_ARCMIN_AT_1_GHZ / 2 / (freq_hz / 1e9)
    beam, radius = _half_power_radius_arcmin("EVLA", 25.0, freq_hz, published)
    assert beam.model == AIRY and beam.dish_diameter_m == 25.0
    assert radius == pytest.approx(published, rel=0.02)


def test_meerkat_band_is_chosen_by_the_band_centre_and_scales_beyond_its_table():
    uhf = primary_beam_of("MeerKAT", np.full(4, 13.5), np.array([0.58e9, 1.05e9]))
    assert uhf.model == "MKAT-AA-UHF-JIM-2020"
    l_band = primary_beam_of("MEERKAT", np.full(4, 13.5), np.array([0.9e9, 1.7e9]))
    theta = np.linspace(0.0, 0.03, 50)  # (50,) radians from the centre, 0.7 rad east of north

    def power(theta: np.ndarray, freq_hz: float) -> np.ndarray:
        return l_band.power(np.sin(theta) * np.sin(0.7), np.sin(theta) * np.cos(0.7), freq_hz)

    edge = power(theta, 1.65e9)  # the last frequency of the L-band table
    np.testing.assert_allclose(power(theta * 1.65 / 1.75, 1.75e9), edge, rtol=1e-9)


def test_an_unknown_array_without_dish_diameters_is_refused():
    with pytest.raises(InputError, match="no beam model for telescope 'ACME'.*DISH_DIAMETER"):
        primary_beam_of("ACME", np.zeros(3), np.array([1e9]))


def test_the_limit_is_wscleans_default_and_a_fraction():
    assert OutputConfig().primary_beam_limit == 0.005  # WSClean 3.1: -primary-beam-limit 0.005
    with pytest.raises(ValueError, match=r"primary_beam_limit must lie in \(0, 1\)"):
        OutputConfig(primary_beam_limit=1.5)


def _meerkat_ms(path):
    rng = np.random.default_rng(3)
    uvw = random_uvw_m(rng, 600, max_m=200.0, w_frac=0.1)  # inside the uv grid: 1146 wavelengths
    l_src, m_src = -(SRC_X - NPIX / 2) * CELL_RAD, (SRC_Y - NPIX / 2) * CELL_RAD
    vis = point_source_vis(uvw, FREQ_HZ, l_src, m_src, flux_jy=1.0)
    weight_spectrum = np.repeat(CHAN_WEIGHT[None, :], len(uvw), axis=0)  # (nrow, nchan)
    return write_stokes_i_ms(
        path, uvw, FREQ_HZ, vis, weight_spectrum=weight_spectrum, phase_dir_rad=(0.9, -0.6),
        telescope="MeerKAT", diameter_m=13.5,
    )  # fmt: skip


@pytest.fixture(scope="module")
def products(tmp_path_factory):
    """Two channels of a MeerKAT MS gridded; a point in the model, the dirty image as the
    residual; every product written with the primary beam, limit 0.1."""
    tmp = tmp_path_factory.mktemp("pb")
    cfg = RunConfig(
        read=ReadConfig(ms=_meerkat_ms(tmp / "mk.ms")),
        grid=GridConfig(
            npix_x=NPIX, npix_y=NPIX, cell_rad=CELL_RAD, weighting=Weighting.natural,
            channels_out=len(FREQ_HZ), tile=TILE,
        ),
        output=OutputConfig(
            name=str(tmp / "mk"), apply_primary_beam=True, primary_beam_limit=LIMIT
        ),
    )  # fmt: skip
    store, groups = new_run_store(cfg)
    grid_channels(store, cfg.read, cfg.grid, groups)
    store.array("residual")[...] = store.array("dirty")[...]
    store.array("model")[:, SRC_Y, SRC_X] = 0.5
    names = ("dirty", "psf", "model", "residual", "image")
    return store, write_products(store, cfg, names)


def test_pb_and_image_pb_are_written_and_read_back_by_astropy_and_casacore(products):
    _, out = products
    for name in ("pb", "image-pb", "MFS-pb", "MFS-image-pb"):
        data = fits.getdata(out[name])  # (stokes, chan, y, x)
        nchan = 1 if name.startswith("MFS") else len(FREQ_HZ)
        assert data.shape == (1, nchan, NPIX, NPIX), name
        im = cim.image(str(out[name]))
        assert tuple(im.shape()) == data.shape
        np.testing.assert_array_equal(im.getdata(), data)  # NaN where blanked, in both
        header = fits.getheader(out[name])
        history = "".join(str(h) for h in header["HISTORY"])
        assert "primary beam: katbeam" in history and "MKAT-AA-L-JIM-2020" in history, name
        assert "limit 0.1" in history
        assert header["BUNIT"] == ("" if name in ("pb", "MFS-pb") else "JY/BEAM")


def test_pb_is_katbeams_stokes_i_at_each_pixels_offset_and_channel_frequency(products):
    _, out = products
    header = fits.getheader(out["pb"])
    pb = fits.getdata(out["pb"])[0]  # (chan, y, x)
    sky = WCS(header).celestial
    y, x = np.mgrid[0:NPIX, 0:NPIX]
    pixels = sky.pixel_to_world(x, y)
    centre = sky.pixel_to_world(NPIX / 2, NPIX / 2)
    assert isinstance(centre, SkyCoord)
    theta = centre.separation(pixels).deg
    angle = centre.position_angle(pixels).rad  # east of north
    jim = JimBeam("MKAT-AA-L-JIM-2020")
    for c, freq_hz in enumerate(FREQ_HZ):
        expected = jim.I(theta * np.sin(angle), theta * np.cos(angle), freq_hz / 1e6)
        np.testing.assert_allclose(pb[c], expected, atol=2e-6)
    assert pb[1, 0, 0] < LIMIT < pb[0, 0, 0]  # the beam narrows with frequency


def test_image_pb_is_image_over_pb_above_the_limit_and_nan_below(products):
    _, out = products
    for prefix in ("", "MFS-"):
        image = fits.getdata(out[f"{prefix}image"])[0]  # (chan, y, x)
        pb = fits.getdata(out[f"{prefix}pb"])[0]
        corrected = fits.getdata(out[f"{prefix}image-pb"])[0]
        kept = pb >= LIMIT
        assert 0 < kept.sum() < kept.size, prefix  # some pixels blanked, most kept
        np.testing.assert_array_equal(np.isnan(corrected), ~kept)
        np.testing.assert_allclose(corrected[kept], image[kept] / pb[kept], rtol=1e-6)


def test_mfs_pb_is_the_channels_beams_averaged_with_the_mfs_weights(products):
    store, out = products
    cube = fits.getdata(out["pb"])[0]  # (chan, y, x)
    mfs = fits.getdata(out["MFS-pb"])[0, 0]  # (y, x)
    weights = mfs_weights(store)
    np.testing.assert_allclose(weights, CHAN_WEIGHT / CHAN_WEIGHT.sum(), rtol=1e-6)
    np.testing.assert_allclose(mfs, np.tensordot(weights, cube, axes=1), atol=1e-6)


def _skarim(*args, cwd):
    cmd = [sys.executable, "-m", "skarim", *map(str, args)]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_flags_write_the_beam_of_a_dirty_run_and_refuse_a_bad_limit(tmp_path):
    ms = _meerkat_ms(tmp_path / "mk.ms")
    common = ["image", ms, "--size", 64, "--scale", "1.5amin", "--channels-out", 2]
    common += ["--scheduler", "sync"]
    r = _skarim(*common, "--dirty-only", "--apply-primary-beam", "--name", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "run-pb.fits").is_file() and (tmp_path / "run-MFS-pb.fits").is_file()
    assert not (tmp_path / "run-image-pb.fits").exists()  # no image in a dirty run
    assert "primary beam: katbeam" in r.stderr
    bad = _skarim(*common, "--apply-primary-beam", "--primary-beam-limit", "1.5", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "skarim: error: invalid configuration output.primary_beam_limit: "
        "primary_beam_limit must lie in (0, 1), got 1.5"
    ]
