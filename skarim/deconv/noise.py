"""Robust noise of an image and of a channel's residual, from the median absolute deviation.

The tile passes scale their thresholds by it (the RIM's skip rule, the polish's minor
iterations, the RIM's noise input) and the major cycles' convergence and pruning rules
compare against it (:mod:`skarim.deconv.major_cycle`).
"""

from __future__ import annotations

import numpy as np

from skarim.deconv.tiles import TileWindow
from skarim.io.store import RunStore

__all__ = ["robust_sigma", "channel_sigma"]


def robust_sigma(image: np.ndarray) -> float:
    """Noise level of an image from the median absolute deviation, Jy/beam.

    Parameters
    ----------
    image : numpy.ndarray
        Pixels of any shape, Jy/beam; non-finite ones are left out.

    Returns
    -------
    float
        ``1.4826 * MAD``, Jy/beam; 0 when no pixel is finite.
    """
    finite = image[np.isfinite(image)]
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
    pick = wins[:: max(1, len(wins) // 16)][:16]
    samples = [store.array(source)[(chan, *w.core)] for w in pick]
    return robust_sigma(np.concatenate([s.ravel() for s in samples]))
