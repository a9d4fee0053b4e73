"""The training loss on window cores, with its noise floor."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from skarim.train.gpu_problems import WindowConfig, draw_windows
from skarim.train.objective import window_loss

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
