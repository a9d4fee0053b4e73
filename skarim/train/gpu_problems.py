"""Training problems shaped like the pipeline's windows, drawn in batches on the device.

Torch and numpy only (with :mod:`skarim.sim.layouts`, :mod:`skarim.sim.uvcoverage` and
:mod:`skarim.beam`, which need nothing more), so it runs on a bare GPU node.

One problem is a window as the pipeline deconvolves it (:mod:`skarim.deconv.tiles`): a core
of ``core`` pixels and a halo of ``halo`` on each side, ``w = core + 2 halo``, cut from a
field of ``side = w + 2 context`` pixels whose sky beyond the window puts sidelobes into it.
The RIM is given the window's dirty image, its noise and the central ``2w x 2w`` of the
field's PSF; it is scored on the core, the only part the pipeline keeps.

The observation: a shipped layout tracking a source (declination, a track of 6 minutes to 8
hours drawn log-uniformly, so short tracks and snapshots are common, 12-47 integrations), at
one frequency, cell ``1 / (k uv_max)`` for ``k`` pixels per beam. Imaging weights follow
:mod:`skarim.imaging.weighting`: natural; uniform ``1 / W_k``; Briggs ``1 / (1 + W_k f^2)``;
``W_k`` the visibilities in a visibility's cell of the weight grid of an image of
``image_pix`` pixels (cells ``1 / (image_pix cell)`` wide, half plane), the image size drawn
per problem. The weighted visibilities and their conjugates are binned to the nearest cell of
the field's FFT grid (``2 side`` cells or a few more): the sampling ``M`` (PSF peak 1) and the
noise spectrum ``V = sum w^2``. The dirty field is ``PSF (*) sky`` plus
``Re F^-1 (sqrt(V) z)`` scaled to ``sigma`` Jy/beam per pixel, ``sigma`` the window's peak
over a dynamic range drawn log-uniformly. A fraction of the windows hold only noise (their
sky is zero in the window; any sky beyond puts sidelobes of up to 30 sigma into them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from skarim.beam import psf_fwhm_pix
from skarim.deconv.operator import TileOperator
from skarim.sim.uvcoverage import hour_angles_rad
from skarim.train.gpu_sky import Skies, SkyConfig, draw_skies, log_uniform
from skarim.train.gpu_uv import (
    WEIGHTINGS,
    imaging_weights,
    layout_latitude_rad,
    sampling_grids,
    uv_tracks_lambda,
)

__all__ = ["WindowConfig", "WindowProblems", "draw_windows"]


@dataclass(frozen=True)
class WindowConfig:
    """Ranges the window problems are drawn from.

    Attributes
    ----------
    core, halo, context : int
        Window core, halo on each side and sky beyond the window on each side, pixels. The
        defaults are the pipeline's (``GridConfig.tile``, ``DeconvConfig.margin``).
    layouts : tuple of str
        Shipped layouts.
    duration_h : tuple of float
        Track length, hours, drawn log-uniformly.
    integrations : tuple of int
        Number of integrations of a track, ``[low, high)``.
    freq_hz : tuple of float
        Observing frequency, Hz.
    pixels_per_beam : tuple of float
        ``k`` of the cell ``1 / (k uv_max)``.
    image_pix : tuple of int
        Side of the image whose weight grid sets the uniform and Briggs cells, log-uniform.
    weightings : tuple of str
        Drawn with equal chances (repeat one to favour it): natural, uniform, briggs.
    robust : tuple of float
        Briggs robustness.
    dynamic_range : tuple of float
        Window's peak over the noise, drawn log-uniformly.
    empty_prob : float
        Fraction of windows holding only noise.
    empty_sidelobes : tuple of float
        Peak sidelobe over the noise in a noise-only window with sky beyond it, log-uniform.
    context_prob : float
        Fraction of windows with sky beyond them (always for noise-only windows).
    context_flux : tuple of float
        Brightest pixel of the sky beyond over the window's brightest, log-uniform.
    sky : SkyConfig
        Sky components.
    bright_prob : float
        Fraction of windows (not noise-only) given one more point source, anywhere in the
        window, halo included: faint emission near the noise beside a source up to ``1e4``
        times brighter (:class:`skarim.train.problems.ProblemConfig` draws the same).
    bright_ratio : tuple of float
        The bright source's flux over the window's brightest pixel before it, log-uniform
        (at most ``dynamic_range[1] / bright_snr``).
    bright_snr : tuple of float
        In a window given a bright source, its own sky's dirty peak over the noise,
        log-uniform: the noise follows the faint sky, not ``dynamic_range``.
    """

    core: int = 256
    halo: int = 24
    context: int = 32
    layouts: tuple[str, ...] = ("meerkat", "vla.a", "vla.b", "vla.c", "vla.d", "WSRT", "atca_6a")
    duration_h: tuple[float, float] = (0.1, 8.0)
    integrations: tuple[int, int] = (12, 48)
    freq_hz: tuple[float, float] = (0.8e9, 4.0e9)
    pixels_per_beam: tuple[float, float] = (3.0, 6.0)
    image_pix: tuple[int, int] = (1024, 16384)
    weightings: tuple[str, ...] = ("natural", "uniform", "briggs", "briggs")
    robust: tuple[float, float] = (-1.0, 1.0)
    dynamic_range: tuple[float, float] = (3.0, 1e5)
    empty_prob: float = 0.1
    empty_sidelobes: tuple[float, float] = (0.3, 30.0)
    context_prob: float = 0.5
    context_flux: tuple[float, float] = (0.01, 10.0)
    sky: SkyConfig = field(default_factory=SkyConfig)
    bright_prob: float = 0.0
    bright_ratio: tuple[float, float] = (10.0, 1e4)
    bright_snr: tuple[float, float] = (1.0, 300.0)

    @property
    def window(self) -> int:
        """Window side ``core + 2 halo``, pixels."""
        return self.core + 2 * self.halo

    @property
    def side(self) -> int:
        """Field side ``window + 2 context``, pixels."""
        return self.window + 2 * self.context


@dataclass
class WindowProblems:
    """A batch of window problems (float32, on one device).

    Attributes
    ----------
    truth, dirty : torch.Tensor
        ``(b, w, w)`` true sky (Jy/pixel) and dirty window (Jy/beam).
    psf : torch.Tensor
        ``(b, 2w, 2w)`` PSF, peak 1 at ``(w, w)``.
    sigma : torch.Tensor
        ``(b,)`` image noise, Jy/beam.
    beam_fwhm_pix : torch.Tensor
        ``(b,)`` FWHM of the PSF's main lobe (:func:`skarim.beam.psf_fwhm_pix`), pixels.
    quiet : torch.Tensor
        ``(b,)`` bool: the core holds less flux than a point source of ``sigma`` Jy (the
        noise-only windows, and those whose sky lies in the halo or is fainter).
    halo : int
        Halo of the windows, pixels: the core is ``[halo, w - halo)`` on both axes.
    """

    truth: torch.Tensor
    dirty: torch.Tensor
    psf: torch.Tensor
    sigma: torch.Tensor
    beam_fwhm_pix: torch.Tensor
    quiet: torch.Tensor
    halo: int

    @property
    def core(self) -> slice:
        """Slice of the core on either axis of a window."""
        return slice(self.halo, self.truth.shape[-1] - self.halo)

    def to(self, device: torch.device) -> WindowProblems:
        """The batch on ``device``."""
        moved = (self.truth, self.dirty, self.psf, self.sigma, self.beam_fwhm_pix, self.quiet)
        return WindowProblems(*(t.to(device) for t in moved), halo=self.halo)

    def operator(self, stop: int | None = None) -> TileOperator:
        """The operator of the first ``stop`` windows (all by default)."""
        return TileOperator(self.psf[:stop])


@dataclass(frozen=True)
class _Observations:
    """Per-problem observation parameters (numpy, ``(b,)`` unless stated)."""

    layout: np.ndarray  # index into WindowConfig.layouts
    dec_rad: np.ndarray
    hour_angle_rad: np.ndarray  # (b, n_time_max)
    valid: np.ndarray  # (b, n_time_max) bool
    freq_hz: np.ndarray
    pixels_per_beam: np.ndarray
    image_pix: np.ndarray
    weighting: np.ndarray  # index into WEIGHTINGS
    robust: np.ndarray


def _draw_observations(rng: np.random.Generator, b: int, cfg: WindowConfig) -> _Observations:
    layout = rng.integers(0, len(cfg.layouts), b)
    lat = np.array([layout_latitude_rad(cfg.layouts[i]) for i in layout])
    dec = np.clip(np.arcsin(rng.uniform(-0.9, 0.9, b)), lat - np.deg2rad(80), lat + np.deg2rad(80))
    duration_s = log_uniform(rng, cfg.duration_h, b) * 3600.0
    n_time = rng.integers(*cfg.integrations, b)
    ha = np.zeros((b, cfg.integrations[1]))
    for i in range(b):
        ha[i, : n_time[i]] = hour_angles_rad(duration_s[i], duration_s[i] / n_time[i])
    image_pix = np.rint(log_uniform(rng, cfg.image_pix, b)).astype(np.int64)
    weighting = np.array(
        [WEIGHTINGS.index(cfg.weightings[i]) for i in rng.integers(0, len(cfg.weightings), b)]
    )
    return _Observations(
        layout,
        dec,
        ha,
        np.arange(ha.shape[1])[None, :] < n_time[:, None],
        rng.uniform(*cfg.freq_hz, b),
        rng.uniform(*cfg.pixels_per_beam, b),
        image_pix,
        weighting,
        rng.uniform(*cfg.robust, b),
    )


def _fft_size(m: int) -> int:
    """The smallest ``2^i 3^j >= m``: a fast FFT size."""
    sizes = (2**i * 3**j for i in range(m.bit_length() + 1) for j in range(2))
    return min(k for k in sizes if k >= m)


def _beam_fwhm_pix(psf: torch.Tensor) -> torch.Tensor:
    """``(b,)`` :func:`skarim.beam.psf_fwhm_pix` of ``(b, 2w, 2w)`` PSFs, from their centres."""
    w = psf.shape[-1] // 2
    r = min(w, 32)
    crops = psf[:, w - r : w + r, w - r : w + r].double().cpu().numpy()
    return torch.tensor([psf_fwhm_pix(c) for c in crops], dtype=torch.float32, device=psf.device)


def _observation_grids(
    rng: np.random.Generator, b: int, cfg: WindowConfig, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Sampling ``M`` (float32) and noise spectrum ``V`` ``(b, n, n)`` of ``b`` random
    observations (``n`` the FFT size of the field, :func:`_fft_size`), and their pixels per
    beam ``(b,)``."""
    obs = _draw_observations(rng, b, cfg)

    def put(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, device=device)

    names = [cfg.layouts[i] for i in obs.layout]
    prob, u, v = uv_tracks_lambda(
        names, put(obs.dec_rad), put(obs.hour_angle_rad), put(obs.valid), put(obs.freq_hz)
    )
    uv_max = torch.zeros(b, dtype=torch.float64, device=device)
    uv_max.scatter_reduce_(0, prob, torch.hypot(u, v), "amax")
    cell = 1.0 / (put(obs.pixels_per_beam) * uv_max)  # (b,) radians
    weight = imaging_weights(
        prob, u, v, cell, put(obs.image_pix), put(obs.weighting), put(obs.robust)
    )
    sampling, noise_spec = sampling_grids(prob, u, v, weight, cell, _fft_size(2 * cfg.side))
    return sampling.float(), noise_spec, obs.pixels_per_beam


