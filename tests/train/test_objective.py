"""The training loss on window cores, with its noise floor."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from skarim.train.gpu_problems import WindowConfig, draw_windows
from skarim.train.objective import faint_loss, window_loss

CFG = WindowConfig(core=24, halo=6, context=0, layouts=("vla.c",), empty_prob=0.0)


def _draw(cfg: WindowConfig):
    return draw_windows(
        np.random.default_rng(1), torch.Generator().manual_seed(1), 4, cfg, torch.device("cpu")
    )


def test_a_zero_estimate_scores_zero_db_and_the_truth_scores_at_most_the_noise_floor():
    win = _draw(CFG)
    assert float(window_loss([torch.zeros_like(win.truth)], win)) == pytest.approx(0, abs=1e-5)
    assert float(window_loss([win.truth], win)) < -10.0
    # the halo is not scored: garbage there costs nothing
    garbage = win.truth.clone()
    garbage[:, :6] = 1e3
    assert float(window_loss([garbage], win)) == float(window_loss([win.truth], win))


def test_on_a_noise_only_window_one_invented_source_of_sigma_costs_3_db():
    win = _draw(replace(CFG, empty_prob=1.0))
    x = torch.zeros_like(win.truth)
    x[:, 18, 18] = win.sigma  # a point of sigma Jy in the middle of each core
    # raw: 10 log10(2); smoothed: the same up to the pixel sampling of the beam
    loss = float(window_loss([x], win, smooth_weight=1.0, raw_weight=0.25))
    assert loss == pytest.approx(1.25 * 10 * np.log10(2), abs=0.1)


def _bright_and_faint(n: int, fwhm_pix: float) -> tuple[torch.Tensor, ...]:
    """``n`` 48^2 skies of a 1 Jy point and a 1 mJy one (1e4 and 10 times the noise), the
    noise (1e-4 Jy/beam) and the beam FWHM of each."""
    truth = torch.zeros(n, 48, 48, dtype=torch.float64)
    truth[:, 24, 24], truth[:, 10, 36] = 1.0, 1e-3
    sigma = torch.full((n,), 1e-4, dtype=torch.float64)
    return truth, sigma, torch.full((n,), fwhm_pix, dtype=torch.float64)


def test_the_faint_loss_counts_a_missed_faint_source_where_the_snr_does_not():
    truth, sigma, fwhm = _bright_and_faint(2, 3.0)
    missed = truth.clone()
    missed[:, 10, 36] = 0.0  # the faint source left out
    bright_off = truth.clone()
    bright_off[:, 24, 24] = 1.001  # the same flux error on the bright source
    snr = [10 * torch.log10((truth**2).sum() / ((x - truth) ** 2).sum()) for x in (missed,
           bright_off)]  # fmt: skip
    assert float(snr[0]) == pytest.approx(float(snr[1]), abs=1e-6)  # alike to the SNR
    faint_missed = faint_loss(missed, truth, sigma, fwhm)
    faint_bright = faint_loss(bright_off, truth, sigma, fwhm)
    assert torch.all(faint_missed > faint_bright + 40.0)  # dB
    assert torch.all(faint_loss(truth, truth, sigma, fwhm) < -100.0)


def test_the_unsmoothed_faint_loss_counts_a_faint_source_spread_over_its_neighbours():
    truth, sigma, fwhm = _bright_and_faint(1, 4.0)
    spread = truth.clone()
    spread[:, 9:12, 35:38] = 1e-3 / 9  # the faint source's flux over 3 x 3 pixels
    smoothed = faint_loss(spread, truth, sigma, fwhm)
    sharp = faint_loss(spread, truth, sigma, fwhm, smoothed=False)
    assert float(smoothed) < -30.0  # well inside a 4-pixel beam: the smoothed form barely sees it
    assert float(sharp) > float(smoothed) + 20.0
    # unsmoothed, spreading the faint source costs about as much as leaving it out
    missed = truth.clone()
    missed[:, 10, 36] = 0.0
    assert float(sharp) == pytest.approx(float(faint_loss(missed, truth, sigma, fwhm,
                                                          smoothed=False)), abs=1.0)  # fmt: skip


def test_the_window_loss_adds_the_faint_and_sharp_terms_of_the_cores_by_their_weights():
    win = _draw(CFG)
    x = 0.5 * win.truth
    core = win.core
    args = (x[:, core, core], win.truth[:, core, core], win.sigma, win.beam_fwhm_pix)
    faint = faint_loss(*args).mean()
    sharp = faint_loss(*args, smoothed=False).mean()
    plain = float(window_loss([x], win))
    with_faint = float(window_loss([x], win, faint_weight=0.7))
    assert with_faint == pytest.approx(plain + 0.7 * float(faint), rel=1e-6)
    with_sharp = float(window_loss([x], win, sharp_weight=0.4))
    assert with_sharp == pytest.approx(plain + 0.4 * float(sharp), rel=1e-6)
    assert float(faint) < 0.0  # half the truth is nearer than nothing (0 dB)
    assert float(sharp) < 0.0
