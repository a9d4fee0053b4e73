"""Image-quality scores against a known truth (numpy only).

SNR in dB, ``10 log10(||truth||^2 / ||estimate - truth||^2)``, raw and after smoothing both
images with a common Gaussian beam, as the benchmark and the RIM's validation report it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["snr_db", "smooth_gaussian", "smoothed_snr_db", "psf_fwhm_pix"]

_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def snr_db(estimate: np.ndarray, truth: np.ndarray) -> float:
    """SNR of an estimate against the truth, dB (``inf`` for a perfect estimate).

    A zero estimate scores exactly 0 dB.
    """
    err = float(np.sum((np.asarray(estimate, float) - truth) ** 2))
    sig = float(np.sum(np.asarray(truth, float) ** 2))
    if err == 0.0:
        return float("inf")
    return 10.0 * np.log10(sig / err)


def smooth_gaussian(image: np.ndarray, fwhm_pix: float) -> np.ndarray:
    """Convolve the last two axes with a circular Gaussian of unit integral (FFT, zero-padded).

    Parameters
    ----------
    image : numpy.ndarray
        ``(..., ny, nx)`` image.
    fwhm_pix : float
        Beam FWHM in pixels.
    """
    ny, nx = image.shape[-2:]
    py, px = 2 * ny, 2 * nx
    ky = np.fft.fftfreq(py)[:, None]
    kx = np.fft.rfftfreq(px)[None, :]
    s = fwhm_pix * _FWHM_TO_SIGMA
    kernel = np.exp(-2.0 * np.pi**2 * s**2 * (kx**2 + ky**2))  # FT of a unit-integral Gaussian
    spec = np.fft.rfft2(image, s=(py, px)) * kernel
    return np.fft.irfft2(spec, s=(py, px))[..., :ny, :nx]


def smoothed_snr_db(estimate: np.ndarray, truth: np.ndarray, fwhm_pix: float) -> float:
    """SNR after smoothing estimate and truth with the same Gaussian beam, dB."""
    return snr_db(smooth_gaussian(estimate, fwhm_pix), smooth_gaussian(truth, fwhm_pix))


def psf_fwhm_pix(psf: np.ndarray) -> float:
    """Geometric-mean FWHM of a PSF's main lobe, pixels (from the area above half maximum).

    Parameters
    ----------
    psf : numpy.ndarray
        ``(ny, nx)`` PSF with its peak at ``(ny/2, nx/2)``.
    """
    ny, nx = psf.shape
    cy, cx = ny // 2, nx // 2
    half = psf >= 0.5 * psf[cy, cx]
    # keep the connected lobe around the centre: walk out along rows/cols of the half mask
    yy, xx = np.mgrid[0:ny, 0:nx]
    r = np.hypot(yy - cy, xx - cx)
    outside = r[~half]
    rmax = outside.min() if outside.size else r.max()
    area = float(np.count_nonzero(half & (r < rmax + 1)))
    # area of an ellipse at half maximum is pi/4 * FWHM_a * FWHM_b
    return float(np.sqrt(4.0 * area / np.pi))
