"""Batched random skies for the GPU training problems (torch and numpy only).

A batch of skies lives on ``side x side`` fields, Jy/pixel, FITS order ``[y, x]``: point
sources, elliptical Gaussians and irregular emission, each sky's components placed in a
square region of its field. The numbers that describe a sky (counts, positions, fluxes,
shapes) come from a numpy generator; the random fields of the irregular emission from a
torch generator on the device, where everything is rendered.

Point sources sit on pixel centres in a fraction of the skies and anywhere in the others.
Their truth is split bilinearly over the four nearest pixels (flux kept); their dirty image
comes from their exact positions (:meth:`Skies.spectrum`), as an off-grid source's
visibilities would give it. A sky's brightest truth pixel is 1 (:func:`draw_skies`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from skarim.beam import fwhm_to_sigma

__all__ = ["SkyConfig", "Skies", "draw_skies", "log_uniform"]


@dataclass(frozen=True)
class SkyConfig:
    """Ranges the skies are drawn from.

    Attributes
    ----------
    points : tuple of float
        Mean number of point sources in a sky's region, drawn log-uniformly per sky.
    gaussians : tuple of float
        Mean number of Gaussians in a sky's region, drawn log-uniformly per sky.
    gaussian_fwhm_beams : tuple of float
        Major-axis FWHM of a Gaussian, synthesised beams.
    irregular_prob : float
        Fraction of skies with a patch of irregular emission.
    on_centre_prob : float
        Fraction of skies whose point sources sit on pixel centres.
    max_points, max_gaussians : int
        Caps on the counts per sky.
    """

    points: tuple[float, float] = (0.3, 100.0)
    gaussians: tuple[float, float] = (0.05, 8.0)
    gaussian_fwhm_beams: tuple[float, float] = (1.5, 8.0)
    irregular_prob: float = 0.3
    on_centre_prob: float = 0.5
    max_points: int = 256
    max_gaussians: int = 16


@dataclass
class Skies:
    """A batch of skies on ``side x side`` fields.

    Attributes
    ----------
    extended : torch.Tensor
        ``(b, side, side)`` Gaussians and irregular emission, Jy/pixel.
    point_yx : torch.Tensor
        ``(b, p, 2)`` point positions, pixels (float64; 0 to ``side - 1``).
    point_flux : torch.Tensor
        ``(b, p)`` point fluxes, Jy (0 for the padding of skies with fewer points).
    """

    extended: torch.Tensor
    point_yx: torch.Tensor
    point_flux: torch.Tensor

    def _corners(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(b, p, 4)`` flat indices of each point's four nearest pixels, and their weights."""
        b, side, _ = self.extended.shape
        y, x = self.point_yx[..., 0], self.point_yx[..., 1]  # (b, p)
        y0 = y.floor().clamp(0, side - 2)
        x0 = x.floor().clamp(0, side - 2)
        fy, fx = (y - y0).to(self.extended.dtype), (x - x0).to(self.extended.dtype)
        rows = torch.arange(b, device=y.device)[:, None] * side + y0.long()
        offsets = torch.tensor([0, 1, side, side + 1], device=y.device)
        index = (rows * side + x0.long())[..., None] + offsets
        weight = torch.stack([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx], dim=-1)
        return index, weight

    def truth(self) -> torch.Tensor:
        """``(b, side, side)`` sky, Jy/pixel: the points split bilinearly over pixels."""
        index, weight = self._corners()
        flux = (weight * self.point_flux[..., None]).reshape(-1)
        flat = self.extended.reshape(-1).index_add(0, index.reshape(-1), flux)
        return flat.reshape(self.extended.shape)

    def spectrum(self, n: int) -> torch.Tensor:
        """``(b, n, n)`` complex64 FFT of the sky zero-padded to ``n``: points at exact positions.

        The points' part is ``sum_p S_p exp(-2 pi i (f_y y_p + f_x x_p))`` with ``f`` the
        signed FFT frequencies, cycles/pixel: band-limited, equal to the FFT of a pixel for a
        point on a pixel centre.
        """
        freq = torch.fft.fftfreq(n, device=self.point_yx.device, dtype=torch.float64)  # (n,)
        phase = -2 * np.pi * self.point_yx[..., None] * freq  # (b, p, 2, n)
        ey = torch.polar(self.point_flux[..., None].double(), phase[:, :, 0]).to(torch.complex64)
        ex = torch.polar(torch.ones_like(phase[:, :, 1]), phase[:, :, 1]).to(torch.complex64)
        points = ey.transpose(1, 2) @ ex  # (b, n, p) @ (b, p, n) -> (b, n, n)
        return torch.fft.fft2(self.extended, s=(n, n)).to(torch.complex64) + points

    def scaled(self, factor: torch.Tensor) -> Skies:
        """The skies times ``factor`` ``(b,)``."""
        f = factor.to(self.extended.dtype)
        return Skies(self.extended * f[:, None, None], self.point_yx, self.point_flux * f[:, None])

    def masked(self, keep: torch.Tensor) -> Skies:
        """The skies without the pixels, and the points touching pixels, where ``keep``
        ``(b, side, side)`` is 0."""
        index, weight = self._corners()
        touches = (keep.reshape(-1)[index] == 0) & (weight > 0)  # (b, p, 4)
        return Skies(self.extended * keep, self.point_yx, self.point_flux * ~touches.any(dim=-1))

    def __add__(self, other: Skies) -> Skies:
        return Skies(
            self.extended + other.extended,
            torch.cat([self.point_yx, other.point_yx], dim=1),
            torch.cat([self.point_flux, other.point_flux], dim=1),
        )


