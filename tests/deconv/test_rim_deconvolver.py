"""Deconvolving windows with the RIM: one source, a batch, bfloat16 layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skarim.deconv.operator import TileOperator
from skarim.deconv.rim_deconvolver import deconvolve_windows
from skarim.deconv.weights import load_rim


def _gaussian_psf(t: int, ripple: float = 0.0) -> np.ndarray:
    """``(2t, 2t)`` Gaussian PSF (width 2 pixels) peaked at ``(t, t)``, times ``cos(ripple x)``."""
    yy, xx = np.mgrid[0 : 2 * t, 0 : 2 * t]
    psf = np.exp(-0.5 * ((yy - t) ** 2 + (xx - t) ** 2) / 2.0**2) * np.cos(ripple * (xx - t))
    return psf.astype(np.float32)


def test_deconvolve_windows_recovers_an_isolated_point_source():
    t = 64
    psf = _gaussian_psf(t)  # a clean Gaussian PSF
    x = np.zeros((t, t))
    x[30, 20] = 2.0
    dirty = TileOperator(torch.from_numpy(psf)).normal(torch.from_numpy(x)[None]).numpy()
    model = deconvolve_windows(
        load_rim(None, torch.device("cpu")), dirty, psf, 1e-3, torch.device("cpu")
    )
    assert model.shape == (1, t, t) and model.min() >= 0
    assert np.unravel_index(np.argmax(model[0]), (t, t)) == (30, 20)
    assert model[0, 27:34, 17:24].sum() == pytest.approx(2.0, rel=0.3)
    assert model[0].sum() == pytest.approx(2.0, rel=0.3)


def test_a_batch_of_windows_equals_the_network_run_on_all_at_once():
    """The CPU path runs a batch one window at a time; the result is the batched network's."""
    t = 64
    psf = _gaussian_psf(t)
    rng = np.random.default_rng(3)
    truth = np.zeros((3, t, t), dtype=np.float32)
    for k, (y, x) in enumerate([(10, 50), (32, 32), (40, 8)]):
        truth[k, y, x] = 1.0 + k
    op = TileOperator(torch.from_numpy(psf))
    dirty = op.normal(torch.from_numpy(truth)).numpy() + rng.normal(0, 1e-3, truth.shape)
    x0 = 0.5 * truth
    residual = dirty - op.normal(torch.from_numpy(x0)).numpy()
    rim = load_rim(None, torch.device("cpu"))
    got = deconvolve_windows(rim, residual, psf, 1e-3, torch.device("cpu"), x0=x0)
    with torch.no_grad():
        d = torch.from_numpy(dirty.astype(np.float32))
        want = rim(d, torch.full((3,), 1e-3), op, x0=torch.from_numpy(x0))[-1].numpy()
    assert got.shape == (3, t, t)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())
    assert np.abs(want[0] - want[1]).max() > 0.1  # the tiles differ: no tile was repeated


def test_bfloat16_layers_give_the_float32_model_to_a_per_cent():
    cpu = torch.device("cpu")
    t = 64
    psf = _gaussian_psf(t, ripple=0.3)
    truth = np.zeros((1, t, t))
    truth[0, 30, 20], truth[0, 12, 45] = 2.0, 0.05
    dirty = TileOperator(torch.from_numpy(psf)).normal(torch.from_numpy(truth)).numpy()
    f32 = deconvolve_windows(load_rim(None, cpu), dirty, psf, 1e-3, cpu)
    rim = load_rim(None, cpu, torch.bfloat16)
    assert rim.gru1.gates.weight.dtype == torch.bfloat16
    assert rim.step_size.dtype == torch.float32  # the gradient step stays float32
    b16 = deconvolve_windows(rim, dirty, psf, 1e-3, cpu)
    assert b16.dtype == np.float32 and not np.array_equal(b16, f32)  # it did run in bfloat16
    for y, x in ((30, 20), (12, 45)):  # each source's flux within 1%
        box = (0, slice(y - 3, y + 4), slice(x - 3, x + 4))
        assert b16[box].sum() == pytest.approx(f32[box].sum(), rel=0.01)
