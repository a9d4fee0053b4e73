"""The spectral-index map (skarim.restore.spectral_index), from real run stores on disk.

The stores (tests/restore/conftest.py) hold point sources of known power-law spectra over
five channels of 1.0-1.6 GHz, each channel with its own clean beam, a sixth channel without
data, and Gaussian noise in the residual. One test images and deconvolves a Measurement Set
of a power-law source (tests/msfactory.py) and reads the map the run writes.
"""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from msfactory import point_source_vis, random_uvw_m, write_stokes_i_ms

from skarim.beam import common_beam
from skarim.config import (
    ClusterConfig,
    DeconvConfig,
    GridConfig,
    OutputConfig,
    ReadConfig,
    RunConfig,
    Weighting,
)
from skarim.deconv.noise import robust_sigma
from skarim.restore.products import channel_beams, mfs_wcs, mfs_weights, write_products
from skarim.restore.restore import restore_channel
from skarim.restore.spectral_index import SpectralChannels, write_alpha_map
from skarim.run.pipeline import run_imaging

NPIX = 96
FREQ_HZ = np.array([1.0e9, 1.15e9, 1.3e9, 1.45e9, 1.5e9, 1.6e9])
SUMWT = np.array([1.0, 2.0, 1.5, 0.0, 3.0, 2.5])  # channel 3 holds no data
ALPHA = -0.7
NOISE_JY = 0.01
BRIGHT = (40, 50, 2.0)  # FITS (y, x) and flux at 1 GHz, Jy: alpha -0.7
TURNOVER = (70, 20, 1.0)  # positive, but negative in the 1.3 GHz channel
FAINT = (20, 75, 0.01)  # alpha -0.7, below 5 sigma of the MFS residual


def _model() -> np.ndarray:
    """``(nchan, ny, nx)``: the three sources; garbage in the channel without data."""
    model = np.zeros((len(FREQ_HZ), NPIX, NPIX), dtype=np.float32)
    for y, x, flux in (BRIGHT, FAINT):
        model[:, y, x] = flux * (FREQ_HZ / 1e9) ** ALPHA
    y, x, flux = TURNOVER
    model[:, y, x] = flux
    model[2, y, x] = -0.2 * flux
    model[3] = -5.0  # no data: never read
    return model


@pytest.fixture
def run(spectral_store):
    store, cfg = spectral_store(_model(), FREQ_HZ, SUMWT, NOISE_JY)
    return store, cfg, write_products(store, cfg, ("model", "residual"))


def test_the_power_law_source_has_its_spectral_index_and_empty_sky_is_nan(run):
    store, cfg, products = run
    alpha = fits.getdata(products["alpha"])[0, 0]  # (y, x)
    y, x, _ = BRIGHT
    assert alpha[y, x] == pytest.approx(ALPHA, abs=0.05)
    # every channel smoothed to one beam: the ratios, hence alpha, are the model's everywhere
    finite = np.isfinite(alpha)
    np.testing.assert_allclose(alpha[finite], ALPHA, atol=1e-4)
    assert np.isnan(alpha[TURNOVER[0], TURNOVER[1]])  # a channel's smoothed model < 0
    assert np.isnan(alpha[FAINT[0], FAINT[1]])  # below the threshold
    assert np.isnan(alpha[0:10, 0:10]).all()  # empty sky
    assert 20 < finite.sum() < 400  # the bright source's beam, no more


def test_the_map_is_blanked_below_five_sigma_of_the_mfs_residual(run):
    store, cfg, products = run
    alpha = fits.getdata(products["alpha"])[0, 0]
    weights = mfs_weights(store)
    model, residual = store.array("model")[...], store.array("residual")[...]
    mfs_model = np.tensordot(weights, model.astype(float), axes=1)  # (y, x)
    sigma = robust_sigma(np.tensordot(weights, residual.astype(float), axes=1))  # whole plane
    # the map's noise is from a sample of the plane (every other pixel): 0.2% off here
    smooth = restore_channel(mfs_model, np.zeros_like(mfs_model), _common(store), _cell(store))
    floor = cfg.output.spectral_index_sigma * sigma
    smooth_2 = restore_channel(model[2], np.zeros_like(mfs_model), _common(store), _cell(store))
    turnover = smooth_2 <= 0  # channel 2's smoothed model: negative about the turnover source
    clear = np.abs(smooth - floor) > 0.02 * floor  # not at the threshold to the sampling
    expected = (smooth >= floor) & ~turnover
    np.testing.assert_array_equal(np.isfinite(alpha)[clear], expected[clear])


def test_the_file_has_the_mfs_axes_at_the_reference_frequency(run):
    store, _, products = run
    header = fits.getheader(products["alpha"])
    mfs = fits.getheader(products["MFS-model"])
    assert fits.getdata(products["alpha"]).shape == (1, 1, NPIX, NPIX)
    for key in ("CTYPE1", "CTYPE2", "CTYPE3", "CTYPE4", "CRVAL1", "CRVAL2", "CDELT1", "CDELT3"):
        assert header[key] == mfs[key], key
    ref = float(np.dot(SUMWT, FREQ_HZ) / SUMWT.sum())
    assert header["CRVAL3"] == pytest.approx(ref, rel=1e-12)
    assert WCS(header).celestial.to_header() == WCS(mfs).celestial.to_header()
    assert header["BUNIT"] == "" and header["BTYPE"] == "Spectral index"
    beam = _common(store)
    assert header["BMAJ"] == pytest.approx(beam.major_deg, rel=1e-9)
    history = "".join(str(h) for h in header["HISTORY"])
    assert "skarim spectral index: weighted least-squares slope" in history
    assert f"{ref:.6f} Hz" in history


