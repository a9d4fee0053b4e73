"""Tests of skarim.deconv.spectral_operator and the RIM's spectral terms (skarim.deconv.rim)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skarim.deconv.operator import TileOperator
from skarim.deconv.rim import RIM, RIMConfig, expand_terms
from skarim.deconv.spectral import spectral_basis
from skarim.deconv.spectral_operator import SpectralOperator
from skarim.deconv.weights import load_rim, read_weights, save_weights
from skarim.deconv.weights_id import shipped_weights_path

T = 16  # tile side, pixels


def _psfs(freq_hz: np.ndarray, seed: int = 0) -> torch.Tensor:
    """``(1, C, 2T, 2T)`` float64 PSFs of one random uv coverage scaled by frequency: real and
    symmetric about ``(T, T)``, peak 1 there, as a real sampling makes them."""
    rng = np.random.default_rng(seed)
    uv_m = rng.normal(size=(40, 2)) * 6.0  # metres, in units where 1 / cell = 1 m at 1 Hz
    grid = (np.arange(2 * T) - T) / (2 * T)  # (2T,) direction cosines over the cell
    planes = []
    for f in freq_hz / freq_hz[0]:
        u, v = (uv_m * f).T  # (40,), (40,)
        phase = u[:, None, None] * grid[None, None, :] + v[:, None, None] * grid[None, :, None]
        planes.append(np.cos(2 * np.pi * phase).mean(axis=0))  # (2T, 2T)
    return torch.from_numpy(np.stack(planes))[None]


def _operator(freq_hz: np.ndarray, weight: np.ndarray, terms: int, psf=None) -> SpectralOperator:
    psf = _psfs(freq_hz) if psf is None else psf
    basis = torch.from_numpy(spectral_basis(freq_hz, weight, terms))  # (K, C)
    return SpectralOperator(psf, torch.from_numpy(weight), basis)


FREQ_HZ = np.array([1.0e9, 1.1e9, 1.25e9, 1.4e9])
WEIGHT = np.array([1.0, 2.0, 0.5, 1.5])


def test_one_term_is_the_mfs_psfs_tile_operator():
    op = _operator(FREQ_HZ, WEIGHT, 1)
    psf = _psfs(FREQ_HZ)[0]  # (C, 2T, 2T)
    a = torch.from_numpy(WEIGHT / WEIGHT.sum())
    mfs = TileOperator(torch.einsum("c,cyx->yx", a, psf))
    x = torch.rand(1, 1, T, T, dtype=torch.float64)
    torch.testing.assert_close(op.normal(x)[:, 0], mfs.normal(x[:, 0]))
    torch.testing.assert_close(op.precondition(x)[:, 0], mfs.precondition(x[:, 0]))


def test_the_terms_gradient_is_the_data_terms_gradient():
    """``N(B) - terms_of(dirty)`` is the gradient of ``J(B) = sum_c a_c (1/2 <x_c, PSF_c (*)
    x_c> - <x_c, dirty_c>)``, ``x_c = sum_k q_kc B_k``, as autograd finds it."""
    op = _operator(FREQ_HZ, WEIGHT, 3)
    channels = TileOperator(_psfs(FREQ_HZ)[0])
    a = torch.from_numpy(WEIGHT / WEIGHT.sum())
    dirty = torch.randn(1, 4, T, T, dtype=torch.float64)
    terms = torch.randn(1, 3, T, T, dtype=torch.float64, requires_grad=True)
    x = op.images(terms)[0]  # (C, T, T)
    data = (a[:, None, None] * (0.5 * x * channels.normal(x) - x * dirty[0])).sum()
    (grad,) = torch.autograd.grad(data, terms)
    torch.testing.assert_close(op.normal(terms.detach()) - op.terms_of(dirty), grad)


def test_terms_of_inverts_images_on_the_basis():
    op = _operator(FREQ_HZ, WEIGHT, 3)
    terms = torch.randn(1, 3, T, T, dtype=torch.float64)
    torch.testing.assert_close(op.terms_of(op.images(terms)), terms)


def test_expanded_shipped_weights_on_identical_channels_are_the_one_term_rim_on_the_mfs():
    config, state = read_weights(shipped_weights_path())
    one = RIM(config)
    one.load_state_dict(state)
    one = one.double()
    two = expand_terms(one, 2)
    freq_hz = np.array([1.0e9, 1.2e9, 1.4e9])
    psf = _psfs(freq_hz[:1]).expand(1, 3, 2 * T, 2 * T)  # one coverage in every channel
    op = _operator(freq_hz, np.ones(3), 2, psf=psf)
    rng = np.random.default_rng(3)
    sky = torch.zeros(1, T, T, dtype=torch.float64)
    sky[0, rng.integers(2, T - 2, 4), rng.integers(2, T - 2, 4)] = 1.0
    mfs = TileOperator(psf[0, 0])
    dirty = mfs.normal(sky) + 0.01 * torch.randn(1, T, T, dtype=torch.float64)
    sigma = torch.tensor([0.01], dtype=torch.float64)
    with torch.no_grad():
        expected = one(dirty, sigma, mfs)[-1]  # (1, T, T)
        got = two(op.terms_of(dirty[:, None].expand(1, 3, T, T)), sigma, op)[-1]  # (1, 2, T, T)
    torch.testing.assert_close(got[:, 0], expected)
    assert expected.abs().max() > 0.1  # the network did put flux somewhere
    assert got[:, 1].abs().max() < 1e-9 * expected.abs().max()  # zero but for round-off


def test_a_spectral_rim_keeps_term_zero_non_negative_and_its_terms_on_its_support():
    torch.manual_seed(0)
    rim = RIM(RIMConfig(hidden=8, steps=3, terms=2)).double()
    torch.nn.init.normal_(rim.out.weight, std=0.5)  # untrained output: steps of any sign
    op = _operator(FREQ_HZ, WEIGHT, 2, psf=_psfs(FREQ_HZ).expand(2, -1, -1, -1))
    dirty = torch.randn(2, 2, T, T, dtype=torch.float64)
    estimates = rim(dirty, torch.tensor([0.1, 0.1], dtype=torch.float64), op)
    assert len(estimates) == 3
    for x in estimates:
        assert x.shape == (2, 2, T, T)
        assert (x[:, 0] >= 0).all()
        assert (x[:, 1][x[:, 0] == 0] == 0).all()
        assert (x[:, 1] != 0).any()


def test_a_rim_refuses_a_stack_of_the_wrong_number_of_terms():
    rim = RIM(RIMConfig(hidden=8, steps=2, terms=2))
    delta = torch.zeros(2 * T, 2 * T)
    delta[T, T] = 1.0
    op = TileOperator(delta)
    with pytest.raises(ValueError, match="a RIM of 2 terms"):
        rim(torch.zeros(1, T, T), torch.ones(1), op)


def test_spectral_weights_round_trip_and_one_term_files_keep_their_form(tmp_path):
    rim = RIM(RIMConfig(hidden=8, steps=2, terms=3))
    save_weights(rim, tmp_path / "three.pt")
    loaded = load_rim(tmp_path / "three.pt", torch.device("cpu"))
    assert loaded.config == rim.config
    for name, value in rim.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value)
    assert RIMConfig(hidden=8, steps=2).to_dict() == {"hidden": 8, "steps": 2}
