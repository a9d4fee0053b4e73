"""Simulated imaging problems for training and validating the RIM on the CPU.

One problem is a ``t x t`` tile: a true sky ``x`` (Jy/pixel), the ``2t x 2t`` PSF of a random
observation (layout, declination, duration, frequency, cell, weighting), and the dirty tile
``PSF (*) x + A^H n`` with noise of known image-domain level ``sigma`` (Jy/beam).

The uv sampling of a problem is the observation's uv points binned onto the ``2t`` grid's
cells (both Hermitian halves), weighted natural, uniform or Briggs: the training stand-in for
the ducc0 PSF that the pipeline measures. Sky scale is arbitrary (brightest ~1): the RIM sees
tiles divided by a per-tile scale.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from skarim.beam import fwhm_to_sigma, psf_fwhm_pix
from skarim.constants import SPEED_OF_LIGHT_M_S
from skarim.deconv.operator import TileOperator
from skarim.imaging.weighting import briggs_factors
from skarim.sim.layouts import load_layout
from skarim.sim.uvcoverage import hour_angles_rad, uvw_tracks_m

__all__ = [
    "ProblemConfig",
    "ProblemBatch",
    "Observation",
    "make_batch",
    "random_observation",
    "random_tile_sky",
    "with_bright_source",
    "sampling_psf",
]


@dataclass(frozen=True)
class ProblemConfig:
    """Ranges the problem generator draws from.

    Attributes
    ----------
    tile : int
        Tile side in pixels.
    layouts : tuple of str
        Shipped layouts to draw from.
    duration_h : tuple of float
        Track length range, hours.
    freq_hz : tuple of float
        Observing frequency range, Hz.
    pixels_per_beam : tuple of float
        Cell chosen as ``1 / (k * uv_max)`` with ``k`` in this range.
    dynamic_range : tuple of float
        Brightest pixel over image noise, drawn log-uniformly.
    context_pix : int
        Sky simulated this far beyond every tile edge, pixels (0: none). Sources there put
        sidelobes into the dirty tile, as sources beyond a pipeline window do; components
        straddling the edge put part of their flux into the tile's truth.
    context_prob : float
        Fraction of problems given a context sky (with ``context_pix > 0``).
    context_flux : tuple of float
        Brightest context pixel over the tile's brightest, drawn log-uniformly.
    bright_prob : float
        Fraction of tiles given one bright point source on top of their sky
        (:func:`with_bright_source`): faint emission near the noise beside a source up to
        ``1e4`` times brighter, as a pipeline window near a bright source holds. The skies
        the default draws span one or two decades of flux, and their noise follows the
        brightest source.
    bright_ratio : tuple of float
        The bright source's flux over the tile's brightest pixel before it, log-uniform (at
        most ``dynamic_range[1] / bright_snr``).
    bright_snr : tuple of float
        In a tile given a bright source, the peak of its own sky's dirty image over the
        noise, log-uniform: the noise follows the faint sky, not ``dynamic_range``.
    """

    tile: int = 64
    layouts: tuple[str, ...] = ("meerkat", "vla.a", "vla.b", "vla.c", "vla.d", "WSRT", "atca_6a")
    duration_h: tuple[float, float] = (0.5, 8.0)
    freq_hz: tuple[float, float] = (0.8e9, 2.0e9)
    pixels_per_beam: tuple[float, float] = (3.0, 6.0)
    dynamic_range: tuple[float, float] = (10.0, 1e4)
    context_pix: int = 0
    context_prob: float = 0.5
    context_flux: tuple[float, float] = (0.01, 10.0)
    bright_prob: float = 0.0
    bright_ratio: tuple[float, float] = (10.0, 1e4)
    bright_snr: tuple[float, float] = (1.0, 300.0)


@dataclass
class ProblemBatch:
    """A batch of problems, as tensors.

    Attributes
    ----------
    truth : torch.Tensor
        ``(batch, t, t)`` true sky, Jy/pixel.
    dirty : torch.Tensor
        ``(batch, t, t)`` dirty tile, Jy/beam.
    psf : torch.Tensor
        ``(batch, 2t, 2t)`` PSF, peak 1 at ``(t, t)``.
    sigma : torch.Tensor
        ``(batch,)`` image-domain noise, Jy/beam.
    beam_fwhm_pix : torch.Tensor
        ``(batch,)`` synthesised-beam FWHM (main lobe of the PSF), pixels.
    """

    truth: torch.Tensor
    dirty: torch.Tensor
    psf: torch.Tensor
    sigma: torch.Tensor
    beam_fwhm_pix: torch.Tensor

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> ProblemBatch:
        """Move every tensor to a device and dtype."""
        fields = (self.truth, self.dirty, self.psf, self.sigma, self.beam_fwhm_pix)
        return ProblemBatch(*(v.to(device=device, dtype=dtype) for v in fields))

    def operator(self, stop: int | None = None) -> TileOperator:
        """The operator of the first ``stop`` problems (all by default)."""
        return TileOperator(self.psf[:stop])

    def channel_images(self, estimate: torch.Tensor) -> torch.Tensor:
        """The images an estimate stands for: itself (one channel per problem)."""
        return estimate

    @property
    def per_channel(self) -> ProblemBatch:
        """The batch as scored: itself."""
        return self


@lru_cache(maxsize=16)
def _layout_cached(name: str):  # noqa: ANN202 - small private cache
    return load_layout(name)


def sampling_psf(
    u_lambda: np.ndarray,
    v_lambda: np.ndarray,
    tile: int,
    cell_rad: float,
    weighting: str,
    robust: float = 0.0,
) -> np.ndarray:
    """PSF of uv points binned onto the ``2t x 2t`` grid of a tile.

    Parameters
    ----------
    u_lambda, v_lambda : numpy.ndarray
        uv coordinates in wavelengths (one Hermitian half; the other is added).
    tile : int
        Tile side ``t``.
    cell_rad : float
        Pixel size, radians.
    weighting : str
        ``natural``, ``uniform`` or ``briggs``.
    robust : float
        Briggs robustness.

    Returns
    -------
    numpy.ndarray
        ``(2t, 2t)`` PSF with peak 1 at pixel ``(t, t)`` (FITS order ``[y, x]``).
    """
    n = 2 * tile
    du = 1.0 / (n * cell_rad)
    # FITS x grows with -l, so its conjugate axis is -u; y with +m, conjugate +v
    iu = np.rint(np.concatenate([-u_lambda, u_lambda]) / du).astype(np.int64)
    iv = np.rint(np.concatenate([v_lambda, -v_lambda]) / du).astype(np.int64)
    keep = (np.abs(iu) < tile) & (np.abs(iv) < tile)
    flat = (iv[keep] % n) * n + (iu[keep] % n)
    counts = np.bincount(flat, minlength=n * n).astype(np.float64)  # natural weights per cell
    if weighting == "uniform":
        grid = (counts > 0).astype(np.float64)
    elif weighting == "briggs":
        grid = counts * briggs_factors(counts, counts.sum(), robust)
    else:
        grid = counts
    grid = grid.reshape(n, n)
    psf = np.fft.fftshift(np.fft.ifft2(grid).real)
    return psf / psf[tile, tile]


def _gaussian_blob(shape: tuple[int, int], rng: np.random.Generator, fwhm_pix: float) -> np.ndarray:
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    cx, cy = rng.uniform(0.1, 0.9) * nx, rng.uniform(0.1, 0.9) * ny
    sa = fwhm_to_sigma(fwhm_pix)
    sb = sa * rng.uniform(0.3, 1.0)
    th = rng.uniform(0, np.pi)
    dx, dy = xx - cx, yy - cy
    a = dx * np.cos(th) + dy * np.sin(th)
    b = -dx * np.sin(th) + dy * np.cos(th)
    return np.exp(-0.5 * ((a / sa) ** 2 + (b / sb) ** 2))


def _irregular_emission(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    ny, nx = shape
    noise = rng.normal(size=shape)
    ky = np.fft.fftfreq(ny)[:, None]
    kx = np.fft.fftfreq(nx)[None, :]
    scale = rng.uniform(0.03, 0.12)
    field = np.fft.ifft2(np.fft.fft2(noise) * np.exp(-0.5 * (kx**2 + ky**2) / scale**2)).real
    field = (field - field.mean()) / (field.std() + 1e-12)
    emission = np.exp(rng.uniform(0.5, 1.5) * field)
    return emission * (field > rng.uniform(0.0, 1.5)) * _gaussian_blob(shape, rng, 0.6 * nx)


def random_tile_sky(rng: np.random.Generator, tile: int, beam_pix: float) -> np.ndarray:
    """A tile of sky, brightest pixel 1: heavy-tailed points, Gaussians, irregular emission.

    Parameters
    ----------
    rng : numpy.random.Generator
    tile : int
        Side in pixels.
    beam_pix : float
        Synthesised-beam FWHM in pixels, to size the extended components.

    Returns
    -------
    numpy.ndarray
        ``(t, t)`` non-negative sky, maximum 1.
    """
    sky = np.zeros((tile, tile))
    n_points = rng.poisson(rng.choice([0.5, 2.0, 8.0, 25.0]))
    if n_points:
        flux = (1 - rng.random(n_points)) ** (-1 / rng.uniform(0.8, 1.6))  # Pareto
        x = rng.integers(0, tile, n_points)
        y = rng.integers(0, tile, n_points)
        np.add.at(sky, (y, x), flux)
    for _ in range(rng.poisson(1.5)):
        amp = 10 ** rng.uniform(-2, 0.5) * max(sky.max(), 1.0)
        sky += amp * _gaussian_blob(sky.shape, rng, beam_pix * rng.uniform(1.5, 8.0))
    if rng.random() < 0.35:
        amp = 10 ** rng.uniform(-2, 0.3) * max(sky.max(), 1.0)
        sky += amp * _irregular_emission(sky.shape, rng)
    if sky.max() <= 0:
        sky[rng.integers(0, tile), rng.integers(0, tile)] = 1.0
    return sky / sky.max()


def _convolved_tile(
    field: np.ndarray, sampling: np.ndarray, inner: tuple[slice, slice]
) -> np.ndarray:
    """``PSF (*) field`` (``sampling`` its ``(2 side)^2`` transfer function), cut to the tile."""
    side = field.shape[0]
    spec = np.fft.fft2(np.pad(field, ((0, side), (0, side))))
    return np.fft.ifft2(sampling * spec).real[:side, :side][inner]


def with_bright_source(rng: np.random.Generator, sky: np.ndarray, ratio: float) -> np.ndarray:
    """A sky with one point source of ``ratio`` times its brightest pixel on a random pixel.

    Parameters
    ----------
    rng : numpy.random.Generator
    sky : numpy.ndarray
        ``(t, t)`` non-negative sky.
    ratio : float
        The new source's flux over ``sky``'s maximum.

    Returns
    -------
    numpy.ndarray
        ``(t, t)`` new sky (``sky`` is left as it was).
    """
    out = sky.copy()
    out[rng.integers(0, sky.shape[0]), rng.integers(0, sky.shape[1])] += ratio * sky.max()
    return out


@dataclass(frozen=True)
class Observation:
    """A random observation's uv coverage and imaging choices (:func:`random_observation`).

    Attributes
    ----------
    uv_m : numpy.ndarray
        ``(nrow, 2)`` baseline u, v, metres.
    freq_hz : float
        Observing frequency, Hz.
    cell_rad : float
        Pixel size, radians: ``1 / (pixels_per_beam * uv_max)`` at ``freq_hz``.
    pixels_per_beam : float
        Pixels across the synthesised beam.
    weighting : str
        ``natural``, ``uniform`` or ``briggs``.
    robust : float
        Briggs robustness.
    """

    uv_m: np.ndarray
    freq_hz: float
    cell_rad: float
    pixels_per_beam: float
    weighting: str
    robust: float

    def psf(self, side: int, freq_hz: float | None = None) -> np.ndarray:
        """``(2 side, 2 side)`` PSF at ``freq_hz`` (default: the observation's)
        (:func:`sampling_psf`)."""
        uv = self.uv_m * (self.freq_hz if freq_hz is None else freq_hz) / SPEED_OF_LIGHT_M_S
        return sampling_psf(uv[:, 0], uv[:, 1], side, self.cell_rad, self.weighting, self.robust)


def random_observation(rng: np.random.Generator, cfg: ProblemConfig) -> Observation:
    """A random observation: layout, declination, track, frequency, cell and weighting."""
    layout = _layout_cached(str(rng.choice(cfg.layouts)))
    _, lat = layout.lon_lat_rad
    dec = float(
        np.clip(np.arcsin(rng.uniform(-0.9, 0.9)), lat - np.deg2rad(80), lat + np.deg2rad(80))
    )
    duration_s = rng.uniform(*cfg.duration_h) * 3600.0
    ha = hour_angles_rad(duration_s, duration_s / rng.integers(12, 48))
    uv_m = uvw_tracks_m(layout, dec, ha).reshape(-1, 3)[:, :2]  # (nrow, 2)
    freq = rng.uniform(*cfg.freq_hz)
    uvmax = np.sqrt((uv_m**2).sum(axis=1)).max() * freq / SPEED_OF_LIGHT_M_S
    k = rng.uniform(*cfg.pixels_per_beam)
    weighting = str(rng.choice(["natural", "uniform", "briggs", "briggs"]))
    robust = rng.uniform(-1.0, 1.0)
    return Observation(uv_m, freq, 1.0 / (k * uvmax), k, weighting, robust)


def make_batch(
    rng: np.random.Generator,
    batch: int,
    cfg: ProblemConfig,
    sky: Callable[[np.random.Generator, int, float], np.ndarray] | None = None,
) -> ProblemBatch:
    """Draw ``batch`` independent problems (float64 tensors on the CPU).

    With ``cfg.context_pix = c > 0`` each problem is simulated on a ``(t + 2c)^2`` field whose
    central ``t^2`` is the tile: the dirty tile is cut from the field's dirty image, the truth
    from the field's sky, and the PSF handed to the RIM is the central ``2t^2`` of the field's.
    ``sky`` draws each sky (``(rng, side, beam_pix)`` to a ``(side, side)`` image of peak 1):
    :func:`random_tile_sky` by default, one kind of sky for a test.
    """
    sky = sky or random_tile_sky
    t, c = cfg.tile, cfg.context_pix
    side = t + 2 * c
    inner = (slice(c, c + t), slice(c, c + t))
    truth, dirty, psfs, sigmas, beams = [], [], [], [], []
    for _ in range(batch):
        obs = random_observation(rng, cfg)
        psf, beam_pix = obs.psf(side), obs.pixels_per_beam  # (2 side, 2 side)
        field = np.zeros((side, side))
        field[inner] = sky(rng, t, beam_pix)
        if c and rng.random() < cfg.context_prob:
            ratio = np.exp(rng.uniform(*np.log(cfg.context_flux)))
            field += ratio * sky(rng, side, beam_pix)
        sampling = np.clip(np.fft.fft2(np.fft.ifftshift(psf)).real, 0.0, None)  # M
        clean = _convolved_tile(field, sampling, inner)  # PSF (*) x, in the tile
        if cfg.bright_prob and rng.random() < cfg.bright_prob:
            snr = np.exp(rng.uniform(*np.log(cfg.bright_snr)))
            sigma = clean.max() / snr
            ratio = np.exp(rng.uniform(*np.log(cfg.bright_ratio)))
            field[inner] = with_bright_source(
                rng, field[inner], min(ratio, cfg.dynamic_range[1] / snr)
            )
            clean = _convolved_tile(field, sampling, inner)
            peak = field[inner].max()
            field, clean, sigma = field / peak, clean / peak, sigma / peak
        else:
            sigma = clean.max() / np.exp(rng.uniform(*np.log(cfg.dynamic_range)))
        shape = (2 * side, 2 * side)
        noise = (rng.normal(size=shape) + 1j * rng.normal(size=shape)) / np.sqrt(2)
        noise_img = np.fft.ifft2(np.sqrt(sampling) * noise, norm="ortho").real[:side, :side]
        noise_img *= sigma / np.sqrt(0.5 * sampling.mean())  # unit variance per pixel -> sigma
        tile_psf = psf[side - t : side + t, side - t : side + t]  # (2t, 2t), peak at (t, t)
        truth.append(field[inner])
        dirty.append(clean + noise_img[inner])
        psfs.append(tile_psf)
        sigmas.append(sigma)
        beams.append(psf_fwhm_pix(tile_psf))
    return ProblemBatch(
        torch.from_numpy(np.stack(truth)),
        torch.from_numpy(np.stack(dirty)),
        torch.from_numpy(np.stack(psfs)),
        torch.tensor(sigmas, dtype=torch.float64),
        torch.tensor(beams, dtype=torch.float64),
    )
