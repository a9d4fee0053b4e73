"""Restore: the clean beam fitted to the PSF, and ``model (*) beam + residual``.

The beam is an elliptical Gaussian fitted by least squares to the logarithm of the PSF's
main lobe (the connected region above 35 % of the peak around the centre, as CASA and
WSClean fit it). Position angles are east of north, in degrees, in ``[0, 180)``.
"""

from __future__ import annotations

import numpy as np

from skarim.write import Beam

__all__ = ["fit_beam", "common_beam", "beam_kernel", "restore_channel"]

_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def _main_lobe(psf: np.ndarray, threshold: float) -> np.ndarray:
    """Mask of the connected region above ``threshold`` containing the centre pixel."""
    ny, nx = psf.shape
    cy, cx = ny // 2, nx // 2
    above = psf >= threshold * psf[cy, cx]
    mask = np.zeros_like(above)
    stack = [(cy, cx)]
    while stack:
        y, x = stack.pop()
        if 0 <= y < ny and 0 <= x < nx and above[y, x] and not mask[y, x]:
            mask[y, x] = True
            stack.extend(((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)))
    return mask


def fit_beam(psf: np.ndarray, cell_rad: float, threshold: float = 0.35) -> Beam:
    """Fit the clean beam to a PSF.

    Parameters
    ----------
    psf : numpy.ndarray
        ``(2t, 2t)`` PSF in FITS order, peak 1 at ``(t, t)``.
    cell_rad : float
        Pixel size, radians.
    threshold : float
        Fraction of the peak bounding the main lobe.

    Returns
    -------
    Beam
        FWHM major and minor axes and position angle (east of north), degrees.
    """
    ny, nx = psf.shape
    cy, cx = ny // 2, nx // 2
    cell_deg = np.degrees(cell_rad)
    mask = _main_lobe(psf, threshold)
    if np.count_nonzero(mask) < 6:  # an unresolved lobe: fit the 3x3 pixels around the peak
        mask[cy - 1 : cy + 2, cx - 1 : cx + 2] = psf[cy - 1 : cy + 2, cx - 1 : cx + 2] > 0
    yy, xx = np.nonzero(mask)
    east = -(xx - cx).astype(float)  # FITS x grows to the west
    north = (yy - cy).astype(float)
    val = np.log(np.clip(psf[yy, xx] / psf[cy, cx], 1e-6, None))
    # -log psf = q_ee e^2 + 2 q_en e n + q_nn n^2  (least squares, weighted towards the peak)
    design = np.stack([east**2, 2 * east * north, north**2], axis=1)
    weight = psf[yy, xx]
    coef, *_ = np.linalg.lstsq(design * weight[:, None], -val * weight, rcond=None)
    q = np.array([[coef[0], coef[1]], [coef[1], coef[2]]])
    qvals, qvecs = np.linalg.eigh(q)
    if qvals[0] <= 0:  # not a peak in some direction: a circular beam of the lobe's area
        fwhm = np.sqrt(4.0 * np.count_nonzero(mask) / np.pi) * cell_deg
        return Beam(major_deg=float(fwhm), minor_deg=float(fwhm), pa_deg=0.0)
    # covariance of the Gaussian = (2 q)^-1: its major axis is q's smallest eigenvalue
    major_vec = qvecs[:, 0]
    pa = np.degrees(np.arctan2(major_vec[0], major_vec[1])) % 180.0
    sigma_major, sigma_minor = np.sqrt(0.5 / qvals[0]), np.sqrt(0.5 / qvals[1])
    return Beam(
        major_deg=float(_FWHM_PER_SIGMA * sigma_major * cell_deg),
        minor_deg=float(_FWHM_PER_SIGMA * sigma_minor * cell_deg),
        pa_deg=float(pa),
    )


def common_beam(beams: list[Beam]) -> Beam:
    """A beam for the whole cube: the channel beam of the largest area (CASA's simple choice)."""
    return max(beams, key=lambda b: b.major_deg * b.minor_deg)


def beam_kernel(beam: Beam, cell_rad: float, shape: tuple[int, int]) -> np.ndarray:
    """The beam as an image of peak 1 centred at ``(ny/2, nx/2)``, FITS order."""
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    east = -(xx - nx // 2).astype(float)
    north = (yy - ny // 2).astype(float)
    cell_deg = np.degrees(cell_rad)
    sa = beam.major_deg / cell_deg / _FWHM_PER_SIGMA
    sb = beam.minor_deg / cell_deg / _FWHM_PER_SIGMA
    pa = np.radians(beam.pa_deg)
    along = east * np.sin(pa) + north * np.cos(pa)
    across = east * np.cos(pa) - north * np.sin(pa)
    return np.exp(-0.5 * ((along / sa) ** 2 + (across / sb) ** 2))


def restore_channel(
    model: np.ndarray, residual: np.ndarray, beam: Beam, cell_rad: float
) -> np.ndarray:
    """``model (*) beam + residual`` in Jy/beam for one channel ``(ny, nx)``."""
    ny, nx = model.shape
    kernel = beam_kernel(beam, cell_rad, (2 * ny, 2 * nx))  # (2ny, 2nx), centre (ny, nx)
    spec = np.fft.rfft2(np.fft.ifftshift(kernel)) * np.fft.rfft2(model, s=(2 * ny, 2 * nx))
    smooth = np.fft.irfft2(spec, s=(2 * ny, 2 * nx))[:ny, :nx]
    return (smooth + residual).astype(np.float32)
