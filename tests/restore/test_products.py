"""The run's FITS products: read back by astropy and casacore, restored, and their MFS planes.

One small deconvolved run (64^2 pixels, three channels of different total weight, one
isolated flat-spectrum point source) is shared by the tests of this module.
"""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path

import casacore.images as cim
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from msfactory import point_source_vis, random_uvw_m, write_stokes_i_ms

import skarim
from skarim.beam import Beam, beam_kernel, common_beam, fit_beam
from skarim.config import (
    ClusterConfig,
    ClusterKind,
    DeconvConfig,
    GridConfig,
    OutputConfig,
    ReadConfig,
    RunConfig,
    Weighting,
)
from skarim.errors import InputError
from skarim.io.store import RunStore
from skarim.restore.products import channel_beams, mfs_weights, write_products
from skarim.run.pipeline import run_imaging

NPIX, TILE = 64, 32
CELL_RAD = math.radians(15.0 / 3600)
FREQ_HZ = np.array([1.0e9, 1.2e9, 1.4e9])
CHAN_WEIGHT = np.array([1.0, 3.0, 2.0])  # per-channel visibility weight: unequal sums of weights
FLUX_JY = 2.0
SRC_X, SRC_Y = 40, 27  # 0-based FITS pixel of the source
CHANNEL_PRODUCTS = ("dirty", "psf", "model", "residual", "image")
ALL_PRODUCTS = CHANNEL_PRODUCTS + tuple(f"MFS-{p}" for p in CHANNEL_PRODUCTS)


def _write_ms(path: Path, chan_weight: np.ndarray) -> Path:
    rng = np.random.default_rng(11)
    uvw = random_uvw_m(rng, 2000, max_m=600.0, w_frac=0.1)
    l_src, m_src = -(SRC_X - NPIX / 2) * CELL_RAD, (SRC_Y - NPIX / 2) * CELL_RAD
    vis = point_source_vis(uvw, FREQ_HZ, l_src, m_src, flux_jy=FLUX_JY)  # flat spectrum
    weight_spectrum = np.repeat(chan_weight[None, :], len(uvw), axis=0)  # (nrow, nchan)
    return write_stokes_i_ms(path, uvw, FREQ_HZ, vis, weight_spectrum=weight_spectrum)


