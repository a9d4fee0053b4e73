"""The one place skarim calls ``ducc0.wgridder``; its conventions live here.

Conventions (proved by ``tests/test_wgridder.py`` against a direct DFT and astropy.wcs):

- Visibilities follow the sign convention of WSClean and CASA on Measurement Sets,
  ``V(u, v, w) = sum I(l, m) exp(+2 pi i (u l + v m + w (n - 1)))``, so the dirty image is
  ``sum w V exp(-2 pi i (u l + v m + w (n - 1)))`` (``bench/wsclean_dirty.py`` compares it
  with WSClean's dirty image). ducc0's own kernel is
  ``exp(+2 pi i (u l + v m - w (n - 1)))``, hence ``flip_u=True, flip_v=True``.
- Images are returned in FITS order ``[y, x]``: ``y`` grows with Dec (``m``) and ``x``
  grows to the west (with ``-l``), the phase centre at 0-based pixel ``(nx/2, ny/2)`` of the
  full image, as in WSClean.
- ducc0 works on ``[x(l), y(m)]`` arrays whose pixel ``i`` sits at ``(i - n/2) * cell + centre``;
  a FITS-order block is that array transposed and flipped along ``x``, and
  :func:`block_centre_rad` gives the ``center_x``/``center_y`` that put it in place.
- With ``flip_u``/``flip_v`` ducc0 measures ``center_x``/``center_y`` in the flipped frame, so
  the offsets handed to it are the negated ones of :func:`block_centre_rad`.
- ``divide_by_n=False``: a point source of S Jy gives a dirty peak of S Jy/beam anywhere in
  the field, and prediction is the exact adjoint of imaging.
- The horizon: pixels with ``l^2 + m^2 >= 1`` (:func:`skarim.io.wcs.beyond_horizon`) have no
  sky. Imaging returns 0 there and prediction ignores them, so that the pair stays exact
  adjoints on the visible sky and no deconvolver sees the values ducc0 computes there.
"""

from __future__ import annotations

from dataclasses import dataclass

import ducc0.wgridder as _wg
import numpy as np

from skarim.io.wcs import beyond_horizon

__all__ = ["Block", "CONVENTIONS", "block_centre_rad", "vis_to_image", "image_to_vis"]

CONVENTIONS = {
    "library": "ducc0.wgridder",
    "flip_u": True,
    "flip_v": True,
    "flip_w": False,
    "divide_by_n": False,
    "image_order": "fits [y, x]; x flipped relative to ducc0's l axis",
    "phase_centre_pixel": "(npix_x/2, npix_y/2), 0-based",
    "horizon": "pixels with l^2 + m^2 >= 1 are 0 in images and ignored in prediction",
}


@dataclass(frozen=True)
class Block:
    """A rectangular block of the full image in FITS order, ``[y0:y0+ny, x0:x0+nx]``.

    Attributes
    ----------
    npix_x, npix_y : int
        Size of the full image.
    x0, y0 : int
        0-based FITS pixel of the block's first column and row.
    nx, ny : int
        Block size in pixels (even, at least 32).
    cell_rad : float
        Pixel size, radians.
    """

    def beyond_horizon(self) -> np.ndarray | None:
        """``(ny, nx)`` bool, True where ``l^2 + m^2 >= 1``; None when no pixel is."""
        rows, cols = (self.y0, self.y0 + self.ny), (self.x0, self.x0 + self.nx)
        return beyond_horizon(self.npix_x, self.npix_y, self.cell_rad, rows, cols)

    npix_x: int
    npix_y: int
    x0: int
    y0: int
    nx: int
    ny: int
    cell_rad: float

    @classmethod
    def full(cls, npix_x: int, npix_y: int, cell_rad: float) -> Block:
        """The whole image as one block."""
        return cls(npix_x, npix_y, 0, 0, npix_x, npix_y, cell_rad)

    @classmethod
    def centred(cls, n: int, cell_rad: float) -> Block:
        """An ``n x n`` block centred on the phase centre (the PSF's)."""
        return cls(n, n, 0, 0, n, n, cell_rad)


