"""Deconvolution masks in the store: a FITS mask put on the image grid (WSClean's -fits-mask).

The store's ``mask`` array (``(channel, y, x)`` uint8, 1 where deconvolution may put flux,
chunked by tile, 1 until written: :class:`skarim.io.store.RunStore`) holds the user's FITS
mask, the same for every channel, and, with ``--auto-mask``, what the RIM's phase found in
each channel (:func:`skarim.deconv.major_cycle.finish_cycle`). :func:`write_fits_mask` puts a
FITS mask on the image grid: a mask of the image's own size and celestial WCS is copied
pixel for pixel; any other is resampled at the nearest mask pixel of each image pixel's
sky position through :mod:`astropy.wcs` (pixels off the mask stay outside), one row of
tiles at a time, so memory follows the tile and the mask, never the image.

As WSClean reads one: the first plane of the file's first two axes (RA, Dec), non-zero and
finite meaning "deconvolve here".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import pixel_to_pixel

from skarim.errors import InputError
from skarim.io.store import RunStore
from skarim.io.wcs import ImageWCS

__all__ = ["read_fits_mask", "write_fits_mask"]


def read_fits_mask(path: Path) -> tuple[np.ndarray, WCS]:
    """The first celestial plane of a FITS mask and its celestial WCS.

    Returns
    -------
    mask, wcs : numpy.ndarray, astropy.wcs.WCS
        ``(ny, nx)`` bool, True where deconvolution may put flux; the plane's 2-D WCS.

    Raises
    ------
    InputError
        If the file cannot be read as FITS, has no image, or its WCS is not celestial.
    """
    try:
        with fits.open(path) as hdus:
            hdu = next((h for h in hdus if h.data is not None and h.data.ndim >= 2), None)
            if hdu is None:
                raise InputError(f"--fits-mask {path}: no image in the file")
            data = np.asarray(hdu.data)
            header = hdu.header
    except OSError as exc:
        raise InputError(f"--fits-mask {path}: cannot read it as FITS ({exc})") from None
    plane = data.reshape(-1, *data.shape[-2:])[0]  # the first plane of any cube, (ny, nx)
    wcs = WCS(header).celestial
    if wcs.naxis != 2:
        raise InputError(f"--fits-mask {path}: its header has no celestial (RA, Dec) WCS")
    return np.isfinite(plane) & (plane != 0), wcs


def write_fits_mask(store: RunStore, path: Path, wcs: ImageWCS) -> float:
    """Put the FITS mask ``path`` on the image grid, into every channel of ``store``'s mask.

    Parameters
    ----------
    store : RunStore
        The run's store.
    path : Path
        The FITS mask.
    wcs : ImageWCS
        The image's geometry.

    Returns
    -------
    float
        Fraction of the image's pixels inside the mask.

    Raises
    ------
    InputError
        If the mask cannot be read, or none of the image's pixels is inside it.
    """
    mask, mask_wcs = read_fits_mask(path)
    image_wcs = wcs.celestial()
    same = mask.shape == (wcs.npix_y, wcs.npix_x) and _same_grid(mask_wcs, image_wcs)
    out = store.array("mask")
    t = store.tile
    inside = 0
    for y0 in range(0, wcs.npix_y, t):
        y1 = min(y0 + t, wcs.npix_y)
        rows = mask[y0:y1] if same else _resample(mask, mask_wcs, image_wcs, y0, y1, wcs.npix_x)
        out[:, y0:y1] = np.broadcast_to(rows.astype(np.uint8), (out.shape[0], *rows.shape))
        inside += int(rows.sum())
    if inside == 0:
        raise InputError(f"--fits-mask {path}: no pixel of the image is inside the mask")
    return inside / (wcs.npix_x * wcs.npix_y)


def _same_grid(a: WCS, b: WCS) -> bool:
    """Whether two celestial WCS put the same pixel at the same sky position (to 1e-3 px)."""
    probe = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])  # three pixels far apart
    xb, yb = pixel_to_pixel(a, b, probe[:, 0], probe[:, 1])
    return a.wcs.ctype[0] == b.wcs.ctype[0] and bool(
        np.allclose(xb, probe[:, 0], atol=1e-3) and np.allclose(yb, probe[:, 1], atol=1e-3)
    )


def _resample(
    mask: np.ndarray, mask_wcs: WCS, image_wcs: WCS, y0: int, y1: int, nx: int
) -> np.ndarray:
    """Rows ``[y0, y1)`` of the image grid, each pixel the nearest mask pixel (False off it)."""
    y, x = np.mgrid[y0:y1, 0:nx]
    mx, my = pixel_to_pixel(image_wcs, mask_wcs, x.astype(float), y.astype(float))
    ix, iy = np.rint(mx), np.rint(my)
    ok = np.isfinite(ix) & np.isfinite(iy)
    ok &= (ix >= 0) & (ix < mask.shape[1]) & (iy >= 0) & (iy < mask.shape[0])
    rows = np.zeros((y1 - y0, nx), dtype=bool)
    rows[ok] = mask[iy[ok].astype(int), ix[ok].astype(int)]
    return rows
