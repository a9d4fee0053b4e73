"""Restoration: ``model (*) clean beam + residual``, in Jy/beam.

The clean beam and its kernel come from :mod:`skarim.beam` (:func:`skarim.beam.fit_beam`,
:func:`skarim.beam.beam_kernel`).
"""

from __future__ import annotations

import numpy as np

from skarim.beam import Beam, beam_kernel

__all__ = ["restore_channel"]


def restore_channel(
    model: np.ndarray, residual: np.ndarray, beam: Beam, cell_rad: float
) -> np.ndarray:
    """``model (*) beam + residual`` in Jy/beam for one channel.

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
    ny, nx = model.shape
    kernel = beam_kernel(beam, cell_rad, (2 * ny, 2 * nx))  # (2ny, 2nx), centre (ny, nx)
    spec = np.fft.rfft2(np.fft.ifftshift(kernel)) * np.fft.rfft2(model, s=(2 * ny, 2 * nx))
    smooth = np.fft.irfft2(spec, s=(2 * ny, 2 * nx))[:ny, :nx]
    return (smooth + residual).astype(np.float32)
