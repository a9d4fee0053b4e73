"""Simulated joined-channel problems for training the spectral-term RIM on the CPU.

One problem is a ``t x t`` tile seen in ``C`` channels spread over a fractional bandwidth
around the observation's frequency (:func:`skarim.train.problems.random_observation`): each
channel has its own PSF (the same baselines at its own frequency, weighted on its own, as
WSClean weights each output channel), its own noise and its own weight, and some channels of
the band are gone (flagged, so the channels left may have gaps). The sky is a tile of
:func:`skarim.train.problems.random_tile_sky` at the reference frequency with a spectral index
map (smooth on the scale of a few beams, so that neighbouring components share a spectrum and
distant ones differ) and a curvature: ``x_c = S (f_c / f_0)^(alpha + beta ln(f_c / f_0))``.

The channels' weights ``w_c`` are their sums of imaging weights in the pipeline; the noise of
channel ``c`` is ``sigma sqrt(sum w / w_c)``, so that the weighted mean (MFS) image has the
noise ``sigma`` the RIM is told. The RIM sees the back-projected terms
(:meth:`skarim.deconv.spectral_operator.SpectralOperator.terms_of`) of the channels' dirty
tiles; it is scored on the channels' images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from skarim.beam import psf_fwhm_pix
from skarim.deconv.spectral import spectral_basis
from skarim.deconv.spectral_operator import SpectralOperator
from skarim.train.problems import (
    ProblemBatch,
    ProblemConfig,
    random_observation,
    random_tile_sky,
)

__all__ = ["SpectralConfig", "SpectralBatch", "make_spectral_batch"]


@dataclass(frozen=True)
class SpectralConfig:
    """Ranges of the joined-channel problems (:func:`make_spectral_batch`).

    Attributes
    ----------
    terms : int
        Spectral terms ``K`` of the RIM (``--fit-spectral-pol K``).
    channels : tuple of int
        Channels of a batch, drawn uniformly from this inclusive range, before flagging.
    bandwidth_frac : tuple of float
        Band's full width over its centre frequency.
    alpha : tuple of float
        Spectral index range.
    curvature : tuple of float
        Range of ``beta``, the coefficient of ``ln(f / f_0)^2`` in ``ln S``.
    flagged_frac : float
        Largest fraction of a problem's channels flagged (never below ``terms`` or two left).
    weight_spread : float
        Channel weights are drawn log-uniformly within this factor of one another.
    """

    terms: int = 2
    channels: tuple[int, int] = (2, 16)
    bandwidth_frac: tuple[float, float] = (0.1, 0.6)
    alpha: tuple[float, float] = (-2.0, 1.0)
    curvature: tuple[float, float] = (-0.5, 0.5)
    flagged_frac: float = 0.25
    weight_spread: float = 3.0


@dataclass
class SpectralBatch:
    """A batch of joined-channel problems, as tensors.

    Attributes
    ----------
    dirty : torch.Tensor
        ``(b, K, t, t)`` back-projected terms of the channels' dirty tiles: what the RIM sees.
    sigma : torch.Tensor
        ``(b,)`` noise of the MFS image, Jy/beam.
    channel_truth, channel_dirty : torch.Tensor
        ``(b, C, t, t)`` true sky (Jy/pixel) and dirty tile (Jy/beam) of each channel.
    psf : torch.Tensor
        ``(b, C, 2t, 2t)`` the channels' PSFs, peak 1 at ``(t, t)``.
    weight : torch.Tensor
        ``(b, C)`` channel weights, summing to 1.
    basis : torch.Tensor
        ``(b, K, C)`` spectral basis (:func:`skarim.deconv.spectral.spectral_basis`).
    channel_sigma, beam_fwhm_pix : torch.Tensor
        ``(b, C)`` each channel's noise (Jy/beam) and synthesised-beam FWHM (pixels).
    """

    dirty: torch.Tensor
    sigma: torch.Tensor
    channel_truth: torch.Tensor
    channel_dirty: torch.Tensor
    psf: torch.Tensor
    weight: torch.Tensor
    basis: torch.Tensor
    channel_sigma: torch.Tensor
    beam_fwhm_pix: torch.Tensor

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> SpectralBatch:
        """Every tensor on a device and dtype."""
        return SpectralBatch(
            *(getattr(self, f).to(device=device, dtype=dtype) for f in self.__dataclass_fields__)
        )

    def operator(self, stop: int | None = None) -> SpectralOperator:
        """The joined operator of the first ``stop`` problems (all by default)."""
        sl = slice(stop)
        return SpectralOperator(self.psf[sl], self.weight[sl], self.basis[sl])

    def channel_images(self, estimate: torch.Tensor) -> torch.Tensor:
        """The channels' images of a ``(b, K, t, t)`` estimate, ``(b C, t, t)``."""
        return self.operator().images(estimate).flatten(0, 1)

    @property
    def per_channel(self) -> ProblemBatch:
        """Every channel of every problem as a one-channel problem: what is scored."""
        return ProblemBatch(
            self.channel_truth.flatten(0, 1),
            self.channel_dirty.flatten(0, 1),
            self.psf.flatten(0, 1),
            self.channel_sigma.flatten(),
            self.beam_fwhm_pix.flatten(),
        )


