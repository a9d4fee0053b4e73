"""Gaussian beams (numpy only): the clean beam, FWHM and sigma, smoothing, a PSF's main lobe.

Two smoothings (:func:`smooth_gaussian`, :func:`smooth_gaussian_truncated`) and two main-lobe
widths (:func:`psf_fwhm_pix`, :func:`main_lobe_fwhm_pix`) sit side by side: each pair gives
different numbers, and each caller keeps the one its results are made with.

The clean beam is fitted as WSClean 3.1 fits it (``schaapcommon``'s
``GaussianFitter::Fit2DGaussianCentred``), so that a skarim image and a WSClean image of one
Measurement Set carry the same beam:

- a unit-peak elliptical Gaussian centred on the PSF's peak is fitted by unweighted least
  squares (Levenberg-Marquardt) to the PSF in a box of ``10 x`` the beam estimate, centred
  on the peak; when the fitted major axis exceeds ``box / 8`` the box is widened to
  ``10 x`` the fitted major axis and the fit repeated (at most 5 fits);
- WSClean computes the pixel offsets of the box in unsigned arithmetic, so every pixel left
  of or below the centre lands at a huge offset where the model is zero, and only the
  quadrant ``x >= 0, y >= 0`` (FITS pixels: west and north of the peak, axes included) shapes
  the fit. skarim fits that quadrant on purpose, to reproduce WSClean's ``BMAJ/BMIN/BPA``
  (``bench/beam_vs_wsclean.py`` compares them), where a fit over the whole box differs on
  PSFs that are not Gaussian. For a Gaussian PSF both fits agree exactly.

WSClean starts from the theoretical beam ``1 / max |uvw|``; skarim starts from the main
lobe's area above half maximum: the same box after WSClean's widening step. A main lobe
narrower than a pixel leaves the fit unconstrained (the cell undersamples the PSF). Position
angles are east of north, in degrees, in ``[0, 180)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from skarim.errors import InputError

__all__ = [
    "FWHM_PER_SIGMA",
    "KERNEL_SIGMAS",
    "Beam",
    "fwhm_to_sigma",
    "sigma_to_fwhm",
    "beam_area",
    "smooth_gaussian",
    "smooth_gaussian_truncated",
    "psf_fwhm_pix",
    "main_lobe_fwhm_pix",
    "fit_beam",
    "common_beam",
    "beam_kernel",
    "kernel_reach_pix",
]

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
"""Full width at half maximum of a Gaussian over its standard deviation, ``2 sqrt(2 ln 2)``."""

#: Reach of :func:`beam_kernel` in standard deviations of the beam's major axis.
KERNEL_SIGMAS = 6.0

_BOX_SCALE = 10.0  # side of the fitting box in beams (WSClean's -beam-fitting-size default)
_MAX_BOX_FITS = 5  # WSClean's limit on widening the box
_MAX_LM_STEPS = 200

_Width = TypeVar("_Width")  # a float, a numpy array or a torch tensor


@dataclass(frozen=True)
class Beam:
    """An elliptical Gaussian beam.

    Attributes
    ----------
    major_deg, minor_deg : float
        Full widths at half maximum of the major and minor axes, degrees
        (``0 < minor_deg <= major_deg``).
    pa_deg : float
        Position angle of the major axis, degrees east of north.
    """

    major_deg: float
    minor_deg: float
    pa_deg: float

    def __post_init__(self) -> None:
        values = (self.major_deg, self.minor_deg, self.pa_deg)
        if not all(math.isfinite(v) for v in values):
            raise InputError(f"beam values must be finite, got {values}")
        if not 0 < self.minor_deg <= self.major_deg:
            raise InputError(
                f"beam needs 0 < minor <= major, got major {self.major_deg} deg, "
                f"minor {self.minor_deg} deg"
            )


def fwhm_to_sigma(fwhm: _Width) -> _Width:
    """Standard deviation of a Gaussian of full width at half maximum ``fwhm`` (same unit)."""
    return fwhm / FWHM_PER_SIGMA


def sigma_to_fwhm(sigma: _Width) -> _Width:
    """Full width at half maximum of a Gaussian of standard deviation ``sigma`` (same unit)."""
    return FWHM_PER_SIGMA * sigma


def kernel_reach_pix(fwhm_pix: float) -> int:
    """Pixels beyond which :func:`beam_kernel` is zero, for a major axis of ``fwhm_pix``."""
    return math.ceil(KERNEL_SIGMAS * fwhm_to_sigma(fwhm_pix))


def beam_area(fwhm: _Width) -> _Width:
    """Integral of a unit-peak circular Gaussian, ``2 pi sigma^2``, in ``fwhm``'s unit squared."""
    return 2 * np.pi * fwhm_to_sigma(fwhm) ** 2


