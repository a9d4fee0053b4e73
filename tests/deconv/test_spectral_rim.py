"""The spectral-term RIM on joined-channel windows: reduction to the one-term network, the
batch, a power-law source, and the weights a run refuses."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from msfactory import point_source_vis, random_uvw_m, write_stokes_i_ms

from skarim.config import (
    ClusterConfig,
    DeconvConfig,
    GridConfig,
    OutputConfig,
    ReadConfig,
    RunConfig,
)
from skarim.deconv.rim import RIM, RIMConfig, expand_terms
from skarim.deconv.rim_deconvolver import deconvolve_windows
from skarim.deconv.spectral import spectral_basis
from skarim.deconv.spectral_operator import SpectralOperator
from skarim.deconv.spectral_rim import deconvolve_joined_windows
from skarim.deconv.weights import load_rim, save_weights
from skarim.errors import WeightsError
from skarim.run.pipeline import run_imaging

CPU = torch.device("cpu")


def _gaussian_psf(w: int, width_pix: float) -> np.ndarray:
    """``(2w, 2w)`` Gaussian PSF of the given width (sigma, pixels), peak 1 at ``(w, w)``."""
    yy, xx = np.mgrid[0 : 2 * w, 0 : 2 * w]
    return np.exp(-0.5 * ((yy - w) ** 2 + (xx - w) ** 2) / width_pix**2).astype(np.float32)


def _convolve(image: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """``PSF (*) image`` cropped to the image, by direct FFT of the zero-padded pair."""
    w = image.shape[-1]
    padded = np.zeros((2 * w, 2 * w))
    padded[:w, :w] = image
    kernel = np.fft.ifftshift(psf)
    return np.fft.ifft2(np.fft.fft2(padded) * np.fft.fft2(kernel)).real[:w, :w]


def test_identical_channels_give_every_channel_the_one_term_networks_model():
    """Two copies of one channel: the back-projected spectral term is zero, and a network
    expanded from a one-term one runs that network on the MFS term."""
    w = 48
    one_term = load_rim(None, CPU)
    two_terms = expand_terms(one_term, 2)
    psf = _gaussian_psf(w, 2.0)
    sky = np.zeros((w, w))
    sky[20, 30], sky[10, 12] = 1.5, 0.4
    dirty = _convolve(sky, psf)[None]  # (1, w, w)
    weight = np.array([1.0, 3.0])
    basis = spectral_basis(np.array([1.0e9, 1.2e9]), weight, 2)
    joined = deconvolve_joined_windows(
        two_terms, np.stack([dirty, dirty]), np.stack([psf, psf]), weight, basis,
        np.array([1e-3]), CPU,
    )  # fmt: skip
    alone = deconvolve_windows(one_term, dirty, psf, 1e-3, CPU)
    assert joined.shape == (2, 1, w, w)
    assert np.abs(joined[0] - alone).max() < 1e-5 * alone.max()
    assert np.abs(joined[1] - alone).max() < 1e-5 * alone.max()


def test_a_warm_start_is_the_dirty_image_it_answers():
    """Residuals of a starting model: the network sees the dirty image that model answers
    (``residual + PSF (*) x0``, each channel with its own PSF) and starts from the model."""
    w = 32
    torch.manual_seed(0)
    rim = RIM(RIMConfig(hidden=8, steps=3, terms=2))
    torch.nn.init.normal_(rim.out.weight, std=0.05)  # a network that is not plain descent
    psfs = np.stack([_gaussian_psf(w, 1.5), _gaussian_psf(w, 1.2)])  # (2, 2w, 2w)
    sky = np.zeros((2, w, w))
    sky[:, 16, 10] = [1.0, 0.8]
    dirty = np.stack([_convolve(sky[c], psfs[c]) for c in range(2)])  # (2, w, w)
    x0 = 0.5 * sky  # (2, w, w): in the basis's span (two channels, two terms)
    residual = dirty - np.stack([_convolve(x0[c], psfs[c]) for c in range(2)])
    weight = np.array([1.0, 1.0])
    basis = spectral_basis(np.array([1.0e9, 1.3e9]), weight, 2)
    warm = deconvolve_joined_windows(
        rim, residual[:, None], psfs, weight, basis, np.array([1e-3]), CPU, x0=x0[:, None]
    )  # (2, 1, w, w)

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=torch.float32)[None]

    op = SpectralOperator(t(psfs), t(weight), t(basis))
    with torch.no_grad():
        terms = rim(op.terms_of(t(dirty)), torch.tensor([1e-3]), op, x0=op.terms_of(t(x0)))
    reference = op.images(terms[-1])[0].numpy()  # (2, w, w)
    assert np.abs(warm[:, 0] - reference).max() < 1e-4 * np.abs(reference).max()
    cold = deconvolve_joined_windows(rim, dirty[:, None], psfs, weight, basis,
                                     np.array([1e-3]), CPU)  # fmt: skip
    assert np.abs(cold - warm).max() > 1e-3 * np.abs(warm).max()  # the start mattered


def test_a_network_of_other_terms_is_refused():
    rim = RIM(RIMConfig(hidden=4, steps=1, terms=2))
    w = 16
    with pytest.raises(ValueError, match="2 terms given 3"):
        deconvolve_joined_windows(
            rim, np.zeros((3, 1, w, w)), np.stack([_gaussian_psf(w, 1.0)] * 3), np.ones(3),
            np.ones((3, 3)), np.array([1.0]), CPU,
        )  # fmt: skip


NPIX = 64
CELL_RAD = np.deg2rad(20 / 3600)


def _power_law_ms(tmp_path, freq_hz: np.ndarray, alpha: float):
    rng = np.random.default_rng(3)
    uvw = random_uvw_m(rng, 600, max_m=400.0, w_frac=1.0)
    l_rad, m_rad = -(20 - NPIX / 2) * CELL_RAD, (40 - NPIX / 2) * CELL_RAD
    vis = point_source_vis(uvw, freq_hz, l_rad, m_rad) * (freq_hz / freq_hz.mean()) ** alpha
    noise = 1e-3 * (rng.normal(size=vis.shape) + 1j * rng.normal(size=vis.shape))
    return write_stokes_i_ms(tmp_path / "pl.ms", uvw, freq_hz, vis + noise)


def _config(tmp_path, ms, weights, **deconv) -> RunConfig:
    return RunConfig(
        read=ReadConfig(ms=ms),
        grid=GridConfig(npix_x=NPIX, npix_y=NPIX, cell_rad=CELL_RAD, tile=32, channels_out=4),
        deconv=DeconvConfig(device="cpu", weights=weights, **deconv),
        cluster=ClusterConfig(kind="sync"),
        output=OutputConfig(name=str(tmp_path / "pl")),
    )


def test_a_joined_run_with_spectral_weights_keeps_a_power_law(tmp_path, caplog, monkeypatch):
    from astropy.io import fits

    monkeypatch.setattr(logging.getLogger("skarim"), "propagate", True)  # after a CLI test
    freq = np.linspace(1.0e9, 1.6e9, 4)
    ms = _power_law_ms(tmp_path, freq, -0.7)
    weights = tmp_path / "two-terms.pt"
    save_weights(expand_terms(load_rim(None, CPU), 2), weights)
    cfg = _config(tmp_path, ms, weights, join_channels=True, fit_spectral_pol=2)
    with caplog.at_level(logging.INFO, logger="skarim"):
        model = fits.getdata(run_imaging(cfg).products["model"])[0]  # (chan, y, x)
    assert any(f"weights {weights}" in r.getMessage() for r in caplog.records)  # the log says
    flux = model[:, 37:44, 17:24].sum(axis=(1, 2))
    assert np.all(flux > 0)
    alpha = np.polyfit(np.log(freq / freq.mean()), np.log(flux), 1)[0]
    assert alpha == pytest.approx(-0.7, abs=0.05)
    assert flux.mean() == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("joined", [False, True])
def test_spectral_weights_without_their_joined_fit_are_refused_before_gridding(tmp_path, joined):
    ms = _power_law_ms(tmp_path, np.linspace(1.0e9, 1.6e9, 4), -0.7)
    weights = tmp_path / "two-terms.pt"
    save_weights(RIM(RIMConfig(hidden=4, steps=1, terms=2)), weights)
    deconv = {"join_channels": True, "fit_spectral_pol": 3} if joined else {}
    with pytest.raises(WeightsError, match="2 spectral terms.*--fit-spectral-pol 2"):
        run_imaging(_config(tmp_path, ms, weights, **deconv))
    assert not (tmp_path / "pl.zarr").exists()
