"""uv selection and taper of the imaging weights, as WSClean 3.x applies them.

``-taper-gaussian``, ``-minuv-l`` and ``-maxuv-l`` act on WSClean's weight grid, not on each
visibility: read in its source (``structures/imageweights.h``/``.cpp`` and the weight cache's
``InitializeWeightTapers``), and checked against WSClean 3.1.0's dirty images and PSFs
(``tests/imaging/test_taper.py``):

- **Order.** After ``FinishGridding`` (the uniform or Briggs factors) and the rank filter,
  ``SetGaussianTaper``, then ``SetMinUVRange``, then ``SetMaxUVRange`` multiply the grid
  cell by cell; a visibility then takes its cell's value. The uniform and Briggs statistics
  and the rank filter's means are those of the untapered grid, every visibility included.
- **Where in the uv plane.** Every operation evaluates the cell's corner ``xyToUV(x, y)``:
  ``u = (x - nx/2) / (nx cell)``, ``v = y / (ny cell)`` wavelengths on the ``v >= 0`` half
  plane of the padded grid (:mod:`skarim.imaging.weighting`), never the visibility's own
  ``(u, v)``; the limits are thus in wavelengths at each channel's own frequency, and a
  visibility is kept or cut with its cell.
- **Gaussian taper.** ``exp(-(u^2 + v^2) / (2 s^2))`` with ``s = 2 sqrt(2 ln 2) / (2 pi
  theta)`` wavelengths for a beam of FWHM ``theta`` radians: the Fourier pair of an
  image-plane Gaussian of FWHM ``theta`` (``-taper-gaussian`` takes the FWHM, arcsec when
  no unit is given).
- **uv range.** A cell with ``u^2 + v^2 < minuv^2`` or ``u^2 + v^2 > maxuv^2`` gets 0; 0
  turns either limit off.
- **Natural weighting** is tapered and cut the same way: its factor 1 is multiplied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from skarim.config import GridConfig

__all__ = ["UVTaper"]


@dataclass(frozen=True)
class UVTaper:
    """The uv taper and range of a run; every field 0 is no taper and no cut.

    Attributes
    ----------
    gaussian_fwhm_rad : float
        Image-plane FWHM of the Gaussian taper, radians (WSClean ``-taper-gaussian``).
    min_uv_lambda, max_uv_lambda : float
        uv distance limits, wavelengths (``-minuv-l``, ``-maxuv-l``).
    """

    gaussian_fwhm_rad: float = 0.0
    min_uv_lambda: float = 0.0
    max_uv_lambda: float = 0.0

    @classmethod
    def from_config(cls, cfg: GridConfig) -> UVTaper:
        """The taper and range of a run's grid configuration."""
        return cls(cfg.taper_gaussian_rad, cfg.min_uv_lambda, cfg.max_uv_lambda)

    @property
    def active(self) -> bool:
        """Whether any factor differs from 1."""
        return bool(self.gaussian_fwhm_rad or self.min_uv_lambda or self.max_uv_lambda)

    def cell_factors(
        self, cell: np.ndarray, grid_npix_x: int, grid_npix_y: int, cell_rad: float
    ) -> np.ndarray:
        """The factor of each cell of a half-plane weight grid.

        Parameters
        ----------
        cell : numpy.ndarray
            ``(ncell,)`` int64 flat indices ``y * grid_npix_x + x`` into the ``(grid_npix_y //
            2, grid_npix_x)`` half plane.
        grid_npix_x, grid_npix_y : int
            The weight grid's size (the padded image).
        cell_rad : float
            Image pixel size, radians.

        Returns
        -------
        numpy.ndarray
            ``(ncell,)`` float64 factors in ``[0, 1]``.
        """
        y, x = np.divmod(np.asarray(cell, dtype=np.int64), grid_npix_x)
        u = (x - grid_npix_x // 2) / (grid_npix_x * cell_rad)  # (ncell,) wavelengths
        v = y / (grid_npix_y * cell_rad)
        dist_sq = u * u + v * v
        out = np.ones(dist_sq.shape)
        if self.gaussian_fwhm_rad:
            sigma_uv = (
                2.0 * math.sqrt(2.0 * math.log(2.0)) / (2.0 * math.pi * self.gaussian_fwhm_rad)
            )
            out *= np.exp(dist_sq / (-2.0 * sigma_uv * sigma_uv))
        if self.min_uv_lambda:
            out[dist_sq < self.min_uv_lambda * self.min_uv_lambda] = 0.0
        if self.max_uv_lambda:
            out[dist_sq > self.max_uv_lambda * self.max_uv_lambda] = 0.0
        return out
