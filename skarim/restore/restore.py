"""Restoration: ``model (*) clean beam + residual``, in Jy/beam, one band of rows at a time.

The clean beam and its kernel come from :mod:`skarim.beam` (:func:`skarim.beam.fit_beam`,
:func:`skarim.beam.beam_kernel`).

The kernel is zero beyond its reach ``r``, :data:`skarim.beam.KERNEL_SIGMAS` standard
deviations of the beam's major axis (pixels, rounded up), so rows ``y0 .. y1`` of the restored
image need the model's rows ``y0 - r .. y1 + r`` only (the halo, cut to the image). A band is
convolved by FFT, zero-padded to at least ``(rows + 2r, nx + 2r)`` so that the circular
convolution is the linear one: bands give the numbers of the whole plane's convolution to
float round-off, and memory follows ``(band + 2r) x nx``, never the image's height.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import ducc0
import numpy as np

from skarim.beam import Beam, beam_kernel, kernel_reach_pix

__all__ = ["RESTORE_SPAN", "RowReader", "restore_halo", "restore_bands", "restore_channel"]

RowReader = Callable[[int, int], np.ndarray]
"""``rows(y0, y1)``: rows ``y0 .. y1 - 1`` of a plane, ``(y1 - y0, nx)``."""


#: Columns restored by one FFT (plus the beam kernel's halo on each side), so that a band's
#: FFT does not grow with the image's width.
RESTORE_SPAN = 2048


def restore_halo(beam: Beam, cell_rad: float) -> int:
    """Model rows needed on each side of a band: the reach of :func:`skarim.beam.beam_kernel`.

    Parameters
    ----------
    beam : Beam
        Clean beam, degrees.
    cell_rad : float
        Pixel size, radians.

    Returns
    -------
    int
        Pixels beyond which the kernel is zero, along either axis.
    """
    return kernel_reach_pix(beam.major_deg / math.degrees(cell_rad))


def restore_bands(
    model: RowReader,
    residual: RowReader,
    beam: Beam,
    cell_rad: float,
    shape: tuple[int, int],
    band: int,
) -> Iterator[np.ndarray]:
    """``model (*) beam + residual`` in Jy/beam, band by band from ``y = 0`` up.

    Parameters
    ----------
    model : RowReader
        Rows of the clean components, Jy/pixel; read with the halo (:func:`restore_halo`).
    residual : RowReader
        Rows of the residual image, Jy/beam; read band by band.
    beam : Beam
        Clean beam, degrees.
    cell_rad : float
        Pixel size, radians.
    shape : tuple of int
        ``(ny, nx)`` of the plane; ``ny`` need not be a multiple of ``band``.
    band : int
        Rows per band (the last band takes what is left).

    Yields
    ------
    numpy.ndarray
        ``(rows, nx)`` float32 restored rows, Jy/beam, in order.
    """
    ny, nx = shape
    restorer = _BandRestorer(beam, cell_rad)
    span = max(band, RESTORE_SPAN)
    for y0 in range(0, ny, band):
        y1 = min(y0 + band, ny)
        m0, m1 = max(0, y0 - restorer.halo), min(ny, y1 + restorer.halo)
        rows = np.asarray(model(m0, m1))  # (rows + halo, nx)
        res = np.asarray(residual(y0, y1))  # (rows, nx)
        out = np.empty((y1 - y0, nx), dtype=np.float32)
        for x0 in range(0, nx, span):  # column blocks with their halo bound the FFTs
            x1 = min(x0 + span, nx)
            b0, b1 = max(0, x0 - restorer.halo), min(nx, x1 + restorer.halo)
            block = restorer.restore(rows[:, b0:b1], res[:, x0:x1], top=y0 - m0, left=x0 - b0)
            out[:, x0:x1] = block
        yield out


def restore_channel(
    model: np.ndarray, residual: np.ndarray, beam: Beam, cell_rad: float
) -> np.ndarray:
    """``model (*) beam + residual`` in Jy/beam for one whole plane.

    Parameters
    ----------
    model : numpy.ndarray
        ``(ny, nx)`` clean components, Jy/pixel.
    residual : numpy.ndarray
        ``(ny, nx)`` residual image, Jy/beam.
    beam : Beam
        Clean beam, degrees.
    cell_rad : float
        Pixel size, radians.

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` float32 restored image, Jy/beam.
    """
    return _BandRestorer(beam, cell_rad).restore(model, residual, top=0)


class _BandRestorer:
    """Restores bands of one plane with one beam, keeping the kernel's spectrum of the last shape.

    Every band but those near the plane's edges has the same FFT shape, so one spectrum is kept.
    """

    def __init__(self, beam: Beam, cell_rad: float) -> None:
        self.beam = beam
        self.cell_rad = cell_rad
        self.halo = restore_halo(beam, cell_rad)
        self._key: tuple[int, ...] = ()
        self._spectrum = np.empty(0, dtype=np.complex128)

    def restore(
        self, model: np.ndarray, residual: np.ndarray, top: int, left: int = 0
    ) -> np.ndarray:
        """Restored pixels ``[top, top + rows) x [left, left + cols)`` of the model block given.

        ``model`` is ``(h, nx)`` with the halo the restored pixels need; ``residual`` is the
        ``(rows, cols)`` residual at the restored pixels.
        """
        h, nx = model.shape
        rows, cols = residual.shape
        ry, rx = min(self.halo, h - 1), min(self.halo, nx - 1)  # farther offsets meet no pixel
        fft_shape = (_good_size(h + 2 * ry), _good_size(nx + 2 * rx))
        spectrum = np.fft.rfft2(np.asarray(model, dtype=np.float64), s=fft_shape)
        spectrum *= self._kernel_spectrum(ry, rx, fft_shape)
        smooth = np.fft.irfft2(spectrum, s=fft_shape)  # linear: the kernel centre at (ry, rx)
        cut = smooth[top + ry : top + ry + rows, left + rx : left + rx + cols]
        return (cut + residual).astype(np.float32)

    def _kernel_spectrum(self, ry: int, rx: int, fft_shape: tuple[int, int]) -> np.ndarray:
        if self._key != (ry, rx, *fft_shape):
            kernel = beam_kernel(self.beam, self.cell_rad, (2 * ry + 1, 2 * rx + 1))
            self._key = (ry, rx, *fft_shape)
            self._spectrum = np.fft.rfft2(kernel, s=fft_shape)  # kernel centre (ry, rx)
        return self._spectrum


def _good_size(n: int) -> int:
    """The smallest FFT length of small prime factors at least ``n`` (real transforms)."""
    return ducc0.fft.good_size(n, True)
