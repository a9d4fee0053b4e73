"""What training optimises: the RIM from cold or warm starts, and the loss on its estimates.

Torch only (with :mod:`skarim.beam`), shared by the CPU trainer (:mod:`skarim.train.trainer`)
and the GPU script (:mod:`skarim.train.gpu`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from skarim.beam import beam_area, fwhm_to_sigma
from skarim.deconv.operator import MeasurementOperator
from skarim.deconv.rim import RIM

if TYPE_CHECKING:
    from skarim.train.gpu_problems import WindowProblems

__all__ = ["faint_loss", "faint_terms", "smooth_images", "warm_starts", "window_loss"]


class _Problems(Protocol):
    dirty: torch.Tensor  # (b, t, t), or (b, K, t, t) spectral terms: what the RIM sees
    sigma: torch.Tensor  # (b,)

    def operator(self, stop: int | None = None) -> MeasurementOperator: ...


def smooth_images(images: torch.Tensor, fwhm_pix: torch.Tensor) -> torch.Tensor:
    """Per-image circular-Gaussian smoothing ``(b, t, t)`` with FWHM ``(b,)`` (FFT, padded)."""
    b, ny, nx = images.shape
    ky = torch.fft.fftfreq(2 * ny, device=images.device, dtype=images.dtype)[:, None]
    kx = torch.fft.rfftfreq(2 * nx, device=images.device, dtype=images.dtype)[None, :]
    sig = fwhm_to_sigma(fwhm_pix).to(images.dtype).reshape(-1, 1, 1)
    kernel = torch.exp(-2 * np.pi**2 * sig**2 * (kx**2 + ky**2))  # (b, 2t, t+1)
    spec = torch.fft.rfft2(images, s=(2 * ny, 2 * nx)) * kernel
    return torch.fft.irfft2(spec, s=(2 * ny, 2 * nx))[:, :ny, :nx]


def faint_loss(
    estimate: torch.Tensor,
    truth: torch.Tensor,
    sigma: torch.Tensor,
    fwhm_pix: torch.Tensor,
    knee_sigma: float = 3.0,
    smoothed: bool = True,
) -> torch.Tensor:
    """Relative error (dB) of images compressed by ``asinh``, per problem.

    Both images are smoothed to the beam and expressed in Jy/beam (a point of ``F`` Jy peaks
    at ``F``), then mapped through ``asinh(image / (knee_sigma * sigma))``: linear up to a few
    times the noise, logarithmic above. A source ten times the noise then weighs about as
    much as one a thousand times brighter, where the SNR terms count only a tile's brightest
    source. With ``smoothed=False`` the images are compressed as they are, in Jy/pixel (a
    point of ``F`` Jy is ``F`` on its pixel): a faint point source spread over its
    neighbours then costs as much as a bright one, which the smoothed form does not see.

    Parameters
    ----------
    estimate, truth : torch.Tensor
        ``(b, t, t)`` images, Jy/pixel.
    sigma : torch.Tensor
        ``(b,)`` image noise, Jy/beam.
    fwhm_pix : torch.Tensor
        ``(b,)`` synthesised-beam FWHM, pixels.
    knee_sigma : float
        Where the compression turns from linear to logarithmic, in noise units.
    smoothed : bool
        Compare beam-smoothed images (Jy/beam), or the images themselves (Jy/pixel).

    Returns
    -------
    torch.Tensor
        ``(b,)`` ``10 log10(|c(x) - c(truth)|^2 / |c(truth)|^2)``.
    """
    knee = (knee_sigma * sigma.to(truth.dtype)).reshape(-1, 1, 1)
    if smoothed:
        per_beam = beam_area(fwhm_pix).to(truth.dtype).reshape(-1, 1, 1)  # Jy/pixel -> Jy/beam
        estimate = smooth_images(estimate, fwhm_pix) * per_beam
        truth = smooth_images(truth, fwhm_pix) * per_beam
    c_est = torch.asinh(estimate / knee)
    c_true = torch.asinh(truth / knee)
    signal = (c_true**2).sum(dim=(-2, -1))
    err = ((c_est - c_true) ** 2).sum(dim=(-2, -1))
    return 10 * torch.log10((err + 1e-12 * signal) / signal)


def faint_terms(
    estimate: torch.Tensor,
    truth: torch.Tensor,
    sigma: torch.Tensor,
    fwhm_pix: torch.Tensor,
    faint_weight: float,
    sharp_weight: float,
) -> torch.Tensor:
    """The weighted :func:`faint_loss` terms of a batch, smoothed and unsmoothed, dB.

    ``faint_weight`` times the mean smoothed form plus ``sharp_weight`` times the mean
    unsmoothed one (``smoothed=False``); a zero weight leaves its term uncomputed.
    """
    total = truth.new_zeros(())
    if faint_weight:
        total = total + faint_weight * faint_loss(estimate, truth, sigma, fwhm_pix).mean()
    if sharp_weight:
        sharp = faint_loss(estimate, truth, sigma, fwhm_pix, smoothed=False)
        total = total + sharp_weight * sharp.mean()
    return total


def warm_starts(model: RIM, problems: _Problems, fraction: float) -> torch.Tensor | None:
    """Starting models: the network's detached estimate for the first ``fraction`` of a batch.

    The second and later major cycles of the pipeline, where the RIM refines a previous
    model; the rest of the batch starts from zero. None when no problem starts warm.
    """
    n = int(round(fraction * problems.dirty.shape[0]))
    if n == 0:
        return None
    x0 = torch.zeros_like(problems.dirty)  # shaped as the RIM's input: cold starts
    with torch.no_grad():
        x0[:n] = model(problems.dirty[:n], problems.sigma[:n], problems.operator(n))[-1]
    return x0


def window_loss(
    estimates: list[torch.Tensor],
    problems: WindowProblems,
    smooth_weight: float = 1.0,
    raw_weight: float = 0.25,
    faint_weight: float = 0.0,
    sharp_weight: float = 0.0,
) -> torch.Tensor:
    """Negative SNR (dB) of the windows' cores against truth, over problems and steps.

    Per problem and estimate ``10 log10((||x - t||^2 + e) / (||t||^2 + e))``, beam-smoothed
    (weight ``smooth_weight``) and raw (``raw_weight``), on the core only. ``e`` is the
    energy of a point source of flux ``sigma`` (smoothed: of its smoothed image), so the loss
    stays scale-free, is the validation SNR for skies well above the noise, and on a window
    holding only noise counts the flux the network invents in units of the noise: 3 dB for
    one invented source of ``sigma`` Jy.

    Parameters
    ----------
    estimates : list of torch.Tensor
        ``(b, w, w)`` estimates, Jy/pixel (every unrolled step is scored).
    problems : WindowProblems
        Truth, noise, beam and core of the windows.
    smooth_weight, raw_weight : float
        Weights of the smoothed and raw terms.
    faint_weight : float
        Weight of :func:`faint_loss` on the cores (0: left out).
    sharp_weight : float
        Weight of :func:`faint_loss` with ``smoothed=False`` on the cores (0: left out).

    Returns
    -------
    torch.Tensor
        Scalar loss, dB.
    """
    core = problems.core
    fwhm = problems.beam_fwhm_pix
    truth = problems.truth[:, core, core]  # (b, c, c)
    truth_s = smooth_images(truth, fwhm)
    floor_raw = problems.sigma**2  # (b,)
    floor_s = floor_raw / (4 * np.pi * fwhm_to_sigma(fwhm) ** 2)
    sig_raw = (truth**2).sum(dim=(-2, -1)) + floor_raw
    sig_s = (truth_s**2).sum(dim=(-2, -1)) + floor_s
    total = truth.new_zeros(())
    for est in estimates:
        x = est[:, core, core]
        err_raw = ((x - truth) ** 2).sum(dim=(-2, -1)) + floor_raw
        err_s = ((smooth_images(x, fwhm) - truth_s) ** 2).sum(dim=(-2, -1)) + floor_s
        total = total + raw_weight * (10 * torch.log10(err_raw / sig_raw)).mean()
        total = total + smooth_weight * (10 * torch.log10(err_s / sig_s)).mean()
        total = total + faint_terms(x, truth, problems.sigma, fwhm, faint_weight, sharp_weight)
    return total / len(estimates)
