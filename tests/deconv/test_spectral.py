"""Joined-channel numerics: the spectral basis, the joined model fit and joined Hogbom CLEAN."""

from __future__ import annotations

import numpy as np
import pytest

from skarim.deconv.clean import hogbom
from skarim.deconv.spectral import (
    fit_joined_model,
    joined_hogbom,
    project_spectra,
    reference_frequency,
    spectral_basis,
    spectral_coefficients,
)

FREQ_HZ = np.linspace(1.0e9, 1.6e9, 8)
WEIGHT = np.array([1.0, 2.0, 1.5, 0.5, 1.0, 3.0, 2.0, 1.0])
A = WEIGHT / WEIGHT.sum()


def _psfs(w: int, freq_hz: np.ndarray, ripple: float = 0.0) -> np.ndarray:
    """``(C, 2w, 2w)`` Gaussian PSFs, 2 pixels wide at 1 GHz and narrowing as ``1 / freq``."""
    yy, xx = np.mgrid[-w:w, -w:w]
    out = []
    for f in freq_hz:
        s = 2.0 * 1e9 / f
        out.append(np.exp(-0.5 * (yy**2 + xx**2) / s**2) * (1 + ripple * np.cos(0.8 * xx / s)))
    return np.stack(out) / (1 + ripple)  # peak 1 at (w, w)


def _shifted(psf: np.ndarray, y: int, x: int) -> np.ndarray:
    """``PSF (*)`` a unit source at ``(y, x)`` of the window, for every channel: ``(C, w, w)``."""
    w = psf.shape[-1] // 2
    return psf[:, w - y : 2 * w - y, w - x : 2 * w - x]


def _power_law(alpha: float) -> np.ndarray:
    return (FREQ_HZ / 1.3e9) ** alpha  # Jy


def test_the_basis_is_one_then_orthonormal_polynomials_of_rising_degree():
    basis = spectral_basis(FREQ_HZ, WEIGHT, 4)
    assert basis.shape == (4, 8)
    np.testing.assert_array_equal(basis[0], 1.0)
    np.testing.assert_allclose((basis * A) @ basis.T, np.eye(4), atol=1e-12)
    t = FREQ_HZ / reference_frequency(FREQ_HZ, WEIGHT) - 1
    for k in range(1, 4):
        exact = np.polynomial.Polynomial.fit(t, basis[k], k)
        lower = np.polynomial.Polynomial.fit(t, basis[k], k - 1)
        assert np.abs(exact(t) - basis[k]).max() < 1e-10
        assert exact.convert().coef[k] > 0  # rising with frequency at the top degree
        assert np.abs(lower(t) - basis[k]).max() > 0.1


def test_the_reference_is_the_weighted_mean_frequency_and_zero_terms_free_every_channel():
    assert reference_frequency(FREQ_HZ, WEIGHT) == pytest.approx(np.dot(A, FREQ_HZ))
    assert spectral_basis(FREQ_HZ, WEIGHT, 0).shape == (8, 8)
    assert spectral_basis(FREQ_HZ, WEIGHT, 20).shape == (8, 8)
    freq = np.linspace(1.0e9, 1.6e9, 16)
    weight = np.linspace(1.0, 3.0, 16)
    full = spectral_basis(freq, weight, 16)  # 16 terms over 16 channels stay orthonormal
    np.testing.assert_allclose((full * weight / weight.sum()) @ full.T, np.eye(16), atol=1e-10)


def test_projection_is_exact_in_the_span_and_keeps_the_weighted_mean_outside_it():
    t = FREQ_HZ / 1.3e9 - 1
    quadratic = 0.8 - 1.5 * t + 4.0 * t**2
    cube = quadratic[:, None, None] * np.array([[1.0, -2.0], [0.5, 3.0]])  # (C, 2, 2)
    np.testing.assert_allclose(
        project_spectra(cube, WEIGHT, spectral_basis(FREQ_HZ, WEIGHT, 3)), cube
    )
    line = project_spectra(cube, WEIGHT, spectral_basis(FREQ_HZ, WEIGHT, 2))
    assert np.abs(line - cube).max() > 1e-3
    np.testing.assert_allclose(np.tensordot(A, line, axes=1), np.tensordot(A, cube, axes=1))
    coef = spectral_coefficients(cube, WEIGHT, spectral_basis(FREQ_HZ, WEIGHT, 2))
    np.testing.assert_allclose(coef[0], np.tensordot(A, cube, axes=1))