def smooth_gaussian(image: np.ndarray, fwhm_pix: float) -> np.ndarray:
    """Convolve the last two axes with a circular Gaussian of unit integral: the exact transfer
    function on a grid padded to twice the image (FFT), no cut-off.

    Parameters
    ----------
    image : numpy.ndarray
        ``(..., ny, nx)`` image.
    fwhm_pix : float
        Beam FWHM in pixels.

    Returns
    -------
    numpy.ndarray
        ``(..., ny, nx)`` smoothed image, same units as ``image``.
    """
    ny, nx = image.shape[-2:]
    py, px = 2 * ny, 2 * nx
    ky = np.fft.fftfreq(py)[:, None]
    kx = np.fft.rfftfreq(px)[None, :]
    s = fwhm_to_sigma(fwhm_pix)
    kernel = np.exp(-2.0 * np.pi**2 * s**2 * (kx**2 + ky**2))  # FT of a unit-integral Gaussian
    spec = np.fft.rfft2(image, s=(py, px)) * kernel
    return np.fft.irfft2(spec, s=(py, px))[..., :ny, :nx]


def smooth_gaussian_truncated(image: np.ndarray, sigma_pix: float, radius: int) -> np.ndarray:
    """Separable unit-sum Gaussian of ``sigma_pix`` (truncated at ``radius``), zero outside.

    The Gaussian sampled at offsets ``-radius..radius``, normalised to sum 1, is applied along
    each axis as a linear convolution (by FFT, zero outside the image): a block with a halo
    of ``radius`` smooths as the whole image would, to round-off. It differs from
    :func:`smooth_gaussian` by the cut-off and sampling.

    Parameters
    ----------
    image : numpy.ndarray
        ``(ny, nx)`` image.
    sigma_pix : float
        Standard deviation of the Gaussian, pixels.
    radius : int
        Half-width of the kernel, pixels.

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` smoothed image, same units as ``image``.
    """
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma_pix) ** 2)
    kernel /= kernel.sum()
    out = np.asarray(image, dtype=np.float64)
    for axis in (0, 1):
        n = out.shape[axis]
        size = n + 2 * radius  # a linear, not a circular, convolution
        shape = [1, 1]
        shape[axis] = size // 2 + 1
        spectrum = np.fft.rfft(kernel, size).reshape(shape)
        full = np.fft.irfft(np.fft.rfft(out, size, axis=axis) * spectrum, size, axis=axis)
        out = np.take(full, np.arange(radius, radius + n), axis=axis)
    return out


