"""uv coverage, imaging weights and sampling grids on the device, against the numpy references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skarim.config import Weighting
from skarim.constants import SPEED_OF_LIGHT_M_S
from skarim.imaging.weighting import WeightGrid
from skarim.sim.layouts import load_layout
from skarim.sim.uvcoverage import hour_angles_rad, uvw_tracks_m
from skarim.train.gpu_uv import WEIGHTINGS, imaging_weights, sampling_grids, uv_tracks_lambda
from skarim.train.problems import sampling_psf


def _tracks(layouts, decs, durations_h, freqs):
    n_time = 7
    ha = np.stack([hour_angles_rad(d * 3600, d * 3600 / n_time) for d in durations_h])
    valid = np.ones_like(ha, dtype=bool)
    valid[1, 5:] = False  # a shorter second track
    as_t = torch.as_tensor
    decs, freqs = np.asarray(decs, dtype=float), np.asarray(freqs, dtype=float)
    out = uv_tracks_lambda(layouts, as_t(decs), as_t(ha), as_t(valid), as_t(freqs))
    return ha, valid, out


def test_uv_tracks_follow_the_simulators_geometry():
    layouts, decs, freqs = ["vla.c", "meerkat", "vla.c"], [0.3, -0.9, -0.2], [1.4e9, 0.9e9, 3e9]
    ha, valid, (prob, u, v) = _tracks(layouts, decs, [2.0, 0.2, 6.0], freqs)
    for i, name in enumerate(layouts):
        uvw = uvw_tracks_m(load_layout(name), decs[i], ha[i][valid[i]]).reshape(-1, 3)
        uvw = uvw * freqs[i] / SPEED_OF_LIGHT_M_S
        mine = prob == i
        np.testing.assert_allclose(u[mine].numpy(), uvw[:, 0], rtol=1e-12, atol=1e-6)
        np.testing.assert_allclose(v[mine].numpy(), uvw[:, 1], rtol=1e-12, atol=1e-6)


def test_natural_sampling_gives_the_psf_of_the_cpu_problems():
    _, _, (prob, u, v) = _tracks(["vla.b", "WSRT"], [0.5, 0.9], [1.0, 8.0], [1.5e9, 1.5e9])
    tile = 40
    cell = torch.tensor([1 / (4 * float(u[prob == i].abs().max())) for i in range(2)])
    sampling, _ = sampling_grids(prob, u, v, torch.ones_like(u), cell, 2 * tile)
    for i in range(2):
        psf = torch.fft.fftshift(torch.fft.ifft2(sampling[i]).real).numpy()
        ref = sampling_psf(u[prob == i].numpy(), v[prob == i].numpy(), tile, float(cell[i]), "")
        np.testing.assert_allclose(psf, ref, atol=1e-12)


@pytest.mark.parametrize("weighting", ["uniform", "briggs"])
def test_imaging_weights_are_those_of_the_pipelines_weight_grid(weighting):
    layouts, freqs = ["meerkat", "vla.d"], [1.2e9, 1.2e9]
    _, _, (prob, u, v) = _tracks(layouts, [-0.5, 0.6], [4.0, 1.0], freqs)
    npix, robust = np.array([256, 1024]), np.array([0.5, -0.7])
    cell = np.array([1 / (3 * float(torch.hypot(u, v)[prob == i].max())) for i in range(2)])
    code = torch.full((2,), WEIGHTINGS.index(weighting))
    mine = imaging_weights(
        prob, u, v, torch.tensor(cell), torch.tensor(npix), code, torch.tensor(robust)
    )
    for i in range(2):
        grid = WeightGrid(
            npix_x=int(npix[i]),
            npix_y=int(npix[i]),
            cell_rad=float(cell[i]),
            weighting=Weighting(weighting),
            robust=float(robust[i]),
            padding=1.0,
            rank_filter_level=0.0,
        )
        uvw = torch.stack([u[prob == i], v[prob == i], 0 * u[prob == i]], dim=1).numpy()
        uvw_m = uvw * SPEED_OF_LIGHT_M_S / freqs[i]
        ones = np.ones((len(uvw), 1))
        grid.add(uvw_m, np.array([freqs[i]]), ones)
        grid.finalize()
        ref = grid.imaging_weights(uvw_m, np.array([freqs[i]]), ones)[:, 0]
        np.testing.assert_allclose(mine[prob == i].numpy(), ref, rtol=1e-9)
