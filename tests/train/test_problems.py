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


def test_a_bright_source_puts_the_tiles_sky_below_it_by_the_drawn_ratio():
    rng = np.random.default_rng(5)
    sky = np.zeros((16, 16))
    sky[3, 4], sky[10, 12] = 1.0, 0.2
    bright = with_bright_source(rng, sky, (100.0, 1000.0))
    assert bright.max() == 1.0
    added = bright - sky * bright[3, 4]  # the old sky, scaled as the new one is
    assert np.count_nonzero(np.abs(added) > 1e-12) == 1
    assert 1e-3 <= bright[3, 4] <= 1e-2 + 1e-12  # the old brightest over the new source
    assert bright[10, 12] == pytest.approx(0.2 * bright[3, 4])


def test_bright_prob_one_gives_every_tile_a_dominant_point():
    cfg = _noise_free(ProblemConfig(**{**BASE.__dict__, "bright_prob": 1.0,
                                       "bright_ratio": (1e3, 1e4)}))  # fmt: skip
    truth = make_batch(np.random.default_rng(6), 6, cfg).truth.numpy()
    second = np.sort(truth.reshape(6, -1), axis=1)[:, -2]  # the next brightest pixel
    assert np.all(truth.reshape(6, -1).max(axis=1) == 1.0) and np.all(second <= 1e-3 + 1e-12)
    # without the option the same stream draws skies of one or two decades of flux
    plain = make_batch(np.random.default_rng(6), 6, _noise_free(BASE)).truth.numpy()
    assert np.median(np.sort(plain.reshape(6, -1), axis=1)[:, -2]) > 1e-3
