"""Sky models for simulation: point sources and elliptical Gaussians with curved power-law
spectra, ``S(f) = S0 (f / f0)^(alpha + beta ln(f / f0))`` (``beta = 0``: a power law).

Numpy only. Components sit at offsets from the phase centre measured in image pixels of
the grid they are rendered on, in FITS order (``x`` grows to the west, i.e. with -l).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skarim.beam import fwhm_to_sigma
from skarim.constants import SPEED_OF_LIGHT_M_S

__all__ = ["SkyModel", "random_sky", "render_sky", "sky_visibilities"]


@dataclass(frozen=True)
class SkyModel:
    """A list of components.

    Attributes
    ----------
    x_pix, y_pix : numpy.ndarray
        ``(ncomp,)`` 0-based FITS pixel positions on the truth grid.
    flux_jy : numpy.ndarray
        ``(ncomp,)`` integrated flux density at ``ref_freq_hz``, Jy.
    spectral_index : numpy.ndarray
        ``(ncomp,)`` alpha in ``S(f) = S0 (f / f0)^(alpha + beta ln(f / f0))``.
    major_pix, minor_pix : numpy.ndarray
        ``(ncomp,)`` Gaussian FWHM in pixels; 0 for a point source.
    pa_rad : numpy.ndarray
        ``(ncomp,)`` position angle of the major axis, east of north, radians.
    ref_freq_hz : float
        Reference frequency ``f0`` of ``flux_jy``, Hz.
    curvature : numpy.ndarray or None
        ``(ncomp,)`` beta, the spectral curvature; None: 0 for every component.
    """

    x_pix: np.ndarray
    y_pix: np.ndarray
    flux_jy: np.ndarray
    spectral_index: np.ndarray
    major_pix: np.ndarray
    minor_pix: np.ndarray
    pa_rad: np.ndarray
    ref_freq_hz: float
    curvature: np.ndarray | None = None

    @property
    def is_point(self) -> np.ndarray:
        """Mask of point components."""
        return self.major_pix <= 0

    def flux_at(self, freq_hz: float) -> np.ndarray:
        """``(ncomp,)`` integrated flux density of every component at ``freq_hz``, Jy."""
        ratio = freq_hz / self.ref_freq_hz
        if self.curvature is None:
            return self.flux_jy * ratio**self.spectral_index
        return self.flux_jy * ratio ** (self.spectral_index + self.curvature * np.log(ratio))

    def log_slope_at(self, freq_hz: float) -> np.ndarray:
        """``(ncomp,)`` spectral index at ``freq_hz``: ``d ln S / d ln f = alpha + 2 beta
        ln(f / f0)``."""
        if self.curvature is None:
            return np.array(self.spectral_index, dtype=float)
        return self.spectral_index + 2.0 * self.curvature * np.log(freq_hz / self.ref_freq_hz)


def random_sky(
    rng: np.random.Generator,
    npix: int,
    ref_freq_hz: float,
    n_points: int = 12,
    n_gaussians: int = 3,
    brightest_jy: float = 1.0,
    dynamic_range: float = 1e3,
    spectral_index_range: tuple[float, float] | None = None,
    curvature_range: tuple[float, float] | None = None,
) -> SkyModel:
    """Draw a sky of heavy-tailed point sources and Gaussians within the inner 80 %.

    Point sources sit on pixel centres, so the truth image holds them exactly. Fluxes follow
    a power law (Pareto, index 1.5) between ``brightest_jy / dynamic_range`` and
    ``brightest_jy``; spectral indices are drawn uniformly over ``spectral_index_range``,
    or normally about -0.7 (sd 0.2) when it is None; curvatures uniformly over
    ``curvature_range``, drawn last and only when it is given (None: power laws, and the
    generator's draws are those of a sky without curvature).
    """
    n = n_points + n_gaussians
    lo, hi = int(0.1 * npix), int(0.9 * npix)
    x = rng.integers(lo, hi, n).astype(float)
    y = rng.integers(lo, hi, n).astype(float)
    fmin = brightest_jy / dynamic_range
    flux = np.minimum(fmin * (1 - rng.random(n)) ** (-1 / 1.5), brightest_jy)
    if n:
        flux[0] = brightest_jy
    major = np.zeros(n)
    minor = np.zeros(n)
    major[n_points:] = rng.uniform(3, 12, n_gaussians)
    minor[n_points:] = major[n_points:] * rng.uniform(0.4, 1.0, n_gaussians)
    pa = rng.uniform(0, np.pi, n)
    if spectral_index_range is None:
        alpha = rng.normal(-0.7, 0.2, n)
    else:
        alpha = rng.uniform(*spectral_index_range, n)
    beta = None if curvature_range is None else rng.uniform(*curvature_range, n)
    return SkyModel(x, y, flux, alpha, major, minor, pa, float(ref_freq_hz), beta)


def render_sky(sky: SkyModel, npix_x: int, npix_y: int, freq_hz: float) -> np.ndarray:
    """Render the sky at one frequency on a pixel grid.

    Returns
    -------
    numpy.ndarray
        ``(npix_y, npix_x)`` float64 image in Jy/pixel, FITS order.
    """
    image = np.zeros((npix_y, npix_x))
    scale = sky.flux_at(freq_hz)
    yy, xx = np.mgrid[0:npix_y, 0:npix_x].astype(float)
    for k in range(len(scale)):
        if sky.major_pix[k] <= 0:
            ix, iy = int(round(sky.x_pix[k])), int(round(sky.y_pix[k]))
            if 0 <= ix < npix_x and 0 <= iy < npix_y:
                image[iy, ix] += scale[k]
            continue
        sa, sb = fwhm_to_sigma(sky.major_pix[k]), fwhm_to_sigma(sky.minor_pix[k])
        # east of north: north is +y, east is -x in FITS order
        dx, dy = -(xx - sky.x_pix[k]), yy - sky.y_pix[k]
        c, s = np.cos(sky.pa_rad[k]), np.sin(sky.pa_rad[k])
        along = dx * s + dy * c
        across = dx * c - dy * s
        g = np.exp(-0.5 * ((along / sa) ** 2 + (across / sb) ** 2))
        image += scale[k] * g / g.sum()
    return image


def sky_visibilities(
    sky: SkyModel,
    uvw_m: np.ndarray,
    freq_hz: np.ndarray,
    npix: int,
    cell_rad: float,
    rows_per_block: int = 4096,
) -> np.ndarray:
    """Visibilities of the sky's components, computed analytically (no image, no gridder).

    A component at FITS pixel ``(x, y)`` of an ``npix x npix`` grid of ``cell_rad`` pixels
    about the phase centre sits at ``l = -(x - npix/2) cell``, ``m = (y - npix/2) cell``;
    its visibility is ``S(f) G(u, v) exp(2 pi i (u l + v m + w (n - 1)))`` (the sign
    convention of WSClean and CASA, as :mod:`skarim.imaging.wgridder`), with ``G = 1`` for
    a point source and, for a Gaussian, the Fourier transform of a unit-flux elliptical
    Gaussian, ``exp(-2 pi^2 (sigma_a^2 u_a^2 + sigma_b^2 u_b^2))`` along its axes. Memory
    is bounded by ``rows_per_block`` rows at a time, whatever the field's size: this is how
    a sky over a field of any size is observed without rendering it.

    Parameters
    ----------
    sky : SkyModel
        The components, positioned on the ``npix``-pixel grid.
    uvw_m : numpy.ndarray
        ``(nrow, 3)`` baselines, metres.
    freq_hz : numpy.ndarray
        ``(nchan,)`` channel frequencies, Hz.
    npix : int
        Side of the grid the components' pixel positions refer to.
    cell_rad : float
        Pixel size of that grid, radians.
    rows_per_block : int
        Rows computed at a time.

    Returns
    -------
    numpy.ndarray
        ``(nrow, nchan)`` complex128 Stokes I visibilities, Jy.
    """
    uvw_m = np.asarray(uvw_m, dtype=np.float64)
    freq_hz = np.asarray(freq_hz, dtype=np.float64)
    l_rad = -(sky.x_pix - npix / 2) * cell_rad  # (ncomp,)
    m_rad = (sky.y_pix - npix / 2) * cell_rad
    n_minus_1 = np.sqrt(1.0 - l_rad**2 - m_rad**2) - 1.0
    sigma_a = fwhm_to_sigma(sky.major_pix) * cell_rad  # (ncomp,) radians; 0 for points
    sigma_b = fwhm_to_sigma(sky.minor_pix) * cell_rad
    sin_pa, cos_pa = np.sin(sky.pa_rad), np.cos(sky.pa_rad)
    out = np.zeros((len(uvw_m), len(freq_hz)), dtype=np.complex128)
    for c, f in enumerate(freq_hz):
        flux = sky.flux_at(f)  # (ncomp,)
        for r0 in range(0, len(uvw_m), rows_per_block):
            u, v, w = (uvw_m[r0 : r0 + rows_per_block] * (f / SPEED_OF_LIGHT_M_S)).T[:, :, None]
            phase = 2 * np.pi * (u * l_rad + v * m_rad + w * n_minus_1)  # (rows, ncomp)
            along = u * sin_pa + v * cos_pa  # wavelengths along the major axis
            across = u * cos_pa - v * sin_pa
            taper = np.exp(-2 * np.pi**2 * ((sigma_a * along) ** 2 + (sigma_b * across) ** 2))
            out[r0 : r0 + rows_per_block, c] = (flux * taper * np.exp(1j * phase)).sum(axis=1)
    return out
