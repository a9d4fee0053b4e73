"""Batched skies on the device: points on and off pixel centres, extended emission."""

from __future__ import annotations

import numpy as np
import torch

from skarim.train.gpu_sky import Skies, SkyConfig, draw_skies

CPU = torch.device("cpu")


def _points(yx: list[tuple[float, float]], flux: list[float], side: int = 16) -> Skies:
    return Skies(
        torch.zeros(1, side, side),
        torch.tensor([yx], dtype=torch.float64),
        torch.tensor([flux], dtype=torch.float32),
    )


def test_a_point_on_a_pixel_centre_has_the_spectrum_of_its_pixel():
    sky = _points([(3.0, 11.0), (7.0, 7.0)], [2.0, 0.5])
    truth = sky.truth()
    assert truth[0, 3, 11] == 2.0 and truth[0, 7, 7] == 0.5 and truth.sum() == 2.5
    expected = torch.fft.fft2(truth, s=(32, 32))
    torch.testing.assert_close(sky.spectrum(32), expected.to(torch.complex64), atol=1e-5, rtol=0)


def test_a_point_between_pixels_is_split_in_truth_and_exact_in_its_spectrum():
    sky = _points([(6.0, 8.5)], [1.0])
    truth = sky.truth()
    assert truth[0, 6, 8] == truth[0, 6, 9] == 0.5 and truth.sum() == 1.0
    # with a real, even PSF (a symmetric uv sampling) the dirty image of a point half-way
    # between two pixels is mirror-symmetric about it
    n = 32
    k = torch.fft.fftfreq(n)
    sampling = torch.exp(-((k[:, None] ** 2 + k[None, :] ** 2) / 0.02))  # (n, n), even
    dirty = torch.fft.ifft2(sampling * sky.spectrum(n)).real[0, :16, :16]
    torch.testing.assert_close(dirty[:, 4:9], dirty[:, 9:14].flip(-1), atol=1e-6, rtol=0)
    assert dirty[6, 8] > dirty[6, 7] and dirty[6, 8] > dirty[5, 8]


def test_masking_removes_pixels_and_the_points_that_touch_them():
    sky = _points([(2.0, 2.0), (5.5, 5.0), (9.0, 9.0)], [1.0, 1.0, 1.0])
    sky.extended[0, 4:8, 4:8] = 0.25
    keep = torch.ones(1, 16, 16)
    keep[0, 6:, 6:] = 0.0  # removes (9, 9); (5.5, 5.0) touches only rows 5-6 of column 5
    kept = sky.masked(keep)
    assert kept.point_flux.tolist() == [[1.0, 1.0, 0.0]]
    assert kept.extended[0, 6:, 6:].abs().sum() == 0 and kept.extended[0, 4, 4] == 0.25


def test_drawn_skies_peak_at_one_with_their_points_inside_the_region():
    rng = np.random.default_rng(5)
    cfg = SkyConfig(points=(5.0, 20.0), gaussians=(0.5, 2.0), irregular_prob=0.5)
    skies = draw_skies(
        rng, torch.Generator().manual_seed(5), np.full(6, 4.0), 48, (8, 40), cfg, CPU
    )
    truth = skies.truth()
    torch.testing.assert_close(truth.amax(dim=(-2, -1)), torch.ones(6))
    assert torch.all(truth >= 0)
    real = skies.point_flux > 0
    yx = skies.point_yx[real]
    assert torch.all((yx >= 8) & (yx <= 39))
    on_centre = (skies.point_yx == skies.point_yx.round()).all(dim=-1).all(dim=-1)  # (b,)
    assert 0 < int(on_centre.sum()) < 6  # some skies on pixel centres, some off
