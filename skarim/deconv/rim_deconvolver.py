"""The RIM as a tile deconvolver: the network run on a batch of windows of one channel.

:func:`deconvolve_windows` takes residual (or dirty) windows, their PSF and noise level and
returns model windows, on the device asked for. :class:`RimDeconvolver` is the
:class:`~skarim.deconv.deconvolver.TileDeconvolver` of the major cycles' RIM phase: it
leaves the windows whose tile holds nothing above ``DeconvConfig.skip_sigma`` noise as they
are, without running the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from skarim.deconv.device import ComputeDevice
from skarim.deconv.operator import TileOperator
from skarim.deconv.rim import RIM
from skarim.deconv.tiles import fit_psf
from skarim.deconv.weights import cached_rim
from skarim.deconv.weights_id import run_weights_path

if TYPE_CHECKING:
    from skarim.config import DeconvConfig
    from skarim.deconv.deconvolver import WindowBatch

__all__ = ["deconvolve_windows", "RimDeconvolver"]


@torch.no_grad()
def deconvolve_windows(
    model: RIM,
    residual: np.ndarray,
    psf: np.ndarray,
    sigma: float | np.ndarray,
    device: torch.device,
    x0: np.ndarray | None = None,
) -> np.ndarray:
    """Run the RIM on a batch of windows that share one PSF.

    Parameters
    ----------
    model : RIM
        Loaded network (:func:`skarim.deconv.weights.load_rim`), its layers in the dtype it
        was loaded with.
    residual : numpy.ndarray
        ``(batch, w, w)`` residual windows of ``x0`` (the dirty windows when ``x0`` is
        None), Jy/beam. The RIM sees ``residual + PSF (*) x0``, the dirty image that ``x0``
        answers.
    psf : numpy.ndarray
        ``(2p, 2p)`` PSF with peak 1 at ``(p, p)``; zero-padded or cropped to ``(2w, 2w)``.
    sigma : float or numpy.ndarray
        Image-domain noise, Jy/beam: one for all windows or ``(batch,)`` one each.
    device : torch.device
        Where to run.
    x0 : numpy.ndarray, optional
        ``(batch, w, w)`` starting model, Jy/pixel.

    Returns
    -------
    numpy.ndarray
        ``(batch, w, w)`` model windows, Jy/pixel, float32, >= 0.
    """
    b, w, _ = residual.shape
    psf_w = fit_psf(psf, w)  # (2w, 2w)
    op = TileOperator(torch.as_tensor(psf_w, dtype=torch.float32, device=device))
    # on the CPU one window at a time: its activations stay in cache, and the result is the
    # same bit for bit (windows never mix); a GPU takes the whole batch
    per_call = b if device.type == "cuda" else 1
    out = np.empty((b, w, w), dtype=np.float32)
    sigmas = np.maximum(np.broadcast_to(np.asarray(sigma, dtype=np.float64), (b,)), 1e-12)
    for i in range(0, b, per_call):
        part = slice(i, i + per_call)
        d = torch.as_tensor(residual[part], dtype=torch.float32, device=device)  # (n, w, w)
        s = torch.as_tensor(sigmas[part], dtype=torch.float32, device=device)  # (n,)
        start = None
        if x0 is not None:
            start = torch.as_tensor(x0[part], dtype=torch.float32, device=device)  # (n, w, w)
            d = d + op.normal(start)
        out[part] = model(d, s, op, x0=start)[-1].cpu().numpy()
    return out


@dataclass(frozen=True)
class RimDeconvolver:
    """The RIM on the windows whose tile holds something: the RIM phase's tile deconvolver.

    Attributes
    ----------
    model : RIM
        Loaded network.
    device : torch.device
        Where it runs.
    skip_sigma : float
        A window whose core's absolute residual stays below ``skip_sigma`` times the noise
        keeps its starting model (``DeconvConfig.skip_sigma``); 0 runs every window.
    """

    model: RIM
    device: torch.device
    skip_sigma: float

    @classmethod
    def from_config(cls, deconv: DeconvConfig, device: ComputeDevice) -> RimDeconvolver:
        """The RIM of ``deconv.weights`` on ``device``, loaded once per process.

        Parameters
        ----------
        deconv : DeconvConfig
            ``weights`` and ``skip_sigma``.
        device : ComputeDevice
            Device and layer dtype (:func:`skarim.deconv.device.select_device`).

        Returns
        -------
        RimDeconvolver
        """
        model = cached_rim(run_weights_path(deconv), device.device, device.dtype)
        return cls(model, device.device, deconv.skip_sigma)

    def deconvolve(self, batch: WindowBatch) -> tuple[np.ndarray, int]:
        """The RIM's model of each window whose core holds a source; the others keep ``x0``.

        With a mask, the source must be inside it, and the model is zero outside it.

        Returns
        -------
        tuple of (numpy.ndarray, int)
            ``(batch, w, w)`` model windows, Jy/pixel, float32, and how many windows were
            left as they were (their starting model, zero when ``x0`` is None).
        """
        residual, x0, sigmas = batch.residual, batch.x0, batch.sigmas
        out = np.zeros_like(residual) if x0 is None else x0.copy()  # (b, w, w)
        busy = batch.holding_sources(self.skip_sigma)
        skipped = int(np.count_nonzero(~busy))
        if busy.any():
            start = None if x0 is None else x0[busy]
            found = deconvolve_windows(
                self.model, residual[busy], batch.psf, sigmas[busy], self.device, x0=start
            )
            out[busy] = found if batch.mask is None else np.where(batch.mask[busy], found, 0)
        return out, skipped
