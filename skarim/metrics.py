"""Image-quality scores against a known truth (numpy only).

SNR in dB, ``10 log10(||truth||^2 / ||estimate - truth||^2)``, raw and after smoothing both
images with a common Gaussian beam (:func:`skarim.beam.smooth_gaussian`), as the benchmark
and the RIM's validation report it.
"""

from __future__ import annotations

import numpy as np

from skarim.beam import smooth_gaussian

__all__ = ["snr_db", "smoothed_snr_db"]


def snr_db(estimate: np.ndarray, truth: np.ndarray) -> float:
    """SNR of an estimate against the truth, dB (``inf`` for a perfect estimate).

    A zero estimate scores exactly 0 dB.
    """
    err = float(np.sum((np.asarray(estimate, float) - truth) ** 2))
    sig = float(np.sum(np.asarray(truth, float) ** 2))
    if err == 0.0:
        return float("inf")
    return 10.0 * np.log10(sig / err)


def smoothed_snr_db(estimate: np.ndarray, truth: np.ndarray, fwhm_pix: float) -> float:
    """SNR after smoothing estimate and truth with the same Gaussian beam, dB."""
    return snr_db(smooth_gaussian(estimate, fwhm_pix), smooth_gaussian(truth, fwhm_pix))
