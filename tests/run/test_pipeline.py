"""End-to-end dirty imaging: a point source lands where the FITS header says; a real EVLA MS."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from casacore.images import image as casa_image
from msfactory import (
    CELL_RAD,
    SOURCES,
    point_source_vis,
    point_sources_ms,
    random_uvw_m,
    write_stokes_i_ms,
)

from skarim.config import (
    ClusterConfig,
    DeconvConfig,
    GridConfig,
    OutputConfig,
    ReadConfig,
    RunConfig,
    Weighting,
)
from skarim.io.store import RunStore
from skarim.run.pipeline import run_imaging


def _radec_of_lm(l_rad, m_rad, ra0, dec0):
    """Inverse SIN projection."""
    n = np.sqrt(1 - l_rad**2 - m_rad**2)
    dec = np.arcsin(m_rad * np.cos(dec0) + n * np.sin(dec0))
    ra = ra0 + np.arctan2(l_rad, n * np.cos(dec0) - m_rad * np.sin(dec0))
    return ra, dec


@pytest.mark.parametrize("dec0_deg", [-30.0, 60.0])
def test_point_source_peaks_at_the_wcs_pixel(tmp_path, dec0_deg):
    rng = np.random.default_rng(4)
    npix, cell = 128, np.deg2rad(1.0 / 60)
    ra0, dec0 = np.deg2rad(150.0), np.deg2rad(dec0_deg)
    jx, jy = 81, 40  # 0-based FITS pixel of the source: west and south of the centre
    l_src, m_src = -(jx - npix / 2) * cell, (jy - npix / 2) * cell
    ra, dec = _radec_of_lm(l_src, m_src, ra0, dec0)
    freq = np.array([1.4e9, 1.5e9])
    uvw = random_uvw_m(rng, 3000, max_m=800.0, w_frac=0.5)
    vis = point_source_vis(uvw, freq, l_src, m_src, flux_jy=2.5)
    ms = write_stokes_i_ms(tmp_path / "pt.ms", uvw, freq, vis, phase_dir_rad=(ra0, dec0))
    cfg = RunConfig(
        read=ReadConfig(ms=ms),
        grid=GridConfig(
            npix_x=npix, npix_y=npix, cell_rad=cell, weighting=Weighting.natural, tile=64
        ),
        output=OutputConfig(name=str(tmp_path / "pt")),
        dirty_only=True,
        make_psf=True,
    )
    products = run_imaging(cfg).products
    data = fits.getdata(products["dirty"])  # (stokes, freq, y, x)
    header = fits.getheader(products["dirty"])
    assert data.shape == (1, 1, npix, npix)
    py, px = np.unravel_index(np.argmax(data[0, 0]), (npix, npix))
    assert (px, py) == (jx, jy)
    assert data[0, 0, py, px] == pytest.approx(2.5, rel=1e-4)
    x, y = WCS(header).celestial.world_to_pixel_values(np.rad2deg(ra), np.rad2deg(dec))
    assert (x, y) == pytest.approx((jx, jy), abs=1e-6)
    img = casa_image(str(products["dirty"]))
    s, f, cy, cx = img.topixel([1, float(header["CRVAL3"]), dec, ra])
    assert (cx, cy) == pytest.approx((jx, jy), abs=1e-6)
    assert img.getdata()[0, 0, jy, jx] == pytest.approx(data[0, 0, jy, jx])
    assert header["CTYPE1"] == "RA---SIN" and header["CTYPE3"] == "FREQ"
    assert header["CRVAL3"] == pytest.approx(1.45e9)
    psf = fits.getdata(products["psf"])
    assert psf.shape == (1, 1, 128, 128) and psf[0, 0, 64, 64] == pytest.approx(1.0)


def test_real_evla_ms_images_with_its_frequencies_and_phase_centre(tmp_path, evla_ms):
    from casacore.tables import table

    ms = evla_ms
    with (
        table(str(ms / "SPECTRAL_WINDOW"), ack=False) as spw,
        table(str(ms / "FIELD"), ack=False) as fld,
    ):
        chan_freq = spw.getcol("CHAN_FREQ")[0]
        ra0, dec0 = fld.getcol("PHASE_DIR")[0, 0]
    cfg = RunConfig(
        read=ReadConfig(ms=ms),
        grid=GridConfig(
            npix_x=256,
            npix_y=256,
            cell_rad=np.deg2rad(0.1 / 3600),
            tile=128,
            channels_out=2,
            weighting=Weighting.briggs,
        ),
        output=OutputConfig(name=str(tmp_path / "evla")),
        dirty_only=True,
    )
    products = run_imaging(cfg).products
    header = fits.getheader(products["dirty"])
    data = fits.getdata(products["dirty"])
    assert data.shape == (1, 2, 256, 256) and np.all(np.isfinite(data)) and np.abs(data).max() > 0
    assert header["CRVAL3"] == pytest.approx(chan_freq[:32].mean(), rel=1e-12)
    assert header["CDELT3"] == pytest.approx(
        chan_freq[32:].mean() - chan_freq[:32].mean(), rel=1e-9
    )
    assert np.deg2rad(header["CRVAL1"]) % (2 * np.pi) == pytest.approx(ra0 % (2 * np.pi), abs=1e-12)
    assert np.deg2rad(header["CRVAL2"]) == pytest.approx(dec0, abs=1e-12)
    assert 36.29e9 < header["CRVAL3"] < 36.32e9
    assert header["TELESCOP"] == "EVLA"


def test_an_image_of_partial_tiles_is_deconvolved_end_to_end(tmp_path):
    ms = point_sources_ms(tmp_path)
    # 72 x 56 pixels in 32-pixel tiles: edge tiles of 8 and 24 pixels; the sources of
    # point_sources_ms (64-pixel frame, centre 32) sit at (y, x) + (28 - 32, 36 - 32)
    cfg = RunConfig(
        read=ReadConfig(ms=ms),
        grid=GridConfig(npix_x=72, npix_y=56, cell_rad=CELL_RAD, tile=32, channels_out=3),
        deconv=DeconvConfig(device="cpu"),
        cluster=ClusterConfig(kind="sync"),
        output=OutputConfig(name=str(tmp_path / "partial")),
    )
    products = run_imaging(cfg).products
    model = fits.getdata(products["model"])[0]  # (chan, y, x)
    image = fits.getdata(products["image"])[0]
    assert model.shape == image.shape == (3, 56, 72)
    assert np.isfinite(model).all() and np.isfinite(image).all()
    for y, x, flux in SOURCES:
        pixel = (slice(None), y - 4, x + 4)
        assert image[pixel] == pytest.approx(np.full(3, flux), rel=0.05)
    assert model.sum(axis=(1, 2)) == pytest.approx(np.full(3, 1.5), rel=0.05)


def test_a_dirty_only_run_makes_no_psf_and_a_deconvolving_run_grids_it_after(tmp_path):
    """As WSClean with ``-niter 0``: no PSF, no beam in the headers; the same store then serves
    a deconvolving run, which grids again with PSFs and equals a run from scratch."""
    ms = point_sources_ms(tmp_path)

    def config(name: str, **switches: bool) -> RunConfig:
        return RunConfig(
            read=ReadConfig(ms=ms),
            grid=GridConfig(npix_x=64, npix_y=64, cell_rad=CELL_RAD, tile=32, channels_out=3),
            deconv=DeconvConfig(device="cpu", major_cycles=1),
            cluster=ClusterConfig(kind="sync"),
            output=OutputConfig(name=str(tmp_path / name)),
            **switches,
        )

    products = run_imaging(config("run", dirty_only=True)).products
    assert sorted(products) == ["MFS-dirty", "dirty"]
    for path in products.values():
        assert "BMAJ" not in fits.getheader(path)
    store = RunStore.open(tmp_path / "run.zarr")
    assert not store.makes_psf and not store.array("psf")[...].any()
    assert (store.array("sumwt")[...] > 0).all()
    with_psf = run_imaging(config("psf", dirty_only=True, make_psf=True)).products
    assert sorted(with_psf) == ["MFS-dirty", "MFS-psf", "dirty", "psf"]
    np.testing.assert_array_equal(fits.getdata(products["dirty"]), fits.getdata(with_psf["dirty"]))
    assert fits.getheader(with_psf["dirty"])["BMAJ"] > 0

    resumed = run_imaging(config("run"))
    assert resumed.tiles_gridded == 3 * 4  # every tile again, now with its PSF
    fresh = run_imaging(config("fresh"))
    for name in ("psf", "model", "image"):
        np.testing.assert_array_equal(
            fits.getdata(resumed.products[name]), fits.getdata(fresh.products[name])
        )
    assert RunStore.open(tmp_path / "run.zarr").makes_psf


def test_a_reordering_run_reads_the_ms_once_and_equals_one_that_does_not(tmp_path, count_passes):
    """WSClean's -reorder: the major cycles read the store's reordered visibilities; the
    products are those of a run reading the Measurement Set every cycle, and the reordered
    arrays are gone when the run completes."""
    ms = point_sources_ms(tmp_path)

    def run(name: str, reorder: bool | None) -> tuple[dict, int]:
        count_passes.clear()
        cfg = RunConfig(
            read=ReadConfig(ms=ms, chunk_rows=150, reorder=reorder),  # 3 chunks: none held
            grid=GridConfig(npix_x=64, npix_y=64, cell_rad=CELL_RAD, tile=32, channels_out=3),
            deconv=DeconvConfig(device="cpu", major_cycles=2, polish_cycles=1),
            cluster=ClusterConfig(kind="sync", threads_per_worker=1),
            output=OutputConfig(name=str(tmp_path / name)),
        )
        assert cfg.reorders is (reorder is not False)
        result = run_imaging(cfg)
        assert "reordered" not in RunStore.open(tmp_path / f"{name}.zarr").group
        assert result.residuals_computed >= 2
        return result.products, len(count_passes)

    reordered, reordered_passes = run("reordered", None)  # the default with 3 channels out
    read, read_passes = run("read", False)
    assert reordered_passes == 2  # the grid stage's weighting and imaging passes only
    assert read_passes > reordered_passes + 2  # two more per exact residual
    for name in ("model", "residual", "image"):
        want = fits.getdata(read[name])
        np.testing.assert_allclose(
            fits.getdata(reordered[name]), want, rtol=0, atol=1e-6 * np.abs(want).max()
        )