def _window_skies(
    rng: np.random.Generator,
    gen: torch.Generator,
    beam_pix: np.ndarray,
    cfg: WindowConfig,
    device: torch.device,
) -> tuple[Skies, np.ndarray]:
    """Each field's sky (in the window, and beyond it for some), and which windows are empty."""
    b, w, c, side = len(beam_pix), cfg.window, cfg.context, cfg.side
    empty = rng.random(b) < cfg.empty_prob
    sky = draw_skies(rng, gen, beam_pix, side, (c, c + w), cfg.sky, device)
    sky = sky.scaled(torch.as_tensor(~empty, device=device))
    ratio = log_uniform(rng, cfg.context_flux, b)  # brightest beyond over brightest within
    beyond_too = (rng.random(b) < cfg.context_prob) | empty
    ratio = np.where(empty, 1.0, ratio) * beyond_too * (c > 0)
    beyond = draw_skies(rng, gen, beam_pix, side, (0, side), cfg.sky, device)
    keep = torch.ones(b, side, side, device=device)
    keep[torch.as_tensor(empty, device=device), c : c + w, c : c + w] = 0.0
    return sky + beyond.scaled(torch.as_tensor(ratio, device=device)).masked(keep), empty


def _bright_points(
    rng: np.random.Generator, sky: Skies, empty: np.ndarray, snr: np.ndarray, cfg: WindowConfig
) -> Skies:
    """One point per field in its window: ``bright_ratio`` times the window's brightest
    pixel (at most ``dynamic_range[1] / snr``) for a ``bright_prob`` fraction of the windows
    that hold sky, 0 for the others."""
    b, w, c = len(empty), cfg.window, cfg.context
    yx = rng.uniform(c, c + w - 1, (b, 1, 2))
    on_centre = rng.random(b) < cfg.sky.on_centre_prob
    yx[on_centre] = np.rint(yx[on_centre])
    ratio = log_uniform(rng, cfg.bright_ratio, b)
    ratio = np.minimum(ratio, cfg.dynamic_range[1] / snr)
    chosen = (rng.random(b) < cfg.bright_prob) & ~empty
    brightest = sky.truth()[:, c : c + w, c : c + w].amax(dim=(-2, -1))  # (b,)
    flux = torch.as_tensor(ratio * chosen, device=brightest.device) * brightest
    return Skies(
        torch.zeros_like(sky.extended),
        torch.tensor(yx, dtype=torch.float64, device=brightest.device),
        flux[:, None].float(),
    )