def psf_fwhm_pix(psf: np.ndarray) -> float:
    """Circular FWHM of a PSF's main lobe, pixels, from the half-maximum pixels near its peak.

    The diameter of a disk of the area of the pixels at or above half the peak within
    ``r_min + 1`` of it, ``r_min`` the distance of the nearest pixel below half maximum. An
    elongated lobe is cut to that disk, so on real PSFs this can be well below (by 3/4 on
    some training PSFs) :func:`main_lobe_fwhm_pix`. The smoothing beam of pruning and training.

    Parameters
    ----------
    psf : numpy.ndarray
        ``(ny, nx)`` PSF with its peak at ``(ny/2, nx/2)``.

    Returns
    -------
    float
        FWHM, pixels.
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


def main_lobe_fwhm_pix(psf: np.ndarray) -> float:
    """Circular FWHM of a PSF's main lobe, pixels, from the lobe's whole area above half maximum.

    The lobe is the 4-connected region at or above half the peak that holds the peak; the
    result is the diameter of a disk of its area (the geometric-mean FWHM of an elliptical
    lobe). It starts the beam fit of :func:`fit_beam`; see :func:`psf_fwhm_pix` for the
    other estimate and why they differ.

    Parameters
    ----------
    psf : numpy.ndarray
        ``(ny, nx)`` PSF with its peak at ``(ny/2, nx/2)``, of any normalisation.

    Returns
    -------
    float
        FWHM, pixels.
    """
    return math.sqrt(4.0 * np.count_nonzero(_main_lobe(psf, 0.5)) / math.pi)


def _box_size(beam_pix: float) -> int:
    """WSClean's fitting box: ``max(ceil(scale), ceil(beam * scale))`` rounded up to even."""
    size = max(math.ceil(_BOX_SCALE), math.ceil(beam_pix * _BOX_SCALE))
    return size + size % 2


