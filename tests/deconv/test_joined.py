"""Joined-channel deconvolution end to end: spectra, identical channels, a flagged channel."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from astropy.io import fits
from msfactory import point_source_vis, random_uvw_m, write_stokes_i_ms

from skarim.config import (
    ClusterConfig,
    DeconvConfig,
    GridConfig,
    OutputConfig,
    ReadConfig,
    RunConfig,
)
from skarim.run.pipeline import run_imaging

NPIX = 64
CELL_RAD = np.deg2rad(20 / 3600)
SOURCE = (40, 20)  # FITS (y, x) pixel of the source


def _ms(tmp_path, freq_hz, alpha=-0.7, weight_spectrum=None, name="joined.ms", same_noise=False):
    rng = np.random.default_rng(3)
    uvw = random_uvw_m(rng, 600, max_m=400.0, w_frac=1.0)
    y, x = SOURCE
    l_rad, m_rad = -(x - NPIX / 2) * CELL_RAD, (y - NPIX / 2) * CELL_RAD
    flux = (freq_hz / freq_hz.mean()) ** alpha  # (nchan,)
    vis = point_source_vis(uvw, freq_hz, l_rad, m_rad) * flux
    shape = (len(uvw), 1) if same_noise else vis.shape  # one draw for every channel, or one each
    noise = 1e-3 * (rng.normal(size=shape) + 1j * rng.normal(size=shape))
    return write_stokes_i_ms(
        tmp_path / name, uvw, freq_hz, vis + noise, weight_spectrum=weight_spectrum
    )


def _run(tmp_path, ms, nchan, name, **deconv):
    cfg = RunConfig(
        read=ReadConfig(ms=ms),
        grid=GridConfig(npix_x=NPIX, npix_y=NPIX, cell_rad=CELL_RAD, tile=32, channels_out=nchan),
        deconv=DeconvConfig(device="cpu", **deconv),
        cluster=ClusterConfig(kind="sync"),
        output=OutputConfig(name=str(tmp_path / name)),
    )
    products = run_imaging(cfg).products
    return fits.getdata(products["model"])[0]  # (chan, y, x) Jy/pixel


def _source_flux(model: np.ndarray) -> np.ndarray:
    y, x = SOURCE
    return model[:, y - 3 : y + 4, x - 3 : x + 4].sum(axis=(1, 2))  # (chan,)


def test_a_power_law_source_keeps_its_spectral_index_when_channels_are_joined(tmp_path):
    freq = np.linspace(1.0e9, 1.6e9, 8)
    model = _run(tmp_path, _ms(tmp_path, freq), 8, "alpha", join_channels=True, fit_spectral_pol=2)
    flux = _source_flux(model)
    assert np.all(flux > 0)
    alpha = np.polyfit(np.log(freq / freq.mean()), np.log(flux), 1)[0]
    assert alpha == pytest.approx(-0.7, abs=0.05)
    assert flux.mean() == pytest.approx(1.0, rel=0.05)
    off = np.ones(model.shape[1:], bool)
    off[SOURCE[0] - 3 : SOURCE[0] + 4, SOURCE[1] - 3 : SOURCE[1] + 4] = False
    assert np.abs(model[:, off]).sum(axis=1).max() < 0.02  # little spread over empty sky


def test_identical_channels_give_the_same_model_joined_or_independent(tmp_path):
    freq = np.array([1.4e9, 1.4e9 + 1.0])  # one frequency twice: the same data
    ms = _ms(tmp_path, freq, alpha=0.0, same_noise=True)
    joined = _run(tmp_path, ms, 2, "joined", join_channels=True)
    alone = _run(tmp_path, ms, 2, "alone")
    assert np.allclose(joined[0], joined[1], atol=1e-6)
    assert _source_flux(joined) == pytest.approx(_source_flux(alone), rel=0.02)
    # the joined pass refits the RIM's MFS model on its support by least squares: close,
    # not bit-equal
    assert np.abs(joined - alone).max() < 0.03 * np.abs(alone).max()


def test_a_flagged_channel_in_a_joined_run_is_blank_and_disturbs_nothing(
    tmp_path, caplog, monkeypatch
):
    monkeypatch.setattr(logging.getLogger("skarim"), "propagate", True)  # after a CLI test
    freq = np.linspace(1.0e9, 1.6e9, 4)
    weight = np.ones((600, 4))
    weight[:, 2] = 0.0  # channel 2 holds no usable data
    ms = _ms(tmp_path, freq, weight_spectrum=weight)
    with caplog.at_level(logging.INFO, logger="skarim"):
        model = _run(tmp_path, ms, 4, "flagged", join_channels=True, fit_spectral_pol=2)
    assert np.all(model[2] == 0)
    assert any("channel 2 has no unflagged data" in r.getMessage() for r in caplog.records)
    assert any("weights rim-spectral.pt (shipped)" in r.getMessage() for r in caplog.records)
    flux = _source_flux(model)[[0, 1, 3]]
    truth = (freq[[0, 1, 3]] / freq.mean()) ** -0.7
    assert flux == pytest.approx(truth, rel=0.06)


def test_fewer_deconvolution_channels_give_every_output_channel_its_fitted_spectrum(tmp_path):
    freq = np.linspace(1.0e9, 1.6e9, 8)
    ms = _ms(tmp_path, freq)
    model = _run(
        tmp_path, ms, 8, "groups", join_channels=True, fit_spectral_pol=2, deconvolution_channels=3
    )
    flux = _source_flux(model)
    alpha = np.polyfit(np.log(freq / freq.mean()), np.log(flux), 1)[0]
    assert alpha == pytest.approx(-0.7, abs=0.05)
    # every channel's model is one straight line in frequency through the 3 fitted ones
    line = np.polyfit(freq, model.reshape(8, -1), 1)  # (2, pixels)
    fitted = (np.vander(freq, 2) @ line).reshape(model.shape)
    assert np.abs(model - fitted).max() < 1e-5 * np.abs(model).max()
