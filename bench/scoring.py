"""Scores of a model cube against the truth cube, and the readers of the tools' products.

Definitions (all over the whole cube, every output channel at once):

- SNR, dB: ``10 log10(||truth||^2 / ||model - truth||^2)`` (:func:`skarim.metrics.snr_db`):
  ``inf`` for a perfect model, exactly 0 dB for a zero model, ``10 log10(4) = 6.02`` dB
  for half the truth.
- smoothed SNR, dB: the same after convolving model and truth with one circular Gaussian of
  unit integral (:func:`skarim.metrics.smoothed_snr_db`) whose FWHM is the geometric mean of
  the clean beam's axes (:func:`beam_fwhm_pix`): CLEAN's point-like models are not punished
  for placing flux a fraction of a beam away.
- flux ratio: ``sum(model) / sum(truth)`` (both Jy/pixel).
- residual RMS: root mean square of the residual image, Jy/beam, over all pixels and
  channels (for a dirty-only run, of the dirty image: the residual of a zero model).
- peak offset: pixels between the brightest truth pixel and the brightest model pixel, a
  check that model and truth sit on the same grid.

The truth is simulated per input channel; an output channel's truth is the mean of the
truth planes of its channel group (groups split as WSClean and skarim split them).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from skarim.beam import Beam
from skarim.imaging.plan import channel_groups
from skarim.metrics import smoothed_snr_db, snr_db

__all__ = [
    "ModelScore",
    "score_model",
    "residual_rms",
    "truth_per_output_channel",
    "beam_fwhm_pix",
    "read_planes",
    "json_safe",
]


@dataclass(frozen=True)
class ModelScore:
    """Scores of one model cube.

    Attributes
    ----------
    snr_db, smoothed_snr_db : float
        SNR against the truth, raw and after smoothing with the common beam, dB.
    flux_ratio : float
        Total flux of the model over that of the truth.
    peak_offset_pix : float
        Distance between the brightest pixels of truth and model, pixels.
    """

    snr_db: float
    smoothed_snr_db: float
    flux_ratio: float
    peak_offset_pix: float

    def as_dict(self) -> dict[str, float]:
        """Plain floats for JSON."""
        return asdict(self)


def score_model(model: np.ndarray, truth: np.ndarray, fwhm_pix: float) -> ModelScore:
    """Score a model cube against the truth cube.

    Parameters
    ----------
    model, truth : numpy.ndarray
        ``(nchan, ny, nx)`` (or ``(ny, nx)``) images in Jy/pixel on the same grid.
    fwhm_pix : float
        FWHM of the common smoothing beam, pixels.

    Returns
    -------
    ModelScore

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    model = np.asarray(model, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if model.shape != truth.shape:
        raise ValueError(f"model shape {model.shape} differs from truth shape {truth.shape}")
    total = float(truth.sum())
    flux_ratio = float(model.sum()) / total if total != 0.0 else math.nan
    t_peak = np.array(np.unravel_index(np.argmax(truth), truth.shape))[-2:]
    m_peak = np.array(np.unravel_index(np.argmax(model), model.shape))[-2:]
    return ModelScore(
        snr_db=float(snr_db(model, truth)),
        smoothed_snr_db=float(smoothed_snr_db(model, truth, fwhm_pix)),
        flux_ratio=flux_ratio,
        peak_offset_pix=float(np.hypot(*(t_peak - m_peak))),
    )


def residual_rms(residual: np.ndarray) -> float:
    """Root mean square of the finite pixels of a residual cube (its units)."""
    r = np.asarray(residual, dtype=np.float64)
    r = r[np.isfinite(r)]
    return float(np.sqrt(np.mean(r**2))) if r.size else math.nan


def truth_per_output_channel(truth: np.ndarray, channels_out: int) -> np.ndarray:
    """Mean truth of each output channel group, ``(channels_out, ny, nx)``.

    Parameters
    ----------
    truth : numpy.ndarray
        ``(nchan, ny, nx)`` truth per input channel.
    channels_out : int
        Output channels, split as :func:`skarim.imaging.plan.channel_groups` (and WSClean)
        split them.
    """
    groups = channel_groups(truth.shape[0], channels_out)
    return np.stack([truth[g.start : g.stop].mean(axis=0) for g in groups])


def beam_fwhm_pix(beam: Beam, cell_rad: float) -> float:
    """Geometric-mean FWHM of an elliptical beam, pixels."""
    return math.sqrt(beam.major_deg * beam.minor_deg) / math.degrees(cell_rad)


def read_planes(paths: list[Path]) -> tuple[np.ndarray, fits.Header]:
    """Stack the images of several FITS files (each one cube or one plane) into ``(n, ny, nx)``.

    WSClean writes one file per output channel with a ``(1, 1, ny, nx)`` array; skarim one
    ``(1, nchan, ny, nx)`` cube. Returns the stacked float32 planes and the first header.
    """
    planes: list[np.ndarray] = []
    header = fits.Header()
    for i, path in enumerate(paths):
        with fits.open(path, memmap=False) as hdul:
            data = np.asarray(hdul[0].data, dtype=np.float32)
            if i == 0:
                header = hdul[0].header.copy()
        planes.append(data.reshape(-1, *data.shape[-2:]))  # (n, ny, nx)
    return np.concatenate(planes), header


def json_safe(value: object) -> object:
    """Replace non-finite floats (recursively) by the strings ``inf``, ``-inf``, ``nan``."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