def test_a_power_law_point_source_gets_the_straight_line_that_minimises_the_misfit():
    w, basis = 32, spectral_basis(FREQ_HZ, WEIGHT, 2)
    psf = _psfs(w, FREQ_HZ)
    sources = [((12, 17), _power_law(-0.7)), ((20, 9), 2.0 * _power_law(0.5))]
    residual = np.zeros((8, 2, w, w))
    mfs = np.zeros((2, w, w))
    support = np.zeros((2, w, w), dtype=bool)
    for b, ((y, x), flux) in enumerate(sources):
        residual[:, b] = flux[:, None, None] * _shifted(psf, y, x)
        mfs[b, y, x] = np.dot(A, flux)
        support[b, y, x] = True
    out = fit_joined_model(residual, psf, None, mfs, WEIGHT, basis, support, 5)
    for b, ((y, x), flux) in enumerate(sources):
        # J = sum_c a_c n_c (S_c - m - B_1 q_1c)^2 with n_c the PSF's energy in the window:
        # the line through the MFS flux m whose slope is weighted by a_c n_c
        n = (_shifted(psf, y, x) ** 2).sum(axis=(1, 2))
        slope = np.sum(A * n * (flux - mfs[b, y, x]) * basis[1]) / np.sum(A * n * basis[1] ** 2)
        np.testing.assert_allclose(out[:, b, y, x], mfs[b, y, x] + slope * basis[1], rtol=1e-3)
        fitted_j = np.sum(A * n * (flux - out[:, b, y, x]) ** 2)  # J of the fit and of x_c = m
        assert fitted_j < 0.1 * np.sum(A * n * (flux - mfs[b, y, x]) ** 2)
        assert np.count_nonzero(out[:, b]) == 8  # nothing outside the support
    np.testing.assert_allclose(np.tensordot(A, out, axes=1), mfs, atol=1e-6)


def test_the_joined_fit_equals_a_dense_least_squares_solution():
    rng = np.random.default_rng(7)
    c, b, w = 4, 2, 8
    freq, weight = np.linspace(1.0e9, 1.6e9, c), rng.uniform(1.0, 2.0, c)
    a = weight / weight.sum()
    basis = spectral_basis(freq, weight, 3)
    psf = _psfs(w, freq * 10 / 3, ripple=0.3)  # 0.6-0.4 pixels wide: a well-posed fit
    psf[:, w + 1, w + 2] = 0.4  # one lopsided sidelobe: convolution and correlation differ
    residual, x0 = rng.normal(size=(2, c, b, w, w))
    mfs = rng.normal(size=(b, w, w))
    support = rng.uniform(size=(b, w, w)) < 0.6
    out = fit_joined_model(residual, psf, x0, mfs, weight, basis, support, 200)
    # the linear convolution of the window as a matrix, element by element as hogbom subtracts
    ops = np.stack(
        [[_shifted(p[None], y, x)[0].ravel() for y in range(w) for x in range(w)] for p in psf]
    ).transpose(0, 2, 1)  # (C, w*w, w*w)
    for i in range(b):
        idx = np.flatnonzero(support[i])
        design = np.vstack(
            [
                np.sqrt(a[k]) * np.hstack([q * ops[k][:, idx] for q in basis[1:, k]])
                for k in range(c)
            ]
        )
        target = np.concatenate(
            [
                np.sqrt(a[k]) * (residual[k, i].ravel() - ops[k] @ (mfs[i] - x0[k, i]).ravel())
                for k in range(c)
            ]
        )
        best = np.linalg.lstsq(design, target, rcond=None)[0].reshape(2, -1)  # (K-1, support)
        expect = np.broadcast_to(mfs[i].ravel(), (c, w * w)).copy()
        expect[:, idx] += basis[1:].T @ best
        np.testing.assert_allclose(out[:, i].reshape(c, -1), expect, atol=1e-5)


def test_without_steps_the_model_is_the_mfs_model_plus_x0s_higher_terms_on_the_support():
    rng = np.random.default_rng(2)
    w, basis = 16, spectral_basis(FREQ_HZ, WEIGHT, 3)
    psf = _psfs(w, FREQ_HZ)
    residual, x0 = rng.normal(size=(2, 8, 1, w, w))
    mfs = rng.normal(size=(1, w, w))
    support = np.zeros((1, w, w), dtype=bool)
    support[0, 3:9, 4:12] = True
    out = fit_joined_model(residual, psf, None, mfs, WEIGHT, basis, support, 0)
    np.testing.assert_array_equal(out, np.broadcast_to(mfs, out.shape).astype(np.float32))
    out = fit_joined_model(residual, psf, x0, mfs, WEIGHT, basis, support, 0)
    higher = project_spectra(x0, WEIGHT, basis) - np.tensordot(A, x0, axes=1)[None]
    np.testing.assert_allclose(out, mfs[None] + higher * support[None], atol=1e-6)
    one = fit_joined_model(residual, psf, x0, mfs, WEIGHT, basis[:1], support, 10)
    np.testing.assert_array_equal(one, np.broadcast_to(mfs, out.shape).astype(np.float32))