def log_uniform(rng: np.random.Generator, bounds: tuple[float, float], n: int) -> np.ndarray:
    """``n`` draws, log-uniform between ``bounds``."""
    return np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]), n))


def _points(
    rng: np.random.Generator, counts: np.ndarray, lo: int, hi: int, cfg: SkyConfig
) -> tuple[np.ndarray, np.ndarray]:
    """``(b, p, 2)`` positions in ``[lo, hi - 1]`` and ``(b, p)`` Pareto fluxes (0 = padding)."""
    b, p = len(counts), max(int(counts.max()), 1)
    yx = rng.uniform(lo, hi - 1, (b, p, 2))
    on_centre = rng.random(b) < cfg.on_centre_prob
    yx[on_centre] = np.rint(yx[on_centre])
    index = rng.uniform(0.8, 1.6, (b, 1))
    flux = (1 - rng.random((b, p))) ** (-1 / index)  # Pareto, >= 1
    flux[np.arange(p)[None, :] >= counts[:, None]] = 0.0
    return yx, flux


def _gaussians(
    rng: np.random.Generator,
    counts: np.ndarray,
    beam_pix: np.ndarray,
    lo: int,
    hi: int,
    side: int,
    brightest: np.ndarray,
    cfg: SkyConfig,
    device: torch.device,
) -> torch.Tensor:
    """``(b, side, side)`` sum of elliptical Gaussians of peak ``10^U(-2, 0.5) * brightest``."""
    b, g = len(counts), int(counts.max())
    out = torch.zeros(b, side, side, device=device)
    grid = torch.arange(side, device=device, dtype=torch.float32)
    for k in range(g):
        c = torch.tensor(rng.uniform(lo, hi, (2, b)), dtype=torch.float32, device=device)
        fwhm = beam_pix * rng.uniform(*cfg.gaussian_fwhm_beams, b)
        sa = fwhm_to_sigma(fwhm)
        params = np.stack([sa, sa * rng.uniform(0.3, 1.0, b), rng.uniform(0, np.pi, b)])
        amp = 10 ** rng.uniform(-2, 0.5, b) * brightest * (counts > k)
        sa_t, sb_t, th = torch.tensor(params, dtype=torch.float32, device=device)  # (b,) each
        dy = grid[None, :, None] - c[0][:, None, None]  # (b, side, 1)
        dx = grid[None, None, :] - c[1][:, None, None]  # (b, 1, side)
        cos, sin = th.cos()[:, None, None], th.sin()[:, None, None]
        a = dx * cos + dy * sin
        r = -dx * sin + dy * cos  # (b, side, side)
        amp_t = torch.tensor(amp, dtype=torch.float32, device=device)[:, None, None]
        q = (a / sa_t[:, None, None]) ** 2 + (r / sb_t[:, None, None]) ** 2
        out += amp_t * torch.exp(-0.5 * q)
    return out


