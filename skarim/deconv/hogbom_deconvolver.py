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
    residual: np.ndarray, psf: np.ndarray, sigma: float, x0: np.ndarray, deconv: DeconvConfig
) -> np.ndarray:
    """A polish pass: ``x0`` plus Hogbom CLEAN of each window of its residual.

    Parameters
    ----------
    residual : numpy.ndarray
        ``(batch, w, w)`` windows of the exact residual of ``x0``, Jy/beam.
    psf : numpy.ndarray
        ``(2p, 2p)`` PSF with peak 1 at ``(p, p)``.
    sigma : float
        The residual's noise, Jy/beam; minor iterations stop at ``deconv.polish_sigma`` times it.
    x0 : numpy.ndarray
        ``(batch, w, w)`` current model windows, Jy/pixel.
    deconv : DeconvConfig
        ``polish_sigma`` and ``polish_gain``.

    Returns
    -------
    numpy.ndarray
        ``(batch, w, w)`` polished model windows, Jy/pixel, float32 (signed: CLEAN may take
        back flux the RIM put where there is none).
    """
    psf_w = fit_psf(psf, residual.shape[-1])  # (2w, 2w)
    steps = [
        hogbom(r, psf_w, sigma, gain=deconv.polish_gain, threshold_sigma=deconv.polish_sigma)
        for r in residual
    ]
    return (x0 + np.stack(steps)).astype(np.float32)


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
            :func:`polish_windows` of the batch, and 0: no window is left out.
        """
        model = polish_windows(batch.residual, batch.psf, batch.sigma, batch.x0, self.deconv)
        return model, 0
