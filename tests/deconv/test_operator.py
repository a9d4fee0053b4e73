"""The per-tile measurement operator: adjoint, gradcheck, PSF convolution against ducc0."""

from __future__ import annotations

import numpy as np
import torch

from skarim.deconv.operator import TileOperator
from skarim.imaging.wgridder import Block, image_to_vis, vis_to_image
from skarim.sim.layouts import load_layout
from skarim.sim.uvcoverage import hour_angles_rad, uvw_tracks_m

FREQ = np.array([1.4e9])


def _ducc_psf_and_uvw(t: int, cell: float):
    layout = load_layout("meerkat")
    uvw = uvw_tracks_m(layout, np.deg2rad(-40), hour_angles_rad(3 * 3600, 600)).reshape(-1, 3)
    uvw[:, 2] = 0.0  # coplanar: the tile operator has no w-term
    ones = np.ones((len(uvw), 1), np.complex128)
    w = np.ones((len(uvw), 1))
    psf = vis_to_image(
        uvw_m=uvw, freq_hz=FREQ, vis=ones, weight=w, block=Block.centred(2 * t, cell), epsilon=1e-12
    )
    return psf / psf[t, t], uvw, w


def test_adjoint_float64():
    t = 32
    psf, _, _ = _ducc_psf_and_uvw(t, np.deg2rad(3 / 3600))
    op = TileOperator(torch.from_numpy(np.stack([psf, psf[::-1, ::-1].copy()])))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, t, t, dtype=torch.float64, generator=g)
    z = torch.randn(2, 2 * t, 2 * t, dtype=torch.complex128, generator=g)
    lhs = torch.vdot(op.forward(x).flatten(), z.flatten()).real
    rhs = (x * op.adjoint(z)).sum()
    assert abs(float(lhs - rhs)) < 1e-6 * abs(float(lhs))


def test_gradcheck():
    t = 8
    g = torch.Generator().manual_seed(1)
    psf = torch.rand(2 * t, 2 * t, dtype=torch.float64, generator=g)
    psf = 0.5 * (psf + torch.roll(psf.flip(0, 1), (1, 1), (0, 1)))  # symmetric about (t, t)
    op = TileOperator(psf)
    x = torch.randn(1, t, t, dtype=torch.float64, generator=g, requires_grad=True)
    dirty = torch.randn(1, t, t, dtype=torch.float64, generator=g)
    sigma = torch.tensor([0.7], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda v: op.forward(v).abs().sum(), (x,))
    assert torch.autograd.gradcheck(lambda v: op.gradient(v, dirty, sigma), (x,))
    assert torch.autograd.gradcheck(lambda v: op.precondition(op.normal(v)), (x,))


def test_gradient_is_the_gradient_of_the_data_term():
    t = 16
    psf, _, _ = _ducc_psf_and_uvw(t, np.deg2rad(3 / 3600))
    op = TileOperator(torch.from_numpy(psf))
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, t, t, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.randn(1, 2 * t, 2 * t, dtype=torch.complex128, generator=g)
    sigma = torch.tensor([0.3], dtype=torch.float64)
    loss = (op.forward(x) - y).abs().pow(2).sum() / (2 * sigma**2)
    (auto,) = torch.autograd.grad(loss.sum(), x)
    # with the clipped sampling the normal operator is A^H A only up to the clip: use A^H A here
    manual = (op.adjoint(op.forward(x)) - op.adjoint(y)) / sigma.reshape(-1, 1, 1) ** 2
    assert torch.allclose(auto, manual, rtol=1e-10, atol=1e-10)


def test_normal_operator_equals_ducc0_in_the_tile_interior():
    t, cell = 64, np.deg2rad(4 / 3600)
    psf, uvw, w = _ducc_psf_and_uvw(t, cell)
    rng = np.random.default_rng(3)
    x = np.zeros((t, t))
    x[rng.integers(8, t - 8, 20), rng.integers(8, t - 8, 20)] = rng.uniform(0.1, 1, 20)
    block = Block(t, t, 0, 0, t, t, cell)
    vis = image_to_vis(uvw_m=uvw, freq_hz=FREQ, image=x, block=block, epsilon=1e-12)
    ref = vis_to_image(uvw_m=uvw, freq_hz=FREQ, vis=vis, weight=w, block=block, epsilon=1e-12)
    ref /= w.sum()
    got = TileOperator(torch.from_numpy(psf)).normal(torch.from_numpy(x)[None])[0].numpy()
    inner = (slice(4, t - 4), slice(4, t - 4))
    assert np.abs(got[inner] - ref[inner]).max() < 1e-6 * np.abs(ref).max()


def test_float32_and_batched():
    t = 24
    psf, _, _ = _ducc_psf_and_uvw(t, np.deg2rad(3 / 3600))
    op64 = TileOperator(torch.from_numpy(psf))
    op32 = TileOperator(torch.from_numpy(psf).float())
    x = torch.rand(3, t, t, dtype=torch.float64)
    assert op32.normal(x.float()).dtype == torch.float32
    assert torch.allclose(op32.normal(x.float()).double(), op64.normal(x), rtol=1e-4, atol=1e-5)
