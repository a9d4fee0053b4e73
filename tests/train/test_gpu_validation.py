"""Validation of GPU training: the projected-gradient baseline and the scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skarim.deconv.clean import projected_gradient as projected_gradient_numpy
from skarim.train.gpu_problems import WindowConfig, draw_windows
from skarim.train.gpu_validation import projected_gradient, scores

CFG = WindowConfig(core=20, halo=4, context=4, layouts=("meerkat", "atca_6a"), empty_prob=0.3)


def _draw():
    return draw_windows(
        np.random.default_rng(2), torch.Generator().manual_seed(2), 6, CFG, torch.device("cpu")
    )


def test_the_baseline_is_the_classical_projected_gradient_batched():
    win = _draw()
    mine = projected_gradient(win, n_iter=30).numpy()
    for i in range(2):
        ref = projected_gradient_numpy(
            win.dirty[i].double().numpy(), win.psf[i].double().numpy(), n_iter=30, damping=0.3
        )
        np.testing.assert_allclose(mine[i], ref, atol=2e-4 * np.abs(ref).max())


def test_half_the_truth_scores_6_db_and_half_its_flux():
    win = _draw()
    assert 0 < int(win.quiet.sum()) < 6
    got = scores([0.5 * win.truth], [win])
    assert got["snr_db"] == pytest.approx(10 * np.log10(4))
    assert got["smoothed_snr_db"] == pytest.approx(10 * np.log10(4))
    assert got["flux_ratio"] == pytest.approx(0.5)
    assert got["quiet_flux_sigma"] == 0.0
    invented = torch.zeros_like(win.truth)
    invented[:, 12, 12] = 2 * win.sigma  # two sigma of flux in every core
    assert scores([invented], [win])["quiet_flux_sigma"] == pytest.approx(2.0)
