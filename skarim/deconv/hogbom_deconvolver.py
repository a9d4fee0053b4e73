"""Hogbom CLEAN as a tile deconvolver: the polish of the RIM's model in the last major cycles.

:func:`polish_windows` adds to each window's model the Hogbom CLEAN
(:func:`skarim.deconv.clean.hogbom`, signed) of its residual, down to
``DeconvConfig.polish_sigma`` noise; :class:`HogbomPolish` is the
:class:`~skarim.deconv.deconvolver.TileDeconvolver` of the polish phase.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from skarim.config import DeconvConfig
from skarim.deconv.clean import hogbom
from skarim.deconv.device import ComputeDevice
from skarim.deconv.tiles import fit_psf

if TYPE_CHECKING:
    from skarim.deconv.deconvolver import WindowBatch

__all__ = ["polish_windows", "HogbomPolish"]


def polish_windows(
    residual: np.ndarray,
    psf: np.ndarray,
    sigma: float | np.ndarray,
    x0: np.ndarray,
    deconv: DeconvConfig,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """A polish pass: ``x0`` plus Hogbom CLEAN of each window of its residual.

    A window whose residual stays within the stopping threshold (``deconv.polish_sigma``
    times ``sigma``) everywhere gets no component from CLEAN: its model is ``x0`` as it is,
    without running the minor iterations (the same numbers, at no cost on empty sky).

    Parameters
    ----------
    residual : numpy.ndarray
        ``(batch, w, w)`` windows of the exact residual of ``x0``, Jy/beam.
    psf : numpy.ndarray
        ``(2p, 2p)`` PSF with peak 1 at ``(p, p)``.
    sigma : float or numpy.ndarray
        The residual's noise, Jy/beam, or ``(batch,)`` one per window; minor iterations stop
        at ``deconv.polish_sigma`` times it.
    x0 : numpy.ndarray
        ``(batch, w, w)`` current model windows, Jy/pixel.
    deconv : DeconvConfig
        ``polish_sigma`` and ``polish_gain``.
    mask : numpy.ndarray, optional
        ``(batch, w, w)`` bool: components only where True.

    Returns
    -------
    tuple of (numpy.ndarray, int)
        ``(batch, w, w)`` polished model windows, Jy/pixel, float32 (signed: CLEAN may take
        back flux the RIM put where there is none), and how many windows were within the
        threshold.
    """
    sigmas = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (len(residual),))
    stop = deconv.polish_sigma * sigmas
    searched = np.abs(residual) if mask is None else np.where(mask, np.abs(residual), 0)
    busy = np.flatnonzero(searched.max(axis=(1, 2)) > stop)  # windows CLEAN works on
    out = np.array(x0, dtype=np.float32)  # (batch, w, w)
    if busy.size:
        psf_w = fit_psf(psf, residual.shape[-1])  # (2w, 2w)
        for i in busy:
            step = hogbom(
                residual[i], psf_w, float(sigmas[i]), gain=deconv.polish_gain,
                threshold_sigma=deconv.polish_sigma, mask=None if mask is None else mask[i],
            )  # fmt: skip
            out[i] = (x0[i] + step).astype(np.float32)
    return out, len(residual) - busy.size


@dataclass(frozen=True)
class HogbomPolish:
    """Hogbom CLEAN of every window: the polish phase's tile deconvolver.

    Attributes
    ----------
    deconv : DeconvConfig
        ``polish_sigma`` and ``polish_gain``.
    """

    deconv: DeconvConfig

    @classmethod
    def from_config(cls, deconv: DeconvConfig, device: ComputeDevice) -> HogbomPolish:
        """The polish of ``deconv``; it runs in numpy whatever ``device`` says."""
        return cls(deconv)

    def deconvolve(self, batch: WindowBatch) -> tuple[np.ndarray, int]:
        """``x0`` plus the Hogbom CLEAN of each window of its residual (``core`` not used).

        Returns
        -------
        tuple of (numpy.ndarray, int)
            :func:`polish_windows` of the batch: the model windows, and how many windows
            were left as they were (nothing in them above the stopping threshold).
        """
        return polish_windows(
            batch.residual, batch.psf, batch.sigma, batch.x0, self.deconv, batch.mask
        )
