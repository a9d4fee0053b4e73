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
truth planes of its channel group (groups split as WSClean and skarim split them), at the
mean frequency of the group.

Spectral scores (:func:`score_spectral`, the joined-channel case):

- channel SNR, dB: the SNR (raw, and smoothed as above) of each output channel alone,
  averaged over the channels;
- MFS SNR, dB: the smoothed SNR of the weighted mean over channels of the model against the
  same mean of the truth (equal weights unless given: the bench's channels have equal
  visibilities and noise);
- spectral-index error: over the truth sources whose smoothed MFS truth peak (Jy/beam) is at
  least ``min_snr`` times the MFS noise (:func:`spectral_truth`), the median of
  ``|alpha_fit - alpha_true|``. ``alpha_fit`` is the least-squares slope of ``ln S`` against
  ``ln f`` of the model cube smoothed with the common beam, read at the source's pixel, over
  the channels where it is positive (one rule for every method); a source with fewer than
  two such channels counts as an infinite error. ``alpha_true`` is the simulated spectrum's
  log-slope ``alpha + 2 beta ln(f_ref / f0)`` at the reference frequency ``f_ref``
  (:func:`alpha_ref_freq_hz`): the one where a least-squares line through the channels has the
  slope of any log-parabolic spectrum, so the truth itself scores 0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from skarim.beam import Beam, fwhm_to_sigma, smooth_gaussian
from skarim.imaging.plan import channel_groups
from skarim.metrics import smoothed_snr_db, snr_db
from skarim.sim.sky import SkyModel

