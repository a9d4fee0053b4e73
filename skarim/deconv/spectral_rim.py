"""The spectral-term RIM on a batch of joined-channel windows.

With ``--join-channels --fit-spectral-pol K`` and weights of a ``K``-term network
(:attr:`skarim.deconv.rim.RIMConfig.terms`, trained on joined-channel problems by
``skarim train``), a joined RIM pass hands every deconvolution channel of a window to the
network at once: the channels' dirty windows (``residual_c + PSF_c (*) x0_c``) are
back-projected onto the spectral basis, and the RIM estimates the ``K`` terms with the
channels' own PSFs (:class:`~skarim.deconv.spectral_operator.SpectralOperator`); every
channel's model is the terms' polynomial at its frequency. The joined pass
(:mod:`skarim.deconv.joined`) takes the weighted mean of those models as its MFS model and
fits the channels' spectra around it. Needs torch only.
"""

from __future__ import annotations

import numpy as np
import torch

from skarim.deconv.rim import RIM
from skarim.deconv.spectral_operator import SpectralOperator

__all__ = ["deconvolve_joined_windows"]


@torch.no_grad()
def deconvolve_joined_windows(
    model: RIM,
    residual: np.ndarray,
    psf: np.ndarray,
    weight: np.ndarray,
    basis: np.ndarray,
    sigma: np.ndarray,
    device: torch.device,
    x0: np.ndarray | None = None,
) -> np.ndarray:
    """Run a ``K``-term RIM on windows of ``D`` joined channels.

    Parameters
    ----------
    model : RIM
        A network of ``K = basis.shape[0]`` spectral terms.
    residual : numpy.ndarray
        ``(D, batch, w, w)`` each channel's residual windows of ``x0`` (dirty when ``x0`` is
        None), Jy/beam.
    psf : numpy.ndarray
        ``(D, 2w, 2w)`` each channel's PSF, peak 1 at ``(w, w)``.
    weight : numpy.ndarray
        ``(D,)`` channel weights (sums of imaging weights).
    basis : numpy.ndarray
        ``(K, D)`` spectral basis, orthonormal under ``weight``
        (:func:`skarim.deconv.spectral.spectral_basis`).
    sigma : numpy.ndarray
        ``(batch,)`` noise of each window's weighted-mean (MFS) image, Jy/beam.
    device : torch.device
        Where to run.
    x0 : numpy.ndarray, optional
        ``(D, batch, w, w)`` starting models, Jy/pixel; projected onto the basis.

    Returns
    -------
    numpy.ndarray
        ``(D, batch, w, w)`` channel models, Jy/pixel, float32.
    """
    if basis.shape[0] != model.config.terms:
        raise ValueError(f"a RIM of {model.config.terms} terms given {basis.shape[0]} terms")
    n_chan, b, w, _ = residual.shape
    per_call = b if device.type == "cuda" else 1  # as the one-term RIM: see rim_deconvolver

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=device)

    psf_t = tensor(psf)[None]  # (1, D, 2w, 2w)
    weight_t, basis_t = tensor(weight), tensor(basis)
    op = SpectralOperator(psf_t.expand(per_call, -1, -1, -1), weight_t, basis_t)
    sigmas = np.maximum(np.asarray(sigma, dtype=np.float64), 1e-12)
    out = np.empty((n_chan, b, w, w), dtype=np.float32)
    for i in range(0, b, per_call):  # every part holds per_call windows
        part = slice(i, i + per_call)
        dirty = tensor(residual[:, part]).transpose(0, 1)  # (n, D, w, w)
        start = None
        if x0 is not None:
            x0_chan = tensor(x0[:, part]).transpose(0, 1)  # (n, D, w, w)
            dirty = dirty + op.convolved(x0_chan)
            start = op.terms_of(x0_chan)  # (n, K, w, w)
        terms = model(op.terms_of(dirty), tensor(sigmas[part]), op, x0=start)[-1]
        out[:, part] = op.images(terms).transpose(0, 1).cpu().numpy()
    return out