def test_no_map_without_a_model_or_with_one_channel_of_data(spectral_store):
    store, cfg = spectral_store(_model(), FREQ_HZ, SUMWT, NOISE_JY)
    assert "alpha" not in write_products(store, cfg, ("dirty", "psf"))
    sumwt = np.where(np.arange(len(FREQ_HZ)) == 1, 2.0, 0.0)
    store, cfg = spectral_store(_model(), FREQ_HZ, sumwt, NOISE_JY, name="one")
    assert "alpha" not in write_products(store, cfg, ("model",))


def test_the_map_is_nan_beyond_the_horizon(spectral_store):
    # 2.5 deg pixels: a 48-pixel image reaches past the horizon; a source near its edge
    npix, cell = 48, math.radians(2.5)
    freq = FREQ_HZ[:3]
    model = np.zeros((3, npix, npix), dtype=np.float32)
    model[:, 24, 44] = 3.0 * (freq / 1e9) ** ALPHA  # |l| = 20 cells = 0.87
    store, cfg = spectral_store(model, freq, SUMWT[:3], 1e-4, cell_rad=cell)
    alpha = fits.getdata(write_products(store, cfg, ("model",))["alpha"])[0, 0]
    header = fits.getheader(cfg.output.product_path("alpha"))
    ra, _ = WCS(header).celestial.pixel_to_world_values(*np.meshgrid(range(npix), range(npix)))
    no_sky = ~np.isfinite(ra)
    assert np.isnan(alpha[no_sky]).all()
    assert np.isfinite(alpha[24, 44]) and alpha[24, 44] == pytest.approx(ALPHA, abs=1e-4)
    # the source's beam reaches past the horizon, where the map is blanked
    reach = restore_channel(model[0], np.zeros_like(model[0]), _common(store), cell) > 1e-2
    assert (reach & no_sky).any()


def test_a_deconvolved_power_law_source_has_its_spectral_index(tmp_path):
    # 2 Jy at 1.3 GHz, alpha -0.7, over five channels: imaged and deconvolved channel by channel
    npix, cell = 64, math.radians(15.0 / 3600)
    freq = np.array([1.0e9, 1.15e9, 1.3e9, 1.45e9, 1.6e9])
    x, y = 40, 27
    rng = np.random.default_rng(11)
    uvw = random_uvw_m(rng, 2000, max_m=600.0, w_frac=0.1)
    vis = point_source_vis(uvw, freq, -(x - npix / 2) * cell, (y - npix / 2) * cell, 2.0)
    noise = rng.standard_normal((*vis.shape, 2)) @ np.array([0.05, 0.05j])  # (nrow, nchan)
    vis = vis * (freq / 1.3e9) ** ALPHA + noise
    cfg = RunConfig(
        read=ReadConfig(ms=write_stokes_i_ms(tmp_path / "pl.ms", uvw, freq, vis)),
        grid=GridConfig(
            npix_x=npix, npix_y=npix, cell_rad=cell, weighting=Weighting.natural,
            channels_out=len(freq), tile=32,
        ),
        deconv=DeconvConfig(major_cycles=1, device="cpu", margin=8),
        output=OutputConfig(name=str(tmp_path / "pl")),
        cluster=ClusterConfig(kind="sync"),
    )  # fmt: skip
    alpha = fits.getdata(run_imaging(cfg).products["alpha"])[0, 0]
    assert alpha[y, x] == pytest.approx(ALPHA, abs=0.05)
    assert np.isnan(alpha[:, :16]).all()  # empty sky, 24 pixels and more from the source


def _alpha_peak(spectral_store, ny: int, nchan: int) -> int:
    """Peak of traced allocations while the map of a ``ny x 256`` store is written."""
    freq = np.linspace(1.0e9, 1.6e9, nchan)
    model = np.zeros((nchan, ny, 256), dtype=np.float32)
    model[:, ::17, ::13] = (freq[:, None, None] / 1e9) ** ALPHA
    store, cfg = spectral_store(model, freq, np.ones(nchan), 0.01, tile=64, name=f"m{ny}x{nchan}")
    spectrum = SpectralChannels(mfs_weights(store), store.wcs.freq_hz)
    beam = _common(store)
    tracemalloc.start()
    try:
        write_alpha_map(store, cfg, spectrum, mfs_wcs(store.wcs), beam, [])
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_follows_the_tile_row_not_the_height_or_the_channels(spectral_store):
    base = _alpha_peak(spectral_store, ny=256, nchan=2)
    # four times the height, three times the channels: twelve times the model, same bands
    assert _alpha_peak(spectral_store, ny=1024, nchan=6) < 1.3 * base


def _common(store):
    return common_beam(channel_beams(store))


def _cell(store) -> float:
    return store.wcs.cell_rad
