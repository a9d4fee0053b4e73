"""Tests of skarim.imaging.wgridder at the horizon: 0 beyond it, a direct DFT inside."""

from __future__ import annotations

import numpy as np
import pytest

from skarim.constants import SPEED_OF_LIGHT_M_S
from skarim.imaging.wgridder import Block, image_to_vis, vis_to_image

FREQ_HZ = np.array([5.0e7])  # 6 m wavelength
CELL_RAD = 0.08  # an all-sky cell: a 32-pixel side spans |l| up to 1.28


def _lmn(block: Block) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Direction cosines of a block's pixels (FITS order) and where the sky is."""
    y, x = np.mgrid[block.y0 : block.y0 + block.ny, block.x0 : block.x0 + block.nx]
    l_rad = -(x - block.npix_x / 2) * block.cell_rad
    m_rad = (y - block.npix_y / 2) * block.cell_rad
    sky = l_rad**2 + m_rad**2 < 1.0
    n = np.sqrt(np.where(sky, 1.0 - l_rad**2 - m_rad**2, 1.0))
    return l_rad, m_rad, n, sky


def _phase(uvw_m: np.ndarray, block: Block) -> np.ndarray:
    """``(nrow, ny, nx)`` phases ``2 pi (u l + v m + w (n - 1))``."""
    l_rad, m_rad, n, _ = _lmn(block)
    uvw = uvw_m / (SPEED_OF_LIGHT_M_S / FREQ_HZ[0])  # wavelengths
    return 2 * np.pi * (
        uvw[:, 0, None, None] * l_rad + uvw[:, 1, None, None] * m_rad
        + uvw[:, 2, None, None] * (n - 1)
    )  # fmt: skip


@pytest.mark.parametrize(
    "block", [Block.full(32, 32, CELL_RAD), Block(64, 48, 32, 8, 32, 32, CELL_RAD / 2)]
)
def test_images_are_zero_beyond_the_horizon_and_the_dft_inside(block):
    rng = np.random.default_rng(1)
    uvw_m = rng.uniform(-30.0, 30.0, (40, 3))
    vis = rng.normal(size=(40, 1)) + 1j * rng.normal(size=(40, 1))
    weight = rng.uniform(0.5, 1.5, (40, 1))
    image = vis_to_image(
        uvw_m=uvw_m, freq_hz=FREQ_HZ, vis=vis, weight=weight, block=block, epsilon=1e-10
    )
    _, _, _, sky = _lmn(block)
    dft = np.einsum(
        "k,kyx->yx", weight[:, 0], (vis[:, :1, None] * np.exp(-1j * _phase(uvw_m, block))).real
    )
    assert 0 < sky.sum() < sky.size
    assert np.all(image[~sky] == 0.0)
    np.testing.assert_allclose(image[sky], dft[sky], atol=1e-7 * np.abs(dft[sky]).max())


def test_prediction_ignores_the_pixels_beyond_the_horizon_and_stays_the_adjoint():
    block = Block.full(32, 32, CELL_RAD)
    rng = np.random.default_rng(2)
    uvw_m = rng.uniform(-30.0, 30.0, (40, 3))
    model = rng.normal(size=(32, 32))
    _, _, _, sky = _lmn(block)
    vis = image_to_vis(uvw_m=uvw_m, freq_hz=FREQ_HZ, image=model, block=block, epsilon=1e-10)
    expected = np.einsum("yx,kyx->k", np.where(sky, model, 0.0), np.exp(1j * _phase(uvw_m, block)))
    np.testing.assert_allclose(vis[:, 0], expected, atol=1e-7 * np.abs(expected).max())
    probe = rng.normal(size=(40, 1)) + 1j * rng.normal(size=(40, 1))
    back = vis_to_image(
        uvw_m=uvw_m, freq_hz=FREQ_HZ, vis=probe, weight=np.ones((40, 1)), block=block,
        epsilon=1e-10,
    )  # fmt: skip
    assert np.vdot(vis, probe).real == pytest.approx(np.sum(model * back), rel=1e-8)