def _config(
    ms: Path, name: Path, *, dirty_only: bool = False, cell_rad: float = CELL_RAD
) -> RunConfig:
    return RunConfig(
        read=ReadConfig(ms=ms),
        grid=GridConfig(
            npix_x=NPIX,
            npix_y=NPIX,
            cell_rad=cell_rad,
            weighting=Weighting.natural,
            channels_out=len(FREQ_HZ),
            tile=TILE,
        ),
        deconv=DeconvConfig(major_cycles=1, device="cpu", margin=8),  # small windows: fast
        output=OutputConfig(name=str(name)),
        cluster=ClusterConfig(kind=ClusterKind.sync),  # in this process: no Dask start-up
        dirty_only=dirty_only,
        make_psf=True,
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("products")
    cfg = _config(_write_ms(tmp / "pt.ms", CHAN_WEIGHT), tmp / "pt")
    result = run_imaging(cfg)
    return cfg, result.products, RunStore.open(result.store)


def _assert_same_beam(got: Beam, expected: Beam) -> None:
    """Equal to the precision of the BEAMS table (float32 arcsec)."""
    assert got.major_deg == pytest.approx(expected.major_deg, rel=1e-6)
    assert got.minor_deg == pytest.approx(expected.minor_deg, rel=1e-6)
    assert got.pa_deg == pytest.approx(expected.pa_deg, abs=1e-4)


def _beams_in_file(path: Path) -> list[Beam]:
    with fits.open(path) as hdul:
        rows = hdul["BEAMS"].data
        return [Beam(r["BMAJ"] / 3600, r["BMIN"] / 3600, float(r["BPA"])) for r in rows]


def test_every_product_is_written_with_the_standard_keywords(run):
    cfg, products, _ = run
    assert set(products) == {*ALL_PRODUCTS, "alpha"}  # the spectral index of its 3 channels
    for name, path in products.items():
        assert path == Path(f"{cfg.output.name}-{name}.fits") and path.is_file()
        header = fits.getheader(path)
        for key in ("ORIGIN", "DATE-OBS", "EQUINOX", "RADESYS", "SPECSYS", "BTYPE", "BUNIT"):
            assert key in header, f"{name}: {key} missing"
        assert header["ORIGIN"] == f"skarim {skarim.__version__}"
        unit = "" if name == "alpha" else "JY/PIXEL" if name.endswith("model") else "JY/BEAM"
        assert header["BUNIT"] == unit
        history = "".join(str(h) for h in header["HISTORY"])
        assert f"skarim {skarim.__version__}:" in history and "skarim config:" in history


@pytest.mark.parametrize("name", ALL_PRODUCTS)
def test_product_reads_back_through_astropy_and_casacore_alike(run, name):
    _, products, store = run
    path = products[name]
    nchan = 1 if name.startswith("MFS") else len(FREQ_HZ)
    side = 2 * TILE if name.endswith("psf") else NPIX
    data = fits.getdata(path)
    header = fits.getheader(path)
    assert data.shape == (1, nchan, side, side)

    im = cim.image(str(path))
    assert tuple(im.shape()) == data.shape
    np.testing.assert_array_equal(im.getdata(), data)
    wcs = WCS(header)
    for x, y, chan in ((side // 2, side // 2, 0), (0, 0, nchan - 1), (side - 1, 3, nchan - 1)):
        ra_deg, dec_deg, freq_hz, _ = wcs.all_pix2world(x, y, chan, 0, 0)
        _, freq_cc, dec_cc, ra_cc = im.toworld([0, chan, y, x])
        assert math.remainder(ra_cc - math.radians(float(ra_deg)), 2 * math.pi) == pytest.approx(
            0.0, abs=1e-12
        )
        assert dec_cc == pytest.approx(math.radians(float(dec_deg)), abs=1e-12)
        assert freq_cc == pytest.approx(float(freq_hz), rel=1e-12)
    # the phase centre sits at pixel npix/2 in every product
    assert (header["CRPIX1"], header["CRPIX2"]) == (side / 2 + 1, side / 2 + 1)

    primary = Beam(header["BMAJ"], header["BMIN"], header["BPA"])
    info = im.imageinfo()
    if nchan == 1:  # an MFS plane: one beam, no BEAMS table
        with fits.open(path) as hdul:
            assert len(hdul) == 1 and "CASAMBM" not in hdul[0].header
        beam = info["restoringbeam"]
        assert beam["major"]["value"] == pytest.approx(primary.major_deg * 3600, rel=1e-12)
        assert beam["minor"]["value"] == pytest.approx(primary.minor_deg * 3600, rel=1e-12)
        assert beam["positionangle"]["value"] == pytest.approx(primary.pa_deg, abs=1e-9)
        return
    beams = _beams_in_file(path)
    assert len(beams) == nchan
    _assert_same_beam(primary, common_beam(beams))
    planes = info["perplanebeams"]
    assert planes["nChannels"] == nchan
    for chan, beam in enumerate(beams):
        got = planes[f"*{chan}"]
        assert got["major"]["value"] == pytest.approx(beam.major_deg * 3600, rel=1e-6)
        assert got["minor"]["value"] == pytest.approx(beam.minor_deg * 3600, rel=1e-6)
        assert got["positionangle"]["value"] == pytest.approx(beam.pa_deg, abs=1e-4)
    for got, fitted in zip(beams, channel_beams(store), strict=True):  # each channel's PSF
        _assert_same_beam(got, fitted)


def test_channel_beams_are_the_fits_to_each_psf_and_grow_with_wavelength(run):
    _, products, store = run
    beams = _beams_in_file(products["image"])
    psf = fits.getdata(products["psf"])[0]  # (nchan, 2t, 2t)
    for chan, beam in enumerate(beams):
        _assert_same_beam(beam, fit_beam(psf[chan], CELL_RAD))
    majors = [b.major_deg for b in beams]
    assert majors[0] > majors[1] > majors[2]  # same uv in metres: beam ~ 1/frequency
    assert majors[0] / majors[2] == pytest.approx(1.4, rel=0.05)


def test_mfs_planes_are_the_sumwt_weighted_channel_means(run):
    _, products, store = run
    sumwt = store.array("sumwt")[...]
    weights = mfs_weights(store)
    np.testing.assert_allclose(weights, CHAN_WEIGHT / CHAN_WEIGHT.sum(), rtol=1e-12)
    np.testing.assert_allclose(sumwt / sumwt[0], CHAN_WEIGHT / CHAN_WEIGHT[0], rtol=1e-6)
    for name in ("dirty", "residual", "model", "psf"):
        cube = fits.getdata(products[name])[0].astype(np.float64)  # (nchan, ny, nx)
        mfs = fits.getdata(products[f"MFS-{name}"])[0, 0]
        weighted = np.tensordot(weights, cube, axes=1)
        scale = np.abs(cube).max()
        np.testing.assert_allclose(mfs, weighted, atol=1e-6 * scale)
        if name != "model":  # sidelobes differ per channel: the weights matter
            assert np.abs(weighted - cube.mean(axis=0)).max() > 1e-3 * scale
    # a flat-spectrum source: every channel and the MFS image peak at its flux
    dirty = fits.getdata(products["MFS-dirty"])[0, 0]
    assert np.unravel_index(np.argmax(dirty), dirty.shape) == (SRC_Y, SRC_X)
    assert dirty[SRC_Y, SRC_X] == pytest.approx(FLUX_JY, rel=1e-4)
    image = fits.getdata(products["image"])[0]  # (nchan, ny, nx)
    mfs_image = fits.getdata(products["MFS-image"])[0, 0]
    assert mfs_image[SRC_Y, SRC_X] == pytest.approx(
        float(weights @ image[:, SRC_Y, SRC_X]), rel=0.01
    )
    header = fits.getheader(products["MFS-image"])
    assert header["CRVAL3"] == pytest.approx(1.2e9, rel=1e-12)  # centre of the band
    assert header["CDELT3"] == pytest.approx(0.6e9, rel=1e-9)  # its span, channel widths included
    mfs_psf = fits.getdata(products["MFS-psf"])[0, 0]
    _assert_same_beam(
        Beam(header["BMAJ"], header["BMIN"], header["BPA"]), fit_beam(mfs_psf, CELL_RAD)
    )


def test_restored_image_is_the_model_convolved_with_each_beam_plus_the_residual(tmp_path, run):
    # an isolated point source with its exact model: the restored peak is its flux
    cfg, _, _ = run
    shutil.copytree(cfg.output.store_path, tmp_path / "copy.zarr")
    store = RunStore.open(tmp_path / "copy.zarr", mode="r+")
    model = np.zeros((len(FREQ_HZ), NPIX, NPIX), dtype=np.float32)
    model[:, SRC_Y, SRC_X] = FLUX_JY  # the exact model of the source
    residual = np.full_like(model, 0.25)
    store.array("model")[...] = model
    store.array("residual")[...] = residual
    cfg = cfg.model_copy(update={"output": OutputConfig(name=str(tmp_path / "exact"))})
    products = write_products(store, cfg, ("image",))
    image = fits.getdata(products["image"])[0]  # (nchan, ny, nx)
    for chan, beam in enumerate(channel_beams(store)):
        kernel = beam_kernel(beam, CELL_RAD, (2 * NPIX, 2 * NPIX))  # peak 1 at (NPIX, NPIX)
        expected = (
            FLUX_JY * kernel[NPIX - SRC_Y : 2 * NPIX - SRC_Y, NPIX - SRC_X : 2 * NPIX - SRC_X]
        )
        np.testing.assert_allclose(image[chan], expected + 0.25, atol=1e-5)
        assert image[chan, SRC_Y, SRC_X] == pytest.approx(FLUX_JY + 0.25, rel=1e-6)
    mfs = fits.getdata(products["MFS-image"])[0, 0]
    assert mfs[SRC_Y, SRC_X] == pytest.approx(FLUX_JY + 0.25, rel=1e-6)


def test_a_channel_without_data_takes_the_common_beam_and_no_mfs_weight(tmp_path):
    weight = np.array([1.0, 0.0, 2.0])  # the middle channel entirely unweighted
    cfg = _config(_write_ms(tmp_path / "gap.ms", weight), tmp_path / "gap", dirty_only=True)
    products = run_imaging(cfg).products
    assert set(products) == {"dirty", "psf", "MFS-dirty", "MFS-psf"}
    store = RunStore.open(cfg.output.store_path)
    beams = channel_beams(store)
    assert beams[1] == common_beam([beams[0], beams[2]])
    for got, expected in zip(_beams_in_file(products["dirty"]), beams, strict=True):
        _assert_same_beam(got, expected)
    np.testing.assert_allclose(mfs_weights(store), [1 / 3, 0.0, 2 / 3], rtol=1e-12)
    cube = fits.getdata(products["dirty"])[0]
    np.testing.assert_array_equal(cube[1], 0.0)
    mfs = fits.getdata(products["MFS-dirty"])[0, 0]
    np.testing.assert_allclose(mfs, (cube[0] + 2 * cube[2]) / 3, atol=1e-6)


def test_a_cell_undersampling_the_psf_is_reported(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger("skarim"), "propagate", True)
    ms = _write_ms(tmp_path / "coarse.ms", CHAN_WEIGHT)
    coarse = math.radians(90.0 / 3600)  # the main lobe is ~70 arcsec wide
    with caplog.at_level(logging.WARNING, logger="skarim"):
        run_imaging(_config(ms, tmp_path / "coarse", dirty_only=True, cell_rad=coarse))
    assert "narrower than a pixel" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="skarim"):
        run_imaging(_config(ms, tmp_path / "fine", dirty_only=True))
    assert "narrower than a pixel" not in caplog.text


def test_unknown_products_are_refused(run):
    cfg, _, store = run
    with pytest.raises(InputError, match="unknown product"):
        write_products(store, cfg, ("dirty", "beam"))
