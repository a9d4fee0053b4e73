"""Classical deconvolution on a tile (numpy): Hogbom CLEAN and projected gradient.

They are the yardsticks of the RIM's validation (docs/design.md section 6): a RIM that loses to
non-negative projected gradient descent has learned nothing. Hogbom CLEAN also polishes the
RIM's residual in the pipeline's last major cycles
(:func:`skarim.deconv.hogbom_deconvolver.polish_windows`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["hogbom", "projected_gradient"]


def hogbom(
    dirty: np.ndarray,
    psf: np.ndarray,
    sigma: float,
    gain: float = 0.1,
    threshold_sigma: float = 3.0,
    max_iter: int = 20000,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Hogbom CLEAN of a tile.

    Parameters
    ----------
    dirty : numpy.ndarray
        ``(t, t)`` dirty tile, Jy/beam.
    psf : numpy.ndarray
        ``(2t, 2t)`` PSF, peak 1 at ``(t, t)``.
    sigma : float
        Image noise, Jy/beam; cleaning stops at ``threshold_sigma * sigma``.
    gain : float
        Loop gain.
    max_iter : int
        Iteration cap.
    mask : numpy.ndarray, optional
        ``(t, t)`` bool: components only where True (a CLEAN mask).

    Returns
    -------
    numpy.ndarray
        ``(t, t)`` model, Jy/pixel.
    """
    t = dirty.shape[0]
    residual = np.array(dirty, dtype=np.float64)
    model = np.zeros_like(residual)
    stop = threshold_sigma * sigma
    inside = np.ones_like(residual) if mask is None else mask.astype(np.float64)
    for _ in range(max_iter):
        iy, ix = np.unravel_index(np.argmax(np.abs(residual) * inside), residual.shape)
        peak = residual[iy, ix]
        if abs(peak) <= stop:
            break
        model[iy, ix] += gain * peak
        residual -= gain * peak * psf[t - iy : 2 * t - iy, t - ix : 2 * t - ix]
    return model


def projected_gradient(
    dirty: np.ndarray, psf: np.ndarray, n_iter: int = 30, damping: float = 0.1
) -> np.ndarray:
    """Non-negative gradient descent on ``||A x - y||^2``, preconditioned in the Fourier domain.

    The step is ``x <- max(0, x - P(PSF (*) x - dirty))`` with ``P = 1 / (M + damping max M)``.

    Returns
    -------
    numpy.ndarray
        ``(t, t)`` model, Jy/pixel.
    """
    t = dirty.shape[0]
    sampling = np.clip(np.fft.fft2(np.fft.ifftshift(psf)).real, 0.0, None)
    precond = 1.0 / (sampling + damping * sampling.max())
    x = np.zeros((t, t))
    for _ in range(n_iter):
        spec = np.fft.fft2(np.pad(x, ((0, t), (0, t))))
        r = np.fft.ifft2(sampling * spec).real[:t, :t] - dirty
        step = np.fft.ifft2(precond * np.fft.fft2(np.pad(r, ((0, t), (0, t))))).real[:t, :t]
        x = np.maximum(x - step, 0.0)
    return x
