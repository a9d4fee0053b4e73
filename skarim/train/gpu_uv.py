"""uv coverage, imaging weights and sampling grids of simulated observations, on the device.

Torch and numpy only, batched over problems: :func:`uv_tracks_lambda` has the geometry of
:func:`skarim.sim.uvcoverage.uvw_tracks_m`, :func:`imaging_weights` the weight grid of
:mod:`skarim.imaging.weighting` (WSClean's: half plane, cells ``1 / (image_pix cell)``
wide; natural, uniform ``1 / W_k`` and Briggs ``1 / (1 + W_k f^2)``, no rank filter), and
:func:`sampling_grids` bins the weighted visibilities to the nearest cell of a training
field's grid (the training stand-in for the PSF that the pipeline measures).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from skarim.constants import SPEED_OF_LIGHT_M_S
from skarim.sim.layouts import load_layout
from skarim.sim.uvcoverage import uvw_tracks_m

__all__ = [
    "WEIGHTINGS",
    "layout_latitude_rad",
    "uv_tracks_lambda",
    "imaging_weights",
    "sampling_grids",
]

#: Weightings, in the order of their codes.
WEIGHTINGS = ("natural", "uniform", "briggs")


@lru_cache(maxsize=16)
def _baselines_m(name: str) -> tuple[np.ndarray, float]:
    """``(nbl, 3)`` baselines ``(x, y, z)`` of :func:`skarim.sim.uvcoverage.uvw_tracks_m`'s
    local frame (x at hour angle 0 and declination 0, y at -6 h, z north), m; and latitude."""
    layout = load_layout(name)
    u, v, w = uvw_tracks_m(layout, 0.0, np.zeros(1))[0].T  # at H = 0, dec = 0: (y, z, x)
    return np.stack([w, u, v], axis=1), layout.lon_lat_rad[1]


def layout_latitude_rad(name: str) -> float:
    """Geocentric latitude of a shipped layout's centre, radians."""
    return _baselines_m(name)[1]


def uv_tracks_lambda(
    layouts: list[str],
    dec_rad: torch.Tensor,
    hour_angle_rad: torch.Tensor,
    valid: torch.Tensor,
    freq_hz: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """uv coordinates of every problem's valid integrations, flattened over problems.

    The geometry of :func:`skarim.sim.uvcoverage.uvw_tracks_m`, on the device of the inputs.

    Parameters
    ----------
    layouts : list of str
        ``b`` layout names.
    dec_rad : torch.Tensor
        ``(b,)`` declinations, radians.
    hour_angle_rad, valid : torch.Tensor
        ``(b, n_time)`` hour angles (radians) and which of them are integrations.
    freq_hz : torch.Tensor
        ``(b,)`` frequencies, Hz.

    Returns
    -------
    tuple of torch.Tensor
        ``(n_vis,)`` problem index, u and v (wavelengths, float64) of each visibility.
    """
    device = dec_rad.device
    parts = []
    for name in dict.fromkeys(layouts):
        sel = torch.tensor([i for i, n in enumerate(layouts) if n == name], device=device)
        bx, by, bz = torch.tensor(_baselines_m(name)[0], device=device).T  # (nbl,) each
        h = hour_angle_rad[sel].double()[..., None]  # (s, n_time, 1)
        dec = dec_rad[sel].double()[:, None, None]
        scale = (freq_hz[sel].double() / SPEED_OF_LIGHT_M_S)[:, None, None]
        u = (h.sin() * bx + h.cos() * by) * scale  # (s, n_time, nbl)
        v = (-dec.sin() * h.cos() * bx + dec.sin() * h.sin() * by + dec.cos() * bz) * scale
        keep = valid[sel][..., None].expand_as(u)
        parts.append((sel[:, None, None].expand_as(u)[keep], u[keep], v[keep]))
    return tuple(torch.cat(p) for p in zip(*parts, strict=True))  # type: ignore[return-value]


def imaging_weights(
    prob: torch.Tensor,
    u: torch.Tensor,
    v: torch.Tensor,
    cell_rad: torch.Tensor,
    image_pix: torch.Tensor,
    weighting: torch.Tensor,
    robust: torch.Tensor,
) -> torch.Tensor:
    """Imaging weight of each visibility (natural weights 1), as WSClean's weight grid gives it.

    Parameters
    ----------
    prob, u, v : torch.Tensor
        ``(n_vis,)`` problem index and uv (wavelengths) of each visibility.
    cell_rad, image_pix, weighting, robust : torch.Tensor
        ``(b,)`` cell (radians), image side, weighting (index into ``WEIGHTINGS``) and Briggs
        robustness of each problem.

    Returns
    -------
    torch.Tensor
        ``(n_vis,)`` float64 weights.
    """
    b = len(cell_rad)
    flip = v < 0  # the half plane v >= 0: a visibility and its conjugate share a cell
    su = torch.where(flip, -u, u) * (image_pix * cell_rad)[prob]
    sv = torch.where(flip, -v, v) * (image_pix * cell_rad)[prob]
    x = torch.floor(su + image_pix[prob] / 2).long()
    y = torch.floor(sv).long()
    side = int(image_pix.max()) + 1
    key = (prob * side + y) * side + x
    _, inverse, counts = torch.unique(key, return_inverse=True, return_counts=True)
    cell_weight = counts[inverse].double()  # W_k of each visibility's cell
    total = torch.zeros(b, dtype=torch.float64, device=u.device).index_add_(
        0, prob, torch.ones_like(cell_weight)
    )
    sum_sq = torch.zeros_like(total).index_add_(0, prob, cell_weight)  # sum_k W_k^2
    f2 = (5.0 * torch.exp(-np.log(10.0) * robust.double())) ** 2 / (sum_sq / total.clamp_min(1))
    mode = weighting[prob]
    briggs = 1.0 / (1.0 + cell_weight * f2[prob])
    return torch.where(mode == 0, 1.0, torch.where(mode == 1, 1.0 / cell_weight, briggs))


def sampling_grids(
    prob: torch.Tensor,
    u: torch.Tensor,
    v: torch.Tensor,
    weight: torch.Tensor,
    cell_rad: torch.Tensor,
    n: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The weighted visibilities binned to the nearest cell of an ``n x n`` grid.

    The conjugate of each visibility is binned too; the grid's conjugate axis of FITS ``x``
    is ``-u``, of ``y`` it is ``+v`` (as :func:`skarim.train.problems.sampling_psf`).

    Returns
    -------
    tuple of torch.Tensor
        ``(b, n, n)`` sampling ``M`` scaled so that its PSF ``F^-1 M`` peaks at 1, and noise
        spectrum ``V = sum w^2`` (float64).
    """
    b = len(cell_rad)
    du = 1.0 / (n * cell_rad.double())[prob]  # cell width, wavelengths
    iu = torch.round(-u / du).long()
    iv = torch.round(v / du).long()
    inside = ((iu.abs() < n // 2) & (iv.abs() < n // 2)).double()
    grids = torch.zeros(2, b * n * n, dtype=torch.float64, device=u.device)
    for sign in (1, -1):
        flat = prob * n * n + (sign * iv % n) * n + sign * iu % n
        grids[0].index_add_(0, flat, weight * inside)
        grids[1].index_add_(0, flat, weight**2 * inside)
    sampling, noise = grids.reshape(2, b, n, n)
    sampling = sampling * (n * n / sampling.sum(dim=(-2, -1), keepdim=True))
    return sampling, noise
