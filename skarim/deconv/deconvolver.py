"""The tile-deconvolver interface, the registry of its implementations, and who runs when.

A tile pass (:mod:`skarim.deconv.passes`) reads a batch of windows of one channel from the
store (a :class:`WindowBatch`) and hands it to a :class:`TileDeconvolver`, which returns
the windows' new model. The implementations are registered by name in :data:`DECONVOLVERS`,
each as a factory from the run's :class:`~skarim.config.DeconvConfig` and
:class:`~skarim.deconv.device.ComputeDevice`; :data:`PHASES` says which one runs each phase
of the major cycles. A new deconvolver is one new module with a class that has
``from_config`` and ``deconvolve``, and one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from skarim.config import DeconvConfig
from skarim.deconv.device import ComputeDevice
from skarim.deconv.hogbom_deconvolver import HogbomPolish
from skarim.deconv.rim_deconvolver import RimDeconvolver

__all__ = ["WindowBatch", "TileDeconvolver", "DECONVOLVERS", "PHASES", "phase_deconvolver"]


@dataclass(frozen=True)
class WindowBatch:
    """A batch of windows (tile plus halo) of one channel, with what deconvolving them needs.

    Attributes
    ----------
    residual : numpy.ndarray
        ``(batch, w, w)`` windows of the exact residual of ``x0`` (of the dirty image when
        ``x0`` is None), Jy/beam.
    psf : numpy.ndarray
        ``(2p, 2p)`` PSF of the channel with peak 1 at ``(p, p)``.
    sigma : float or numpy.ndarray
        The channel's robust noise for this cycle, Jy/beam, or ``(batch,)`` one per window
        (the noise around each tile, ``DeconvConfig.local_rms``).
    x0 : numpy.ndarray or None
        ``(batch, w, w)`` model windows of the previous cycle, Jy/pixel; None in the first
        cycle.
    core : slice
        Where each window's tile sits along both axes (``[margin, margin + tile)``).
    mask : numpy.ndarray or None
        ``(batch, w, w)`` bool, True where the model may hold flux (:mod:`skarim.io.mask`);
        None: everywhere. A deconvolver finds sources only inside and leaves no flux
        outside.
    """

    residual: np.ndarray
    psf: np.ndarray
    sigma: float | np.ndarray
    x0: np.ndarray | None
    core: slice
    mask: np.ndarray | None = None

    @property
    def sigmas(self) -> np.ndarray:
        """``(batch,)`` noise of each window, Jy/beam."""
        return np.broadcast_to(np.asarray(self.sigma, dtype=np.float64), (len(self.residual),))

    def in_mask(self, image: np.ndarray) -> np.ndarray:
        """``(batch, w, w)`` windows zeroed outside the mask (as they are without one)."""
        return image if self.mask is None else np.where(self.mask, image, 0)

    def holding_sources(self, skip_sigma: float) -> np.ndarray:
        """``(batch,)`` bool: the windows whose core's absolute residual inside the mask
        reaches ``skip_sigma`` times their noise (``DeconvConfig.skip_sigma``); with a mask,
        only those whose core meets it."""
        core = self.core
        peak = np.abs(self.in_mask(self.residual)[:, core, core]).max(axis=(1, 2))  # (b,)
        busy = peak >= skip_sigma * self.sigmas
        if self.mask is not None:  # a tile wholly outside the mask is left as it is
            busy &= self.mask[:, core, core].any(axis=(1, 2))
        return busy


class TileDeconvolver(Protocol):
    """Deconvolves a batch of windows of one channel."""

    def deconvolve(self, batch: WindowBatch) -> tuple[np.ndarray, int]:
        """The new model of a batch of windows.

        Parameters
        ----------
        batch : WindowBatch
            The windows, their PSF, noise and starting model.

        Returns
        -------
        tuple of (numpy.ndarray, int)
            ``(batch, w, w)`` model windows, Jy/pixel, float32, and how many windows the
            deconvolver left as they were.
        """
        ...


#: Tile deconvolvers by name: each a factory from the run's deconvolution settings and device.
DECONVOLVERS: dict[str, Callable[[DeconvConfig, ComputeDevice], TileDeconvolver]] = {
    "rim": RimDeconvolver.from_config,
    "hogbom": HogbomPolish.from_config,
}

#: The deconvolver of each phase of the major cycles: the RIM's cycles, then the polish's.
PHASES = {"rim": "rim", "polish": "hogbom"}


def phase_deconvolver(cycle: int, deconv: DeconvConfig, device: ComputeDevice) -> TileDeconvolver:
    """The tile deconvolver of major cycle ``cycle``.

    Cycles up to ``deconv.major_cycles`` are the RIM phase's, the later ones (up to
    ``deconv.total_cycles``) the polish's.

    Parameters
    ----------
    cycle : int
        Major cycle, from 1.
    deconv : DeconvConfig
        The run's deconvolution settings.
    device : ComputeDevice
        Where a deconvolver that uses torch runs.

    Returns
    -------
    TileDeconvolver
    """
    phase = "rim" if cycle <= deconv.major_cycles else "polish"
    return DECONVOLVERS[PHASES[phase]](deconv, device)
