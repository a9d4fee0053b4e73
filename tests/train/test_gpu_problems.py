"""Window problems drawn on the device: dirty windows, PSFs, noise and noise-only windows."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from skarim.deconv.operator import TileOperator
from skarim.train.gpu_problems import WindowConfig, draw_windows
from skarim.train.gpu_sky import SkyConfig

CPU = torch.device("cpu")
BASE = WindowConfig(core=24, halo=4, context=0, layouts=("meerkat", "vla.b"), empty_prob=0.0)


def _draw(cfg: WindowConfig, b: int = 6, seed: int = 0):
    return draw_windows(
        np.random.default_rng(seed), torch.Generator().manual_seed(seed), b, cfg, CPU
    )


def test_without_noise_or_sky_beyond_the_dirty_window_is_the_psf_times_the_truth():
    # points on pixel centres: the truth holds them exactly (points between pixels are split
    # bilinearly in the truth, while their dirty image comes from their exact positions)
    on_centre = SkyConfig(on_centre_prob=1.0)
    win = _draw(replace(BASE, dynamic_range=(1e12, 1e12), sky=on_centre))
    w = BASE.window
    assert win.psf.shape == (6, 2 * w, 2 * w)
    torch.testing.assert_close(win.psf[:, w, w], torch.ones(6))
    torch.testing.assert_close(win.psf[:, 1:, 1:], win.psf[:, 1:, 1:].flip(-1, -2))  # even
    expected = TileOperator(win.psf.double()).normal(win.truth.double()).float()
    scale = win.dirty.abs().amax()
    assert float((win.dirty - expected).abs().amax()) < 1e-4 * float(scale)


def test_sky_beyond_the_window_puts_sidelobes_into_it_that_its_truth_cannot_explain():
    cfg = replace(BASE, context=12, context_prob=1.0, dynamic_range=(1e12, 1e12))
    win = _draw(cfg)
    unexplained = (win.dirty - TileOperator(win.psf).normal(win.truth)).abs().amax(dim=(-2, -1))
    assert torch.all(unexplained > 1e-3 * win.dirty.abs().amax(dim=(-2, -1)))


def test_noise_only_windows_hold_noise_of_the_stated_level_and_no_sky():
    win = _draw(replace(BASE, empty_prob=1.0), b=8, seed=3)
    assert win.truth.abs().sum() == 0 and bool(win.quiet.all())
    ratio = win.dirty.std(dim=(-2, -1)) / win.sigma  # (b,): correlated noise, ~30 beams each
    assert abs(float(ratio.mean()) - 1.0) < 0.15


def test_the_noise_level_follows_the_drawn_dynamic_range():
    win = _draw(replace(BASE, dynamic_range=(50.0, 50.0), context=8, context_prob=0.0))
    peak = win.dirty.abs().amax(dim=(-2, -1))  # the noise, 1/50 of it, barely moves it
    torch.testing.assert_close(peak / win.sigma, torch.full((6,), 50.0), rtol=0.1, atol=0)


def test_a_bright_source_window_has_noise_set_by_its_faint_sky():
    on_centre = SkyConfig(on_centre_prob=1.0)
    cfg = replace(BASE, sky=on_centre, bright_prob=1.0, bright_ratio=(1e3, 1e4),
                  bright_snr=(20.0, 20.0), dynamic_range=(3.0, 1e12))  # fmt: skip
    win = _draw(cfg)
    truth = win.truth.reshape(6, -1)
    top2 = truth.topk(2, dim=1).values  # the bright source over the window's own sky
    assert torch.all(top2[:, 1] <= 1e-3 * top2[:, 0] * (1 + 1e-5))
    faint = truth.clone()
    faint[torch.arange(6), truth.argmax(dim=1)] = 0.0
    faint_dirty = TileOperator(win.psf.double()).normal(faint.reshape(win.truth.shape).double())
    snr = faint_dirty.amax(dim=(-2, -1)) / win.sigma.double()
    torch.testing.assert_close(snr, torch.full((6,), 20.0, dtype=torch.float64), rtol=0.05, atol=0)
