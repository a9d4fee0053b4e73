"""Robust noise of an image and of a channel's residual, from the median absolute deviation.

The tile passes scale their thresholds by it (the RIM's skip rule, the polish's minor
iterations, the RIM's noise input) and the major cycles' convergence and pruning rules
compare against it (:mod:`skarim.deconv.major_cycle`).
"""

from __future__ import annotations

import numpy as np

from skarim.beam import psf_fwhm_pix
from skarim.config import DeconvConfig
from skarim.deconv.tiles import TileWindow
from skarim.io.store import RunStore

__all__ = ["robust_sigma", "channel_sigma", "mfs_sigma", "local_sigma", "local_box_pix"]


def robust_sigma(image: np.ndarray) -> float:
    """Noise level of an image from the median absolute deviation, Jy/beam.

    Parameters
    ----------
    image : numpy.ndarray
        Pixels of any shape, Jy/beam; non-finite ones and exact zeros (the pixels beyond
        the horizon, which hold no sky: :mod:`skarim.imaging.wgridder`) are left out.

    Returns
    -------
    float
        ``1.4826 * MAD``, Jy/beam; 0 when no pixel is left.
    """
    finite = image[np.isfinite(image) & (image != 0)]
    if finite.size == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(finite - np.median(finite))))


def channel_sigma(store: RunStore, chan: int, source: str, wins: list[TileWindow]) -> float:
    """Robust noise of a channel's residual from up to 16 tiles spread over the image.

    Parameters
    ----------
    store : RunStore
        The run's store.
    chan : int
        Output channel.
    source : str
        Image array read: ``dirty`` or ``residual``.
    wins : list of TileWindow
        All tiles of the image (:func:`skarim.deconv.tiles.tile_windows`).

    Returns
    -------
    float
        :func:`robust_sigma` of the sampled tiles' cores, Jy/beam.
    """
    samples = [store.array(source)[(chan, *w.core)] for w in _sampled(wins)]
    return robust_sigma(np.concatenate([s.ravel() for s in samples]))


def mfs_sigma(store: RunStore, weights: np.ndarray, source: str, wins: list[TileWindow]) -> float:
    """Robust noise of the channels' weighted mean (an MFS image), from every other pixel along
    both axes of the tiles :func:`channel_sigma` samples (the noise is correlated over a beam,
    so the sample's statistics barely change, and its memory is a quarter).

    Parameters
    ----------
    store : RunStore
        The run's store.
    weights : numpy.ndarray
        ``(nchan,)`` each channel's weight (0 for a channel left out), e.g. the MFS weights.
    source : str
        Image array read: ``dirty`` or ``residual``.
    wins : list of TileWindow
        All tiles of the image (:func:`skarim.deconv.tiles.tile_windows`).

    Returns
    -------
    float
        :func:`robust_sigma` of ``sum_c weights[c] * image_c`` over the sample, Jy/beam.
    """
    arr = store.array(source)
    used = np.flatnonzero(weights > 0)
    samples = []
    for w in _sampled(wins):
        mfs = sum(weights[c] * arr[(c, *w.core)][::2, ::2].astype(np.float64) for c in used)
        samples.append(np.asarray(mfs, dtype=np.float32).ravel())  # summed in float64
    return robust_sigma(np.concatenate(samples))


def _sampled(wins: list[TileWindow]) -> list[TileWindow]:
    """Up to 16 tiles spread evenly over the image's list of tiles."""
    return wins[:: max(1, len(wins) // 16)][:16]


def local_box_pix(deconv: DeconvConfig, psf: np.ndarray, window: int) -> int:
    """Side of the box of :func:`local_sigma`, pixels: ``local_rms_window`` beams of ``psf``
    (its main lobe's FWHM), at least ``window`` (a tile and its halo)."""
    return max(window, int(np.ceil(deconv.local_rms_window * psf_fwhm_pix(psf))))


def local_sigma(store: RunStore, chan: int, source: str, win: TileWindow, box_pix: int) -> float:
    """Robust noise around one tile: a box of ``box_pix`` centred on it, cut to the image.

    WSClean's ``-local-rms`` thresholds against a map of such noise figures
    (:attr:`skarim.config.DeconvConfig.local_rms`).

    Parameters
    ----------
    store : RunStore
        The run's store.
    chan : int
        Output channel.
    source : str
        Image array read: ``dirty`` or ``residual``.
    win : TileWindow
        The tile.
    box_pix : int
        Side of the box, pixels (:func:`local_box_pix`).

    Returns
    -------
    float
        :func:`robust_sigma` of the box, Jy/beam.
    """
    ys, xs = win.core
    cy, cx = (ys.start + ys.stop) // 2, (xs.start + xs.stop) // 2
    y0, x0 = max(cy - box_pix // 2, 0), max(cx - box_pix // 2, 0)
    box = store.array(source)[chan, y0 : y0 + box_pix, x0 : x0 + box_pix]
    return robust_sigma(np.asarray(box))
