"""The scale the RIM divides its inputs by: set, at each pixel, by the emission near it.

The network sees its estimate, gradients and noise level divided by a scale ``s`` and returns
its update in units of ``s``. Training draws 64-pixel tiles, each scaled by its brightest
pixel, so the network knows sources down to the noise within about a tile of the brightest
one. A pipeline window is 304 pixels across. Scaled as a whole by its brightest pixel, a
window holding a 1 Jy source gave 10 mJy sources 150 pixels away, at 75 times the noise, a
scale a hundred times their own. The network then spread them over their neighbours (20% of
the flux on the source's pixel; cut out without the bright source, the same window gave
97%).

:func:`local_scale` gives each pixel the brightness of the window's blocks weighted by a
Gaussian of their distance from it, ``SCALE_LENGTH_PIX`` (half a training tile):
``s(p) = max(sigma, max_b peak_b exp(-|p - c_b|^2 / (2 L^2)))``, with ``peak_b`` the
brightest pixel of the ``SCALE_BLOCK_PIX`` block centred on ``c_b`` (at block centres; the
Gaussian factorises, so the maximum is taken along x, then along y). The map varies over tens
of pixels, several times the network's reach within one step (about 15 pixels), so each
pixel is scaled as in a training tile around it. The block values are interpolated
bilinearly between block centres. docs/benchmarks.md section 20 has the measurements.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["SCALE_LENGTH_PIX", "SCALE_BLOCK_PIX", "local_scale"]

#: Gaussian length, pixels, over which a bright pixel sets the scale around it: half the
#: 64-pixel training tile. On the quick bench's MeerKAT case and vla_short, 24-32 gave the
#: best RIM alone; 16 and 48-80 were up to 5.6 dB worse.
SCALE_LENGTH_PIX = 32.0

#: Side of the blocks whose brightest pixels set the map, pixels.
SCALE_BLOCK_PIX = 16


def local_scale(
    dirty: torch.Tensor, sigma: torch.Tensor, length_pix: float = SCALE_LENGTH_PIX
) -> torch.Tensor:
    """Per-pixel scale of a batch of tiles: bright emission within about ``length_pix``.

    Parameters
    ----------
    dirty : torch.Tensor
        ``(b, t, t)`` dirty tiles (Jy/beam), or ``(b, K, t, t)`` spectral terms (term 0
        sets the scale).
    sigma : torch.Tensor
        ``(b,)`` image noise, Jy/beam: the least scale.
    length_pix : float
        Gaussian length of the falloff from a bright block, pixels.

    Returns
    -------
    torch.Tensor
        ``(b, t, t)`` scale, ``dirty``'s dtype and units, at least ``sigma``; at the centre of the
        block holding the tile's brightest pixel it is that pixel's value.
    """
    image = dirty if dirty.ndim == 3 else dirty[:, 0]  # (b, t, t)
    ny, nx = image.shape[-2:]
    block = SCALE_BLOCK_PIX
    peaks = F.max_pool2d(image[:, None], block, ceil_mode=True)[:, 0].clamp(min=0)  # (b, my, mx)
    # the Gaussian factorises, so the weighted maximum is taken along x, then along y
    spread = _weighted_max(peaks, length_pix / block)  # along x
    spread = _weighted_max(spread.transpose(-2, -1), length_pix / block).transpose(-2, -1)
    my, mx = spread.shape[-2:]
    fine = F.interpolate(spread[:, None], size=(my * block, mx * block), mode="bilinear")
    floor = sigma.to(image.dtype).reshape(-1, 1, 1)
    return torch.maximum(fine[:, 0, :ny, :nx], floor)


def _weighted_max(values: torch.Tensor, length: float) -> torch.Tensor:
    """``out[..., i] = max_j values[..., j] exp(-(i - j)^2 / (2 length^2))`` along the last axis."""
    n = values.shape[-1]
    offsets = torch.arange(n, device=values.device, dtype=values.dtype)
    falloff = torch.exp(-0.5 * ((offsets[:, None] - offsets[None, :]) / length) ** 2)  # (n, n)
    return (values[..., None, :] * falloff).amax(dim=-1)
