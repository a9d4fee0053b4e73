"""The scale the RIM divides its inputs by, set by the emission near each pixel."""

from __future__ import annotations

import math

import torch

from skarim.deconv.rim_scale import SCALE_BLOCK_PIX, SCALE_LENGTH_PIX, local_scale

SIGMA = torch.tensor([1e-4], dtype=torch.float64)


def _tile(side: int = 256) -> torch.Tensor:
    return torch.zeros(1, side, side, dtype=torch.float64)


def test_a_bright_pixel_sets_the_scale_with_a_gaussian_falloff():
    tile = _tile()
    c = SCALE_BLOCK_PIX // 2  # block centres lie at c + k * block, between pixels c - 1 and c
    tile[0, 40, 40] = 1.0  # in block (2, 2)
    scale = local_scale(tile, SIGMA)
    centre = 2 * SCALE_BLOCK_PIX + c - 0.5  # block (2, 2)'s centre, pixel coordinates
    for k in (0, 1, 2, 3):  # blocks to the right: exact between their centres' pixels
        x = int(centre + k * SCALE_BLOCK_PIX + 0.5)
        expected = math.exp(-0.5 * (k * SCALE_BLOCK_PIX / SCALE_LENGTH_PIX) ** 2)
        pair = scale[0, int(centre - 0.5) : int(centre + 1.5), x - 1 : x + 1]
        assert abs(float(pair.mean()) - expected) < 0.02 * expected + 1e-12
    assert float(scale[0, 250, 250]) == 1e-4  # 300 pixels away: the noise floor


def test_a_faint_source_far_from_a_bright_one_is_scaled_by_itself():
    tile = _tile(304)
    tile[0, 271, 36] = 1.0  # a bright source
    tile[0, 40, 250] = 0.01  # a hundred times fainter, 320 pixels away
    scale = local_scale(tile, SIGMA)
    assert 0.005 < float(scale[0, 40, 250]) <= 0.01
    assert float(scale[0, 271, 36]) > 0.8


def test_the_factorised_maximum_equals_the_maximum_over_all_blocks():
    gen = torch.Generator().manual_seed(3)
    tile = torch.rand(2, 96, 80, generator=gen, dtype=torch.float64) ** 8
    scale = local_scale(tile, torch.full((2,), 1e-6, dtype=torch.float64), length_pix=20.0)
    # reference: every block's peak times the Gaussian of the distance between block centres
    peaks = torch.nn.functional.max_pool2d(tile[:, None], SCALE_BLOCK_PIX)[:, 0]  # (2, 6, 5)
    ys, xs = torch.meshgrid(torch.arange(6.0), torch.arange(5.0), indexing="ij")
    d2 = (ys.reshape(-1, 1) - ys.reshape(1, -1)) ** 2 + (xs.reshape(-1, 1) - xs.reshape(1, -1)) ** 2
    falloff = torch.exp(-0.5 * d2.double() * (SCALE_BLOCK_PIX / 20.0) ** 2)
    reference = (peaks.reshape(2, 1, -1) * falloff).amax(-1).reshape(2, 6, 5)
    c = SCALE_BLOCK_PIX // 2
    at_centres = scale[:, c - 1 :: SCALE_BLOCK_PIX, c - 1 :: SCALE_BLOCK_PIX]  # next to them
    at_centres = 0.5 * (at_centres + scale[:, c::SCALE_BLOCK_PIX, c::SCALE_BLOCK_PIX])
    torch.testing.assert_close(at_centres, reference, rtol=0.05, atol=0.0)


def test_spectral_terms_take_the_scale_of_term_zero():
    tile = _tile(64)
    tile[0, 20, 20] = 2.0
    terms = torch.stack([tile, -5.0 * tile], dim=1)  # (1, 2, 64, 64)
    torch.testing.assert_close(local_scale(terms, SIGMA), local_scale(tile, SIGMA))