def _fit_quadrant(quadrant: np.ndarray, sigma0_pix: float) -> np.ndarray:
    """Least-squares fit of ``exp(-(a x^2 + 2 b x y + c y^2))`` to pixels at ``x, y >= 0``.

    Parameters
    ----------
    quadrant : numpy.ndarray
        ``(h, w)`` PSF values at offsets ``y = 0..h-1`` (rows), ``x = 0..w-1`` (columns) from
        the peak, normalised to a peak of 1.
    sigma0_pix : float
        Starting standard deviation of a circular Gaussian, pixels.

    Returns
    -------
    numpy.ndarray
        ``(3,)`` the quadratic form ``(a, b, c)`` in 1/pixel^2.
    """
    h, w = quadrant.shape
    yy, xx = np.mgrid[0:h, 0:w]
    x, y, d = xx.ravel().astype(float), yy.ravel().astype(float), quadrant.ravel()
    basis = np.stack([x * x, 2.0 * x * y, y * y], axis=1)  # (npix, 3)
    p = np.array([0.5 / sigma0_pix**2, 0.0, 0.5 / sigma0_pix**2])

    def cost_of(q: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        # clipped: a trial step off a positive-definite form is rejected, not overflowed
        g = np.exp(-np.clip(basis @ q, -30.0, 700.0))  # (npix,)
        r = g - d
        return g, r, float(r @ r)

    g, r, cost = cost_of(p)
    damping = 1e-3
    for _ in range(_MAX_LM_STEPS):
        jac = -basis * g[:, None]  # (npix, 3): d g / d (a, b, c)
        normal = jac.T @ jac
        # least squares, not solve: an unresolved lobe leaves the Jacobian (near) zero
        step = np.linalg.lstsq(normal + damping * np.diag(np.diag(normal)), -jac.T @ r)[0]
        g_new, r_new, cost_new = cost_of(p + step)
        if cost_new < cost:
            p, g, r, cost = p + step, g_new, r_new, cost_new
            damping = max(damping / 10.0, 1e-12)
            if np.all(np.abs(step) <= 1e-10 * np.abs(p) + 1e-14):
                break
        else:
            damping *= 10.0
            if damping > 1e12:
                break
    return p


def fit_beam(psf: np.ndarray, cell_rad: float) -> Beam:
    """Fit the clean beam to a PSF, as WSClean 3.1 does (see the module docstring).

    Parameters
    ----------
    psf : numpy.ndarray
        ``(ny, nx)`` PSF in FITS order with its peak at ``(ny/2, nx/2)``.
    cell_rad : float
        Pixel size, radians.

    Returns
    -------
    Beam
        FWHM major and minor axes and position angle (east of north), degrees.

    Raises
    ------
    InputError
        If the PSF's centre pixel is not positive (e.g. a channel without data).
    """
    psf = np.asarray(psf, dtype=np.float64)
    ny, nx = psf.shape
    cy, cx = ny // 2, nx // 2
    if not psf[cy, cx] > 0:
        raise InputError(f"cannot fit a beam: the PSF's centre pixel is {psf[cy, cx]}, not > 0")
    psf = psf / psf[cy, cx]
    cell_deg = math.degrees(cell_rad)
    lobe_fwhm_pix = main_lobe_fwhm_pix(psf)
    estimate_pix = lobe_fwhm_pix
    box = _box_size(estimate_pix)
    for _ in range(_MAX_BOX_FITS):
        bw, bh = min(box, nx), min(box, ny)
        # the box spans [c - b/2, c + b/2) about the peak; its quadrant x, y >= 0
        quadrant = psf[cy : cy + bh - bh // 2, cx : cx + bw - bw // 2]  # (rows: north, cols: west)
        sigma0 = fwhm_to_sigma(estimate_pix)
        a, b, c = _fit_quadrant(quadrant, sigma0)
        qvals, qvecs = np.linalg.eigh(np.array([[a, b], [b, c]]))
        if not (np.all(np.isfinite(qvals)) and qvals[0] > 0):
            # no peak in some direction: a circular beam of the main lobe's area
            fwhm_deg = lobe_fwhm_pix * cell_deg
            return Beam(major_deg=fwhm_deg, minor_deg=fwhm_deg, pa_deg=0.0)
        # covariance of the Gaussian = (2 q)^-1: its major axis is q's smallest eigenvalue
        major_pix = sigma_to_fwhm(math.sqrt(0.5 / qvals[0]))
        minor_pix = sigma_to_fwhm(math.sqrt(0.5 / qvals[1]))
        large_enough = (major_pix * _BOX_SCALE * 0.8 < bw or bw >= nx) and (
            major_pix * _BOX_SCALE * 0.8 < bh or bh >= ny
        )
        if large_enough:
            break
        box = _box_size(major_pix)
        estimate_pix = max(major_pix, estimate_pix)
    west, north = qvecs[:, 0]  # the major axis in (x, y) pixels: x grows to the west
    pa_deg = math.degrees(math.atan2(-west, north)) % 180.0
    return Beam(
        major_deg=float(major_pix * cell_deg),
        minor_deg=float(minor_pix * cell_deg),
        pa_deg=float(pa_deg),
    )


def common_beam(beams: list[Beam]) -> Beam:
    """A beam for the whole cube: the channel beam of the largest area (CASA's simple choice)."""
    return max(beams, key=lambda b: b.major_deg * b.minor_deg)


def beam_kernel(beam: Beam, cell_rad: float, shape: tuple[int, int]) -> np.ndarray:
    """The beam as an image of peak 1 centred at ``(ny/2, nx/2)``, FITS order, zero beyond
    :func:`kernel_reach_pix` (the Gaussian there is below 2e-8 of its peak).

    Parameters
    ----------
    beam : Beam
        The beam, degrees.
    cell_rad : float
        Pixel size, radians.
    shape : tuple of int
        ``(ny, nx)`` of the image.

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` float64 kernel, peak 1 (dimensionless).
    """
    ny, nx = shape
    cell_deg = np.degrees(cell_rad)
    sa = fwhm_to_sigma(beam.major_deg / cell_deg)
    sb = fwhm_to_sigma(beam.minor_deg / cell_deg)
    reach = kernel_reach_pix(max(beam.major_deg, beam.minor_deg) / cell_deg)
    ry, rx = min(reach, ny // 2), min(reach, nx // 2)
    y1, x1 = min(ny // 2 + ry + 1, ny), min(nx // 2 + rx + 1, nx)
    north = np.arange(-ry, y1 - ny // 2, dtype=float)[:, np.newaxis]  # (h, 1)
    east = -np.arange(-rx, x1 - nx // 2, dtype=float)[np.newaxis, :]  # (1, w)
    pa = np.radians(beam.pa_deg)
    along = east * np.sin(pa) + north * np.cos(pa)
    across = east * np.cos(pa) - north * np.sin(pa)
    out = np.zeros(shape)
    out[ny // 2 - ry : y1, nx // 2 - rx : x1] = np.exp(
        -0.5 * ((along / sa) ** 2 + (across / sb) ** 2)
    )
    return out