def block_centre_rad(block: Block) -> tuple[float, float]:
    """ducc0 ``center_x``, ``center_y`` (radians) of a FITS-order block.

    FITS pixel ``j`` of the full image sits at ``l = -(j - npix_x/2) cell`` and
    ``m = (j - npix_y/2) cell``; ducc0 pixel ``i`` of an ``n``-pixel block at
    ``(i - n/2) cell + centre``, with ``i = x0 + nx - 1 - j`` along x.
    """
    cx = (block.npix_x / 2 - block.x0 - block.nx / 2 + 1) * block.cell_rad
    cy = (block.y0 + block.ny / 2 - block.npix_y / 2) * block.cell_rad
    return cx, cy


def _conventions(
    uvw_m: np.ndarray, freq_hz: np.ndarray, block: Block, epsilon: float, nthreads: int
) -> dict:
    """Keyword arguments shared by both directions: coordinates, geometry, conventions."""
    cx, cy = block_centre_rad(block)
    return {
        "uvw": np.ascontiguousarray(uvw_m, dtype=np.float64),
        "freq": np.ascontiguousarray(freq_hz, dtype=np.float64),
        "pixsize_x": block.cell_rad,
        "pixsize_y": block.cell_rad,
        "center_x": -cx,  # ducc0 takes the centre in its flipped (u, v) frame
        "center_y": -cy,
        "epsilon": epsilon,
        "do_wgridding": True,
        "flip_u": CONVENTIONS["flip_u"],
        "flip_v": CONVENTIONS["flip_v"],
        "flip_w": CONVENTIONS["flip_w"],
        "divide_by_n": CONVENTIONS["divide_by_n"],
        "nthreads": nthreads,
    }


def vis_to_image(
    *,
    uvw_m: np.ndarray,
    freq_hz: np.ndarray,
    vis: np.ndarray,
    weight: np.ndarray,
    block: Block,
    epsilon: float,
    nthreads: int = 1,
) -> np.ndarray:
    """Weighted sum of visibilities onto a block (unnormalised dirty image).

    Parameters
    ----------
    uvw_m : numpy.ndarray
        ``(nrow, 3)`` float64 UVW in metres.
    freq_hz : numpy.ndarray
        ``(nchan,)`` float64 channel frequencies.
    vis : numpy.ndarray
        ``(nrow, nchan)`` complex64 or complex128; the precision of the computation.
    weight : numpy.ndarray
        ``(nrow, nchan)`` imaging weights (0 drops a visibility).
    block : Block
        Where the image goes.
    epsilon : float
        ducc0 accuracy.
    nthreads : int
        ducc0 threads.

    Returns
    -------
    numpy.ndarray
        ``(block.ny, block.nx)`` image, FITS order, ``sum_k w_k Re(V_k e^{-2 pi i phi_k})``;
        0 beyond the horizon.
    """
    real = np.float64 if vis.dtype == np.complex128 else np.float32
    out = _wg.vis2dirty(
        vis=np.ascontiguousarray(vis),
        wgt=np.ascontiguousarray(weight, dtype=real),
        npix_x=block.nx,
        npix_y=block.ny,
        **_conventions(uvw_m, freq_hz, block, epsilon, nthreads),
    )  # (nx, ny) in ducc0's [l, m] order
    image = np.ascontiguousarray(out.T[:, ::-1])  # (ny, nx) FITS order
    horizon = block.beyond_horizon()
    if horizon is not None:
        image[horizon] = 0.0
    return image


def image_to_vis(
    *,
    uvw_m: np.ndarray,
    freq_hz: np.ndarray,
    image: np.ndarray,
    block: Block,
    epsilon: float,
    nthreads: int = 1,
) -> np.ndarray:
    """Predict the visibilities of a model block (exact adjoint of :func:`vis_to_image`).

    Parameters
    ----------
    image : numpy.ndarray
        ``(block.ny, block.nx)`` model in Jy/pixel, FITS order; float32 or float64 sets
        the precision. Pixels beyond the horizon are ignored.

    Returns
    -------
    numpy.ndarray
        ``(nrow, nchan)`` complex visibilities in Jy.
    """
    horizon = block.beyond_horizon()
    if horizon is not None:
        image = np.where(horizon, 0.0, image).astype(image.dtype, copy=False)
    ducc_order = np.ascontiguousarray(image[:, ::-1].T)  # (nx, ny)
    return _wg.dirty2vis(dirty=ducc_order, **_conventions(uvw_m, freq_hz, block, epsilon, nthreads))