def _smooth_field(rng: np.random.Generator, tile: int, scale_pix: float) -> np.ndarray:
    """``(t, t)`` Gaussian random field of correlation length ``scale_pix``, values in [0, 1]."""
    ky = np.fft.fftfreq(tile)[:, None]
    kx = np.fft.fftfreq(tile)[None, :]
    spectrum = np.exp(-2 * (np.pi * scale_pix) ** 2 * (kx**2 + ky**2))
    noise = rng.normal(size=(tile, tile)) + 1j * rng.normal(size=(tile, tile))
    field = np.fft.ifft2(noise * spectrum).real
    span = field.max() - field.min()
    return (field - field.min()) / span if span > 0 else np.full_like(field, 0.5)


def make_spectral_batch(
    rng: np.random.Generator, batch: int, problems: ProblemConfig, spectral: SpectralConfig
) -> SpectralBatch:
    """Draw ``batch`` joined-channel problems (float64 tensors on the CPU).

    Every problem of a batch has the same number of channels (drawn once per batch, then
    the same count flagged in each), so that the batch stacks.
    """
    t = problems.tile
    low = max(spectral.channels[0], spectral.terms, 2)
    n = int(rng.integers(low, max(spectral.channels[1], low) + 1))
    flagged = int(rng.integers(0, int(spectral.flagged_frac * n) + 1))
    kept = max(n - flagged, spectral.terms, 2)
    rows: dict[str, list[np.ndarray]] = {k: [] for k in SpectralBatch.__dataclass_fields__}
    for _ in range(batch):
        obs = random_observation(rng, problems)
        width = rng.uniform(*spectral.bandwidth_frac)
        band = obs.freq_hz * (1 + width * (np.arange(n) / (n - 1) - 0.5))  # (n,)
        freq = np.sort(band[rng.permutation(n)[:kept]])  # (C,)
        w = np.exp(rng.uniform(0, np.log(spectral.weight_spread), kept))  # (C,)
        a = w / w.sum()
        psfs = np.stack([obs.psf(t, f) for f in freq])  # (C, 2t, 2t)
        sky = random_tile_sky(rng, t, obs.pixels_per_beam)  # (t, t), at obs.freq_hz
        lo, hi = spectral.alpha
        alpha = lo + (hi - lo) * _smooth_field(rng, t, 3 * obs.pixels_per_beam)  # (t, t)
        beta = rng.uniform(*spectral.curvature)
        ln_f = np.log(freq / obs.freq_hz)[:, None, None]  # (C, 1, 1)
        truth = sky[None] * np.exp((alpha[None] + beta * ln_f) * ln_f)  # (C, t, t)
        sampling = np.clip(np.fft.fft2(np.fft.ifftshift(psfs, axes=(-2, -1))).real, 0.0, None)
        spec = np.fft.fft2(np.pad(truth, ((0, 0), (0, t), (0, t))))
        clean = np.fft.ifft2(sampling * spec).real[:, :t, :t]  # (C, t, t) PSF_c (*) x_c
        mfs_clean = np.tensordot(a, clean, axes=1)  # (t, t)
        sigma = max(mfs_clean.max(), 1e-12) / np.exp(rng.uniform(*np.log(problems.dynamic_range)))
        sigma_c = sigma * np.sqrt(1 / a)  # (C,)
        shape = sampling.shape
        noise = (rng.normal(size=shape) + 1j * rng.normal(size=shape)) / np.sqrt(2)
        noise_img = np.fft.ifft2(np.sqrt(sampling) * noise, norm="ortho").real[:, :t, :t]
        noise_img *= (sigma_c / np.sqrt(0.5 * sampling.mean(axis=(-2, -1))))[:, None, None]
        basis = spectral_basis(freq, w, spectral.terms)  # (K, C)
        dirty = clean + noise_img
        rows["dirty"].append(np.einsum("kc,c,cyx->kyx", basis, a, dirty))
        rows["sigma"].append(np.array(sigma))
        rows["channel_truth"].append(truth)
        rows["channel_dirty"].append(dirty)
        rows["psf"].append(psfs)
        rows["weight"].append(a)
        rows["basis"].append(basis)
        rows["channel_sigma"].append(sigma_c)
        rows["beam_fwhm_pix"].append(np.array([psf_fwhm_pix(p) for p in psfs]))
    return SpectralBatch(**{k: torch.from_numpy(np.stack(v)) for k, v in rows.items()})