def test_identical_channels_give_the_mfs_model_and_the_per_channel_clean():
    rng = np.random.default_rng(5)
    w, basis = 32, spectral_basis(FREQ_HZ, WEIGHT, 2)
    psf = np.repeat(_psfs(w, FREQ_HZ[:1], ripple=0.2), 8, axis=0)
    dirty = 0.5 * _shifted(psf, 10, 14)[0] + rng.normal(0, 1e-3, (w, w))
    residual = np.repeat(dirty[None, None], 8, axis=0)  # (C, 1, w, w)
    mfs = np.zeros((1, w, w))
    mfs[0, 10, 14] = 0.45
    support = np.zeros((1, w, w), dtype=bool)
    support[0, 8:13, 12:17] = True
    out = fit_joined_model(residual, psf, None, mfs, WEIGHT, basis, support, 10)
    np.testing.assert_allclose(out, np.broadcast_to(mfs, out.shape), atol=1e-9)
    joined = joined_hogbom(residual[:, 0], psf, WEIGHT, basis, 1e-3)
    alone = hogbom(dirty, psf[0], 1e-3)
    assert np.count_nonzero(alone) > 0
    np.testing.assert_allclose(joined, np.broadcast_to(alone, joined.shape), rtol=1e-9, atol=1e-12)


def test_joined_clean_of_one_channel_is_hogbom_exactly():
    rng = np.random.default_rng(11)
    w = 32
    psf = _psfs(w, FREQ_HZ[:1], ripple=0.3)
    dirty = 0.8 * _shifted(psf, 9, 20)[0] - 0.3 * _shifted(psf, 22, 6)[0]
    dirty += rng.normal(0, 1e-3, (w, w))
    mask = np.zeros((w, w), dtype=bool)
    mask[4:28, 4:28] = True
    basis = spectral_basis(FREQ_HZ[:1], WEIGHT[:1], 2)
    assert basis.shape == (1, 1)
    for m in (None, mask):
        joined = joined_hogbom(dirty[None], psf, WEIGHT[:1], basis, 1e-3, mask=m)
        np.testing.assert_array_equal(joined[0], hogbom(dirty, psf[0], 1e-3, mask=m))


def test_joined_clean_leaves_a_spectrum_whose_weighted_mean_is_zero_alone():
    w, basis = 32, spectral_basis(FREQ_HZ, WEIGHT, 2)
    psf = np.repeat(_psfs(w, FREQ_HZ[:1]), 8, axis=0)
    residual = basis[1][:, None, None] * _shifted(psf, 16, 16)  # (C, w, w): +-1 Jy/beam per channel
    assert np.abs(residual.mean(axis=0)).max() > 0.05  # the unweighted mean is not zero
    np.testing.assert_array_equal(joined_hogbom(residual, psf, WEIGHT, basis, 1e-3), 0.0)


@pytest.mark.parametrize("masked", [False, True])
def test_joined_clean_recovers_two_spectral_indices_within_its_mask(masked: bool):
    rng = np.random.default_rng(3)
    w, basis = 48, spectral_basis(FREQ_HZ, WEIGHT, 2)
    psf = _psfs(w, FREQ_HZ, ripple=0.2)
    sources = [((14, 18), _power_law(-0.7)), ((30, 33), 0.5 * _power_law(0.5))]
    residual = rng.normal(0, 1e-4, (8, w, w))
    for (y, x), flux in sources:
        residual += flux[:, None, None] * _shifted(psf, y, x)
    mask = None
    if masked:
        mask = np.zeros((w, w), dtype=bool)
        mask[8:22, 10:26] = True  # the first source only
    model = joined_hogbom(residual, psf, WEIGHT, basis, 1e-4 / np.sqrt(8), mask=mask)
    for i, ((y, x), flux) in enumerate(sources):
        if masked and i == 1:
            assert np.all(model[:, y, x] == 0)
            continue
        line = project_spectra(flux, WEIGHT, basis)
        np.testing.assert_allclose(model[:, y, x], line, rtol=0.005)  # the truth is 2% off
    if masked:
        assert np.all(model[:, ~mask] == 0)
