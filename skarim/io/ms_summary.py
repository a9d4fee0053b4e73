"""``skarim info MS``: what a Measurement Set holds, and an image geometry to start from.

:func:`summarise_ms` reads the subtables (:mod:`skarim.io.ms_tables`) and scans the main
table once (:mod:`skarim.io.ms_scan`: baselines, times, rows per field, flags; memory does
not grow with the Measurement Set); :func:`format_summary` turns the result into text for
a terminal.

The suggested geometry follows the rules of thumb WSClean users image with:

- cell: ``1 / (4 uv_max)`` radians, where ``uv_max`` is the longest projected baseline
  ``sqrt(u^2 + v^2)`` in wavelengths at the highest frequency; the synthesised beam is about
  ``1 / uv_max`` wide, so this puts about 4 pixels across it;
- image side: 1.5 times the primary-beam FWHM ``1.22 lambda / D`` at the lowest frequency
  (the widest beam) and the smallest dish diameter ``D`` > 0 in the ANTENNA table, divided by
  the cell and rounded up to a multiple of 256 pixels (even, and a whole number of 256-pixel
  tiles), but never past the horizon: at most :func:`skarim.io.wcs.horizon_npix` pixels, the
  side whose axes come closest to ``|l| = 1`` (an all-sky image).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import Latitude, Longitude
from astropy.time import Time

from skarim.constants import SPEED_OF_LIGHT_M_S
from skarim.io.correlations import feed_type
from skarim.io.ms_scan import scan_main_table
from skarim.io.ms_tables import (
    data_columns,
    open_ms_table,
    read_antennas,
    read_fields,
    read_polarizations,
    read_spectral_windows,
    telescope_name,
)
from skarim.io.wcs import horizon_npix

__all__ = [
    "FieldSummary",
    "MSSummary",
    "SpwSummary",
    "format_summary",
    "summarise_ms",
]

_NPIX_MULTIPLE = 256
_PIXELS_PER_BEAM = 4
_FOV_PER_PRIMARY_BEAM = 1.5
_PRIMARY_BEAM_FACTOR = 1.22


@dataclass(frozen=True)
class SpwSummary:
    """One spectral window.

    Attributes
    ----------
    spw : int
        SPECTRAL_WINDOW row.
    nchan : int
        Number of channels.
    freq_min_hz, freq_max_hz : float
        Lowest and highest channel centre, Hz.
    chan_width_hz : float
        Width of the first channel, Hz.
    """

    spw: int
    nchan: int
    freq_min_hz: float
    freq_max_hz: float
    chan_width_hz: float


@dataclass(frozen=True)
class FieldSummary:
    """One field.

    Attributes
    ----------
    field_id : int
        FIELD row.
    name : str
        FIELD NAME.
    ra_rad, dec_rad : float
        Phase centre (first polynomial term of PHASE_DIR), radians.
    nrow : int
        Rows of the main table with this FIELD_ID.
    """

    field_id: int
    name: str
    ra_rad: float
    dec_rad: float
    nrow: int = 0


@dataclass(frozen=True)
class MSSummary:
    """What a Measurement Set holds, and a suggested image geometry.

    Attributes
    ----------
    path : Path
        The Measurement Set directory.
    nrow : int
        Rows of the main table.
    n_autocorr_rows : int
        Of which autocorrelations (ANTENNA1 == ANTENNA2).
    nant : int
        Rows of the ANTENNA table.
    nant_with_data : int
        Antennas that appear in at least one cross-correlation row.
    antenna_names : tuple of str
        ANTENNA NAME, in table order.
    telescope : str
        TELESCOPE_NAME of the first OBSERVATION row ("" when absent).
    data_columns : tuple of str
        Visibility columns of the main table (``DATA``, ``CORRECTED_DATA``...).
    flagged_fraction : float
        Share of the cross-correlation visibilities flagged (FLAG or FLAG_ROW); NaN
        without them.
    spws : tuple of SpwSummary
        Spectral windows.
    feeds : tuple of str
        Feed type (``"linear"``, ``"circular"`` or ``"unknown"``) of each POLARIZATION row.
    corr_types : tuple of tuple of str
        Correlations of each POLARIZATION row, in stored order.
    fields : tuple of FieldSummary
        Fields.
    time_start_s, time_end_s : float
        First and last TIME (integration midpoints), MJD seconds (UTC); NaN without rows.
    time_span_s : float
        ``time_end_s - time_start_s``.
    max_baseline_m : float
        Longest baseline ``|uvw|`` over the cross-correlation rows, metres.
    max_uv_wavelengths : float
        Longest projected baseline ``sqrt(u^2 + v^2)`` in wavelengths at the highest
        frequency of all spectral windows.
    suggested_cell_rad : float or None
        ``1 / (4 max_uv_wavelengths)``: about 4 pixels across the synthesised beam, radians;
        None without cross-correlation rows or spectral windows.
    suggested_npix : int or None
        Image side covering 1.5 primary-beam FWHM (``1.22 lambda / D``), rounded up to a
        multiple of 256, at most the horizon's; None also when no antenna has a dish
        diameter > 0.
    """

    path: Path
    nrow: int
    n_autocorr_rows: int
    nant: int
    nant_with_data: int
    antenna_names: tuple[str, ...]
    telescope: str
    data_columns: tuple[str, ...]
    flagged_fraction: float
    spws: tuple[SpwSummary, ...]
    feeds: tuple[str, ...]
    corr_types: tuple[tuple[str, ...], ...]
    fields: tuple[FieldSummary, ...]
    time_start_s: float
    time_end_s: float
    time_span_s: float
    max_baseline_m: float
    max_uv_wavelengths: float
    suggested_cell_rad: float | None
    suggested_npix: int | None


def summarise_ms(path: Path) -> MSSummary:
    """Describe a Measurement Set and suggest an image geometry.

    Parameters
    ----------
    path : Path
        The Measurement Set directory.

    Returns
    -------
    MSSummary
        Antennas, spectral windows, correlations, fields, time span, longest baseline,
        suggested cell size and image size (rules in the module docstring).

    Raises
    ------
    InputError
        If the path does not exist or is not a Measurement Set.
    """
    path = Path(path)
    with open_ms_table(path) as ms:
        scan = scan_main_table(ms)
        nrow = ms.nrows()
        columns = tuple(data_columns(ms))
    antenna_names, dish_diameter_m = read_antennas(path)
    positive_m = dish_diameter_m[dish_diameter_m > 0]
    min_dish_m = float(positive_m.min()) if positive_m.size else None
    spws = tuple(
        SpwSummary(
            spw=i,
            nchan=int(freq_hz.size),
            freq_min_hz=float(freq_hz.min()),
            freq_max_hz=float(freq_hz.max()),
            chan_width_hz=float(width_hz[0]),
        )
        for i, (freq_hz, width_hz) in enumerate(read_spectral_windows(path))
    )
    corr_types = read_polarizations(path)
    cell_rad = npix = None
    max_uv_wavelengths = 0.0
    if spws and scan.max_uv_m > 0:
        freq_max_hz = max(w.freq_max_hz for w in spws)
        max_uv_wavelengths = scan.max_uv_m * freq_max_hz / SPEED_OF_LIGHT_M_S
        cell_rad = 1.0 / (_PIXELS_PER_BEAM * max_uv_wavelengths)
        if min_dish_m is not None:
            wavelength_max_m = SPEED_OF_LIGHT_M_S / min(w.freq_min_hz for w in spws)
            fwhm_rad = _PRIMARY_BEAM_FACTOR * wavelength_max_m / min_dish_m
            side_pix = _FOV_PER_PRIMARY_BEAM * fwhm_rad / cell_rad
            npix = int(np.ceil(side_pix / _NPIX_MULTIPLE)) * _NPIX_MULTIPLE
            npix = min(npix, horizon_npix(cell_rad))
    return MSSummary(
        path=path,
        nrow=nrow,
        n_autocorr_rows=scan.n_autocorr_rows,
        nant=len(antenna_names),
        nant_with_data=scan.nant_with_data,
        antenna_names=antenna_names,
        telescope=telescope_name(path),
        data_columns=columns,
        flagged_fraction=scan.flagged_fraction,
        spws=spws,
        feeds=tuple(feed_type(c) or "unknown" for c in corr_types),
        corr_types=corr_types,
        fields=tuple(
            FieldSummary(
                field_id=i,
                name=name,
                ra_rad=ra_rad,
                dec_rad=dec_rad,
                nrow=scan.rows_per_field[i] if i < len(scan.rows_per_field) else 0,
            )
            for i, (name, (ra_rad, dec_rad)) in enumerate(read_fields(path))
        ),
        time_start_s=scan.time_start_s,
        time_end_s=scan.time_end_s,
        time_span_s=scan.time_end_s - scan.time_start_s,
        max_baseline_m=scan.max_baseline_m,
        max_uv_wavelengths=float(max_uv_wavelengths),
        suggested_cell_rad=cell_rad,
        suggested_npix=npix,
    )


def format_summary(s: MSSummary) -> str:
    """Human-readable, multi-line text of a summary.

    Parameters
    ----------
    s : MSSummary
        From :func:`summarise_ms`.

    Returns
    -------
    str
        Lines of ``label  value``; angles with units, RA/Dec sexagesimal, times in UTC.
    """
    if np.isfinite(s.time_start_s):
        t0, t1 = Time(np.array([s.time_start_s, s.time_end_s]) / 86400.0, format="mjd").iso
        time_text = f"{t0} to {t1} UTC ({s.time_span_s:.1f} s)"
    else:
        time_text = "(no rows)"
    lines = [
        f"Measurement Set   {s.path}",
        f"Telescope         {s.telescope or '(unknown)'}",
        f"Rows              {s.nrow} ({s.n_autocorr_rows} autocorrelation)",
        f"Antennas          {s.nant} in ANTENNA table, {s.nant_with_data} with data",
        f"Time              {time_text}",
        f"Data columns      {' '.join(s.data_columns) or '(none)'}",
        f"Flagged           {_fraction_text(s.flagged_fraction)} of the cross-correlation "
        "visibilities (FLAG or FLAG_ROW)",
        "Spectral windows",
    ]
    for w in s.spws:
        lines.append(
            f"  {w.spw}: {w.nchan} channels, {w.freq_min_hz / 1e9:.6f}-"
            f"{w.freq_max_hz / 1e9:.6f} GHz, width {_frequency_text(w.chan_width_hz)}"
        )
    lines.append("Polarizations")
    for i, (feed, corrs) in enumerate(zip(s.feeds, s.corr_types, strict=True)):
        lines.append(f"  {i}: {feed} {' '.join(corrs)}")
    lines.append("Fields")
    for f in s.fields:
        ra = Longitude(f.ra_rad * u.rad).to_string(unit=u.hourangle, precision=3, pad=True)
        dec = Latitude(f.dec_rad * u.rad).to_string(
            unit=u.deg, precision=2, alwayssign=True, pad=True
        )
        lines.append(f"  {f.field_id}: {f.name}  {ra} {dec}  {f.nrow} rows")
    lines += [
        f"Longest baseline  {s.max_baseline_m:.1f} m "
        f"({s.max_uv_wavelengths:.4g} wavelengths projected, at the highest frequency)",
    ]
    if s.suggested_cell_rad is None:
        lines.append("Suggested cell    (unknown: no cross-correlation baselines)")
    else:
        cell = (s.suggested_cell_rad * u.rad).to(u.arcsec)
        lines.append(f"Suggested cell    {cell:.3g} (4 pixels across the synthesised beam)")
    if s.suggested_npix is None:
        lines.append("Suggested size    (unknown: no baselines or no dish diameter)")
    else:
        fov = (s.suggested_npix * s.suggested_cell_rad * u.rad).to(u.arcmin)
        why = "1.5 primary-beam FWHM"
        if s.suggested_npix == horizon_npix(s.suggested_cell_rad):
            why = "to the horizon: |l| <= 1"
        lines.append(f"Suggested size    {s.suggested_npix} pixels ({fov:.3g}; {why})")
    return "\n".join(lines)


def _fraction_text(fraction: float) -> str:
    """``12.3%``, or ``(no data)`` for NaN."""
    return "(no data)" if np.isnan(fraction) else f"{100 * fraction:.3g}%"


def _frequency_text(freq_hz: float) -> str:
    """``125 kHz``, ``2 MHz``: the frequency in the largest unit that keeps it >= 1."""
    for unit in (u.GHz, u.MHz, u.kHz):
        if abs(freq_hz) >= unit.to(u.Hz):
            return f"{(freq_hz * u.Hz).to(unit):g}"
    return f"{freq_hz * u.Hz:g}"