def _irregular(
    rng: np.random.Generator,
    gen: torch.Generator,
    n: int,
    lo: int,
    hi: int,
    side: int,
    device: torch.device,
) -> torch.Tensor:
    """``(n, side, side)`` patches of irregular emission, peak about 1: a thresholded lognormal
    field of correlation length 1-5 pixels under a Gaussian envelope within ``[lo, hi)``."""
    noise = torch.randn(n, side, side, generator=gen, device=device)
    ky = torch.fft.fftfreq(side, device=device)[:, None]
    kx = torch.fft.rfftfreq(side, device=device)[None, :]
    scale = torch.tensor(rng.uniform(0.03, 0.12, n), dtype=torch.float32, device=device)
    kernel = torch.exp(-0.5 * (kx**2 + ky**2) / scale[:, None, None] ** 2)  # (n, side, side/2+1)
    field = torch.fft.irfft2(torch.fft.rfft2(noise) * kernel, s=(side, side))
    field = (field - field.mean(dim=(-2, -1), keepdim=True)) / field.std(dim=(-2, -1), keepdim=True)
    rows = torch.tensor(rng.uniform(0.5, 1.5, (2, n)), dtype=torch.float32, device=device)
    emission = torch.exp(rows[0][:, None, None] * field)
    emission = emission * (field > rows[1][:, None, None])
    width = (hi - lo) * rng.uniform(0.2, 0.6, n)
    env = _envelopes(rng, n, lo, hi, side, width, device)
    return emission * env / emission.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)


def _envelopes(
    rng: np.random.Generator,
    n: int,
    lo: int,
    hi: int,
    side: int,
    fwhm: np.ndarray,
    device: torch.device,
) -> torch.Tensor:
    """``(n, side, side)`` circular Gaussian envelopes of FWHM ``fwhm`` centred in ``[lo, hi)``."""
    c = torch.tensor(rng.uniform(lo, hi, (2, n)), dtype=torch.float32, device=device)
    s = torch.tensor(fwhm_to_sigma(fwhm), dtype=torch.float32, device=device)[:, None, None]
    grid = torch.arange(side, device=device, dtype=torch.float32)
    dy = grid[None, :, None] - c[0][:, None, None]  # (n, side, 1)
    dx = grid[None, None, :] - c[1][:, None, None]  # (n, 1, side)
    r2 = dy**2 + dx**2
    return torch.exp(-0.5 * r2 / s**2)


def draw_skies(
    rng: np.random.Generator,
    gen: torch.Generator,
    beam_pix: np.ndarray,
    side: int,
    region: tuple[int, int],
    cfg: SkyConfig,
    device: torch.device,
) -> Skies:
    """Draw a batch of skies, components in ``region`` of each field, brightest pixel 1.

    Parameters
    ----------
    rng : numpy.random.Generator
        Counts, positions, fluxes and shapes.
    gen : torch.Generator
        Random fields of the irregular emission (on ``device``).
    beam_pix : numpy.ndarray
        ``(b,)`` synthesised-beam FWHM of each sky's observation, pixels.
    side : int
        Field side, pixels.
    region : tuple of int
        ``(lo, hi)``: components are centred in ``[lo, hi)`` on both axes.
    cfg : SkyConfig
        Ranges.
    device : torch.device
        Where the skies are rendered.

    Returns
    -------
    Skies
        Every sky non-empty, its truth's brightest pixel 1.
    """
    b = len(beam_pix)
    lo, hi = region
    n_points = np.minimum(rng.poisson(log_uniform(rng, cfg.points, b)), cfg.max_points)
    n_gauss = np.minimum(rng.poisson(log_uniform(rng, cfg.gaussians, b)), cfg.max_gaussians)
    irregular = rng.random(b) < cfg.irregular_prob
    n_points[(n_points == 0) & (n_gauss == 0) & ~irregular] = 1
    yx, flux = _points(rng, n_points, lo, hi, cfg)
    brightest = np.maximum(flux.max(axis=1), 1.0)  # (b,)
    extended = _gaussians(rng, n_gauss, beam_pix, lo, hi, side, brightest, cfg, device)
    idx = np.flatnonzero(irregular)
    if idx.size:
        amp = torch.tensor(10 ** rng.uniform(-2, 0.3, idx.size) * brightest[idx], device=device)
        patch = _irregular(rng, gen, idx.size, lo, hi, side, device)
        extended[torch.as_tensor(idx, device=device)] += amp.float()[:, None, None] * patch
    skies = Skies(
        extended,
        torch.tensor(yx, dtype=torch.float64, device=device),
        torch.tensor(flux, dtype=torch.float32, device=device),
    )
    peak = skies.truth().amax(dim=(-2, -1))  # (b,)
    return skies.scaled(1.0 / peak)