__all__ = [
    "ModelScore",
    "score_model",
    "SpectralTruth",
    "SpectralScore",
    "spectral_truth",
    "fit_spectral_index",
    "score_spectral",
    "output_freqs_hz",
    "alpha_ref_freq_hz",
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
    model, truth = _same_shape(model, truth)
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


@dataclass(frozen=True)
class SpectralTruth:
    """The truth sources on which spectral indices are scored.

    Attributes
    ----------
    x_pix, y_pix : numpy.ndarray
        ``(nsrc,)`` integer pixel positions, FITS order.
    alpha : numpy.ndarray
        ``(nsrc,)`` log-slope of each source's spectrum at ``ref_freq_hz``.
    ref_freq_hz : float
        Frequency of ``alpha`` (:func:`alpha_ref_freq_hz`), Hz.
    freq_hz : numpy.ndarray
        ``(channels_out,)`` output channel frequencies, Hz.
    """

    x_pix: np.ndarray
    y_pix: np.ndarray
    alpha: np.ndarray
    ref_freq_hz: float
    freq_hz: np.ndarray


@dataclass(frozen=True)
class SpectralScore:
    """Spectral scores of one model cube (module docstring).

    Attributes
    ----------
    channel_snr_db, channel_smoothed_snr_db : float
        Mean over output channels of each channel's SNR, raw and smoothed, dB.
    mfs_smoothed_snr_db : float
        Smoothed SNR of the MFS model against the MFS truth, dB.
    alpha_error : float
        Median ``|alpha_fit - alpha_true|`` over the scored sources (``inf`` when more than
        half were not measured; NaN when there are none).
    alpha_sources, alpha_missed : int
        Sources scored, and those without a fit (fewer than two positive channels).
    """

    channel_snr_db: float
    channel_smoothed_snr_db: float
    mfs_smoothed_snr_db: float
    alpha_error: float
    alpha_sources: int
    alpha_missed: int

    def as_dict(self) -> dict[str, float]:
        """Plain numbers for JSON."""
        return asdict(self)


def output_freqs_hz(freq_hz: np.ndarray, channels_out: int) -> np.ndarray:
    """``(channels_out,)`` mean frequency of each output channel group, Hz."""
    groups = channel_groups(len(freq_hz), channels_out)
    return np.array([float(np.mean(freq_hz[g.start : g.stop])) for g in groups])


def alpha_ref_freq_hz(freq_hz: np.ndarray) -> float:
    """The frequency at which a log-parabolic spectrum's log-slope is the least-squares slope
    of ``ln S`` against ``ln f`` over the channels ``freq_hz``, Hz.

    With ``x = ln f``, ``ln S = a + alpha x + beta x^2`` and central moments ``m2``, ``m3`` of
    the channels' ``x``, that slope is ``cov(x, ln S) / m2 = alpha + 2 beta (mean(x) +
    m3 / (2 m2))``: the log-slope at ``x = mean(x) + m3 / (2 m2)``, a little below the
    geometric mean of channels equally spaced in frequency (their ``x`` is skewed low).
    """
    x = np.log(np.asarray(freq_hz, dtype=np.float64))
    d = x - x.mean()
    m2 = float(np.mean(d**2))
    skew = float(np.mean(d**3)) / (2.0 * m2) if m2 > 0 else 0.0
    return float(np.exp(x.mean() + skew))


def spectral_truth(
    sky: SkyModel,
    truth_out: np.ndarray,
    freq_out_hz: np.ndarray,
    fwhm_pix: float,
    sigma_mfs_jy_beam: float,
    min_snr: float = 10.0,
    weights: np.ndarray | None = None,
) -> SpectralTruth:
    """The sky's sources whose smoothed MFS truth peak is ``>= min_snr`` times the MFS noise.

    Parameters
    ----------
    sky : SkyModel
        The simulated components.
    truth_out : numpy.ndarray
        ``(channels_out, ny, nx)`` truth per output channel, Jy/pixel.
    freq_out_hz : numpy.ndarray
        ``(channels_out,)`` output channel frequencies, Hz.
    fwhm_pix : float
        FWHM of the common beam, pixels: the truth smoothed with a unit-integral Gaussian,
        times the beam's area ``2 pi sigma^2``, is in Jy/beam.
    sigma_mfs_jy_beam : float
        Noise of the MFS image, Jy/beam.
    min_snr : float
        Threshold, in units of ``sigma_mfs_jy_beam``.
    weights : numpy.ndarray, optional
        ``(channels_out,)`` MFS weights; equal when None.
    """
    x = np.rint(sky.x_pix).astype(int)
    y = np.rint(sky.y_pix).astype(int)
    area_pix = 2.0 * math.pi * fwhm_to_sigma(fwhm_pix) ** 2
    peak = smooth_gaussian(_mfs(truth_out, weights), fwhm_pix)[y, x] * area_pix  # (ncomp,)
    keep = peak >= min_snr * sigma_mfs_jy_beam
    ref = alpha_ref_freq_hz(freq_out_hz)
    alpha = sky.log_slope_at(ref)[keep]
    return SpectralTruth(x[keep], y[keep], alpha, ref, np.asarray(freq_out_hz, dtype=float))


def fit_spectral_index(
    cube: np.ndarray, freq_hz: np.ndarray, fwhm_pix: float, x_pix: np.ndarray, y_pix: np.ndarray
) -> np.ndarray:
    """``(nsrc,)`` slope of ``ln S`` against ``ln f`` of the smoothed cube at each pixel.

    Only the channels where the smoothed value is positive enter a source's fit; NaN for a
    source with fewer than two.
    """
    s = smooth_gaussian(np.asarray(cube, dtype=np.float64), fwhm_pix)[:, y_pix, x_pix]
    ln_f = np.log(np.asarray(freq_hz, dtype=np.float64))
    out = np.full(s.shape[1], math.nan)
    for k in range(s.shape[1]):
        ok = s[:, k] > 0
        if ok.sum() >= 2:
            out[k] = np.polyfit(ln_f[ok], np.log(s[ok, k]), 1)[0]
    return out


def score_spectral(
    model: np.ndarray,
    truth_out: np.ndarray,
    sources: SpectralTruth,
    fwhm_pix: float,
    weights: np.ndarray | None = None,
) -> SpectralScore:
    """Spectral scores of a ``(channels_out, ny, nx)`` model cube (module docstring).

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    model, truth_out = _same_shape(model, truth_out)
    raw = [snr_db(m, t) for m, t in zip(model, truth_out, strict=True)]
    sm_model, sm_truth = smooth_gaussian(model, fwhm_pix), smooth_gaussian(truth_out, fwhm_pix)
    smooth = [snr_db(m, t) for m, t in zip(sm_model, sm_truth, strict=True)]
    fit = fit_spectral_index(model, sources.freq_hz, fwhm_pix, sources.x_pix, sources.y_pix)
    err = np.where(np.isnan(fit), math.inf, np.abs(fit - sources.alpha))
    return SpectralScore(
        channel_snr_db=float(np.mean(raw)),
        channel_smoothed_snr_db=float(np.mean(smooth)),
        mfs_smoothed_snr_db=float(
            smoothed_snr_db(_mfs(model, weights), _mfs(truth_out, weights), fwhm_pix)
        ),
        alpha_error=float(np.median(err)) if err.size else math.nan,
        alpha_sources=int(err.size),
        alpha_missed=int(np.isnan(fit).sum()),
    )


def _same_shape(model: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    model = np.asarray(model, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if model.shape != truth.shape:
        raise ValueError(f"model shape {model.shape} differs from truth shape {truth.shape}")
    return model, truth


def _mfs(cube: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    w = np.ones(len(cube)) if weights is None else np.asarray(weights, dtype=np.float64)
    return np.tensordot(w / w.sum(), np.asarray(cube, dtype=np.float64), axes=1)


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
