"""The visibilities a run reads, counted: from a Measurement Set, or described as a target.

:class:`Observation` holds what the planner (:mod:`skarim.run.budget`) needs of the data:
rows, channels and correlations (the size of what a read pass reads and of what a task
holds), and the longest baseline and largest ``|w|`` in wavelengths (the beam's width in
pixels and ducc0's w-planes). :func:`observation_of_ms` counts them in a Measurement Set's
selection, sampling at most :data:`UVW_SAMPLE_ROWS` rows of its UVW column;
:func:`target_observation` describes one that does not exist yet from an array, a track
and a channel count.

The defaults of a target are SKA-Mid-like (:data:`SKA_MID`): 197 dishes (133 SKA and 64
MeerKAT) and baselines up to 150 km, an 8 h track dumped every second, 1000 channels up to
1.76 GHz (the top of band 2), 4 correlations. A 1 s dump keeps time smearing near a beam
at the edge of a 2-degree field on the longest baselines; baseline-dependent averaging
would store fewer rows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from skarim.constants import SPEED_OF_LIGHT_M_S
from skarim.io.ms_meta import MSMeta, selected_rows

__all__ = [
    "SKA_MID",
    "UVW_SAMPLE_ROWS",
    "Observation",
    "TargetArray",
    "observation_of_ms",
    "target_observation",
]

UVW_SAMPLE_ROWS = 65_536
"""Rows of the UVW column read to find the longest baseline and largest ``|w|``."""


@dataclass(frozen=True)
class Observation:
    """The visibilities of a run, counted.

    Attributes
    ----------
    rows : int
        Selected rows (one field, one spectral window, cross-correlations).
    channels : int
        Selected channels, the output channels' input.
    spw_channels : int
        Channels of a data cell: a read takes whole cells, every channel of the window.
    correlations : int
        Correlations of a data cell.
    max_uv_wavelengths : float
        Longest projected baseline ``sqrt(u^2 + v^2)`` at the highest frequency, wavelengths.
    max_w_wavelengths : float
        Largest ``|w|`` at the highest frequency, wavelengths.
    data_bytes : int
        Bytes of one visibility of the data column (8 complex, 16 double complex).
    weight_spectrum : bool
        Whether the weights are per channel (``WEIGHT_SPECTRUM``).
    source : str
        Where the counts come from, for the record.
    """

    rows: int
    channels: int
    spw_channels: int
    correlations: int
    max_uv_wavelengths: float
    max_w_wavelengths: float
    data_bytes: int = 8
    weight_spectrum: bool = False
    source: str = ""

    @property
    def visibilities(self) -> int:
        """Selected visibilities: rows times channels."""
        return self.rows * self.channels

    def with_channels(self, channels: int) -> Observation:
        """The same rows with ``channels`` selected channels, the cells scaled alike."""
        cells = max(channels, round(self.spw_channels * channels / self.channels))
        return replace(self, channels=channels, spw_channels=cells)


@dataclass(frozen=True)
class TargetArray:
    """An array and a track: what :func:`target_observation` turns into counts.

    Attributes
    ----------
    antennas : int
        Antennas; every pair is a baseline.
    hours : float
        Track length, hours.
    integration_s : float
        Time between dumps, seconds.
    max_baseline_m : float
        Longest baseline, metres (it bounds ``|w|`` as well).
    max_freq_hz : float
        Highest channel frequency, Hz.
    channels : int
        Channels.
    correlations : int
        Correlations.
    """

    antennas: int
    hours: float
    integration_s: float
    max_baseline_m: float
    max_freq_hz: float
    channels: int
    correlations: int = 4

    @property
    def rows(self) -> int:
        """Baselines times dumps."""
        dumps = max(1, round(self.hours * 3600 / self.integration_s))
        return self.antennas * (self.antennas - 1) // 2 * dumps


SKA_MID = TargetArray(
    antennas=197,
    hours=8.0,
    integration_s=1.0,
    max_baseline_m=150e3,
    max_freq_hz=1.76e9,
    channels=1000,
)
"""An SKA-Mid-like observation (module docstring)."""


def target_observation(target: TargetArray) -> Observation:
    """The counts of an observation of ``target`` (nothing is read).

    Examples
    --------
    >>> obs = target_observation(SKA_MID)
    >>> obs.rows, obs.channels, round(obs.max_uv_wavelengths)
    (556012800, 1000, 880609)
    """
    longest = target.max_baseline_m * target.max_freq_hz / SPEED_OF_LIGHT_M_S
    return Observation(
        rows=target.rows,
        channels=target.channels,
        spw_channels=target.channels,
        correlations=target.correlations,
        max_uv_wavelengths=longest,
        max_w_wavelengths=longest,
        source=(
            f"target: {target.antennas} antennas, {target.hours:g} h at "
            f"{target.integration_s:g} s, {target.channels} channels to "
            f"{target.max_freq_hz / 1e9:g} GHz, baselines to {target.max_baseline_m / 1e3:g} km"
        ),
    )


def observation_of_ms(meta: MSMeta) -> Observation:
    """The counts of a Measurement Set's selection (:func:`skarim.io.ms_meta.open_ms`).

    Reads one data cell's shape and type and at most :data:`UVW_SAMPLE_ROWS` rows of UVW,
    evenly spaced.
    """
    with selected_rows(meta) as sel:
        cell = sel.getcell(meta.data_column, 0)  # (nchan_spw, ncorr)
        step = max(1, sel.nrows() // UVW_SAMPLE_ROWS)
        uvw = sel.getcol("UVW", startrow=0, nrow=-1, rowincr=step)  # (n, 3) metres
        spectrum = "WEIGHT_SPECTRUM" in sel.colnames()
    uvw = uvw[np.isfinite(uvw).all(axis=1)]  # the read drops rows of NaN or infinite UVW
    per_m = float(np.max(meta.freq_hz)) / SPEED_OF_LIGHT_M_S
    return Observation(
        rows=meta.nrow,
        channels=len(meta.freq_hz),
        spw_channels=int(cell.shape[0]),
        correlations=int(cell.shape[1]),
        max_uv_wavelengths=float(np.hypot(uvw[:, 0], uvw[:, 1]).max(initial=0.0)) * per_m,
        max_w_wavelengths=float(np.abs(uvw[:, 2]).max(initial=0.0)) * per_m,
        data_bytes=int(cell.dtype.itemsize),
        weight_spectrum=spectrum,
        source=str(meta.path),
    )