def draw_windows(
    rng: np.random.Generator,
    gen: torch.Generator,
    b: int,
    cfg: WindowConfig,
    device: torch.device,
) -> WindowProblems:
    """Draw ``b`` window problems on ``device``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Observations and sky parameters.
    gen : torch.Generator
        Noise and random fields, on ``device``.
    b : int
        Problems.
    cfg : WindowConfig
        Ranges.
    device : torch.device
        Where the problems are made and stay.

    Returns
    -------
    WindowProblems
    """
    w, c = cfg.window, cfg.context
    sampling, noise_spec, beam_pix = _observation_grids(rng, b, cfg, device)  # (b, n, n)
    n = sampling.shape[-1]
    psf = torch.fft.fftshift(torch.fft.ifft2(sampling).real, dim=(-2, -1))  # peak at (n/2, n/2)
    psf = psf[:, n // 2 - w : n // 2 + w, n // 2 - w : n // 2 + w].contiguous()  # (b, 2w, 2w)
    sky, empty = _window_skies(rng, gen, beam_pix, cfg, device)

    inner = (slice(None), slice(c, c + w), slice(c, c + w))
    clean = torch.fft.ifft2(sampling * sky.spectrum(n)).real[inner]  # (b, w, w)
    peak = clean.abs().amax(dim=(-2, -1)).double()  # (b,)
    over = np.where(
        empty, log_uniform(rng, cfg.empty_sidelobes, b), log_uniform(rng, cfg.dynamic_range, b)
    )
    sigma = torch.where(peak > 0, peak / torch.as_tensor(over, device=device), 1.0)  # (b,)
    if cfg.bright_prob:
        snr = log_uniform(rng, cfg.bright_snr, b)
        bright = _bright_points(rng, sky, empty, snr, cfg)
        clean = clean + torch.fft.ifft2(sampling * bright.spectrum(n)).real[inner]
        snr_t = torch.as_tensor(snr, device=device)
        sigma = torch.where(bright.point_flux[:, 0] > 0, peak / snr_t, sigma)
        sky = sky + bright
    z = torch.randn(*sampling.shape, dtype=torch.complex64, generator=gen, device=device)
    noise = torch.fft.ifft2(noise_spec.sqrt().float() * z, norm="ortho").real[inner]
    unit = (0.5 * noise_spec.mean(dim=(-2, -1))).sqrt()  # (b,) noise std before scaling
    truth = sky.truth()[inner].contiguous()  # (b, w, w)
    core = slice(cfg.halo, cfg.halo + cfg.core)
    quiet = truth[:, core, core].sum(dim=(-2, -1)) < sigma  # less than a sigma point in the core
    return WindowProblems(
        truth,
        (clean + noise * (sigma / unit).float()[:, None, None]).contiguous(),
        psf,
        sigma.float(),
        _beam_fwhm_pix(psf),
        quiet,
        cfg.halo,
    )
