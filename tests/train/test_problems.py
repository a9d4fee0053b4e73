"""Simulated training problems: tiles with sky beyond their edges."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skarim.train.problems import ProblemConfig, make_batch, with_bright_source

BASE = ProblemConfig(tile=32, layouts=("meerkat",), duration_h=(1.0, 2.0))


def _noise_free(cfg: ProblemConfig) -> ProblemConfig:
    return ProblemConfig(**{**cfg.__dict__, "dynamic_range": (1e12, 1e12)})


def _tile_convolution(batch) -> torch.Tensor:  # noqa: ANN001
    """``PSF (*) truth`` cropped to the tile, with the tile's own (2t)^2 PSF."""
    t = batch.truth.shape[-1]
    sampling = torch.fft.fft2(torch.fft.ifftshift(batch.psf, dim=(-2, -1))).real.clamp_min(0)
    spec = torch.fft.fft2(torch.nn.functional.pad(batch.truth, (0, t, 0, t)))
    return torch.fft.ifft2(sampling * spec).real[..., :t, :t]


def test_without_context_the_dirty_tile_is_the_psf_times_the_truth():
    batch = make_batch(np.random.default_rng(3), 4, _noise_free(BASE))
    err = (batch.dirty - _tile_convolution(batch)).abs().amax()
    assert float(err) < 1e-9 * float(batch.dirty.abs().amax())


def test_context_sky_puts_sidelobes_into_the_tile_that_its_truth_cannot_explain():
    cfg = _noise_free(ProblemConfig(**{**BASE.__dict__, "context_pix": 16, "context_prob": 1.0}))
    batch = make_batch(np.random.default_rng(4), 6, cfg)
    assert batch.dirty.shape == (6, 32, 32) and batch.psf.shape == (6, 64, 64)
    assert torch.allclose(batch.psf[:, 32, 32], torch.ones(6, dtype=batch.psf.dtype))
    # sources beyond the edge: the dirty tile is no longer PSF (*) its truth, by a margin
    unexplained = (batch.dirty - _tile_convolution(batch)).abs().amax(dim=(-2, -1))
    assert torch.all(unexplained > 1e-3 * batch.dirty.abs().amax(dim=(-2, -1)))


def test_a_bright_source_is_the_drawn_ratio_times_the_skys_brightest_pixel():
    sky = np.zeros((16, 16))
    sky[3, 4], sky[10, 12] = 0.5, 0.1
    bright = with_bright_source(np.random.default_rng(5), sky, 300.0)
    added = bright - sky
    assert np.count_nonzero(added) == 1 and added.max() == pytest.approx(150.0)
    assert sky[3, 4] == 0.5  # the input is left as it was


def test_in_a_bright_source_tile_the_noise_follows_the_faint_sky():
    cfg = ProblemConfig(**{**BASE.__dict__, "bright_prob": 1.0, "bright_ratio": (1e3, 1e4),
                           "bright_snr": (20.0, 20.0), "dynamic_range": (10.0, 1e12)})  # fmt: skip
    batch = make_batch(np.random.default_rng(6), 6, cfg)
    truth = batch.truth.numpy().reshape(6, -1)
    second = np.sort(truth, axis=1)[:, -2]  # the next brightest pixel
    assert np.all(truth.max(axis=1) == 1.0) and np.all(second <= 1e-3 + 1e-12)
    faint = batch.truth.clone().reshape(6, -1)
    faint[np.arange(6), truth.argmax(axis=1)] = 0.0  # the sky without its bright source
    batch.truth = faint.reshape(batch.truth.shape)
    faint_peak = _tile_convolution(batch).amax(dim=(-2, -1))
    # the faint sky's dirty peak is 20 sigma (up to the pixel the bright source took)
    assert torch.allclose(faint_peak / batch.sigma, torch.full((6,), 20.0, dtype=torch.float64),
                          rtol=0.05)  # fmt: skip
