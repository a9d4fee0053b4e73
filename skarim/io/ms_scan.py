"""One pass over a Measurement Set's main table for ``skarim info``: baselines, times, rows per
field and the flagged fraction.

:func:`scan_main_table` streams the small columns (``UVW``, ``ANTENNA1``, ``ANTENNA2``,
``TIME``, ``FIELD_ID``) ``_CHUNK_ROWS`` rows at a time, so memory does not grow with the
Measurement Set, and counts the flags with one TaQL query that casacore evaluates row by
row (``FLAG`` cells may differ in shape between spectral windows, which ``getcol`` refuses).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from casacore import tables

__all__ = ["MainTableScan", "scan_main_table"]

_CHUNK_ROWS = 100_000


@dataclass(frozen=True)
class MainTableScan:
    """What one pass over the main table found.

    Attributes
    ----------
    max_baseline_m : float
        Longest ``|uvw|`` over the cross-correlation rows, metres.
    max_uv_m : float
        Longest ``sqrt(u^2 + v^2)`` over them, metres.
    time_start_s, time_end_s : float
        First and last TIME, MJD seconds; NaN without rows.
    n_autocorr_rows : int
        Rows with ANTENNA1 == ANTENNA2.
    nant_with_data : int
        Antennas in at least one cross-correlation row.
    rows_per_field : tuple of int
        Rows of each FIELD_ID ``0 .. max``, autocorrelations included.
    flagged_fraction : float
        Of the cross-correlation visibilities (every channel and correlation), the fraction
        flagged in FLAG or by FLAG_ROW; NaN without cross-correlation rows.
    """

    max_baseline_m: float
    max_uv_m: float
    time_start_s: float
    time_end_s: float
    n_autocorr_rows: int
    nant_with_data: int
    rows_per_field: tuple[int, ...]
    flagged_fraction: float


def scan_main_table(ms: tables.table) -> MainTableScan:
    """Scan the open main table of a Measurement Set (module docstring).

    Parameters
    ----------
    ms : casacore.tables.table
        The main table (:func:`skarim.io.ms_tables.open_ms_table`).

    Returns
    -------
    MainTableScan
    """
    max_baseline_m = max_uv_m = 0.0
    time_start_s, time_end_s = np.inf, -np.inf
    n_autocorr_rows = 0
    antennas: set[int] = set()
    per_field = np.zeros(0, np.int64)
    for start in range(0, ms.nrows(), _CHUNK_ROWS):
        n = min(_CHUNK_ROWS, ms.nrows() - start)
        ant1 = ms.getcol("ANTENNA1", startrow=start, nrow=n)
        ant2 = ms.getcol("ANTENNA2", startrow=start, nrow=n)
        cross = ant1 != ant2
        uvw_m = ms.getcol("UVW", startrow=start, nrow=n)[cross]  # (ncross, 3)
        time_s = ms.getcol("TIME", startrow=start, nrow=n)
        counts = np.bincount(ms.getcol("FIELD_ID", startrow=start, nrow=n))
        per_field = np.pad(per_field, (0, max(0, counts.size - per_field.size)))
        per_field[: counts.size] += counts
        n_autocorr_rows += int(n - np.count_nonzero(cross))
        antennas.update(ant1[cross].tolist(), ant2[cross].tolist())
        if uvw_m.size:
            max_baseline_m = max(max_baseline_m, float(np.sqrt((uvw_m**2).sum(1)).max()))
            max_uv_m = max(max_uv_m, float(np.hypot(uvw_m[:, 0], uvw_m[:, 1]).max()))
        time_start_s = min(time_start_s, float(time_s.min()))
        time_end_s = max(time_end_s, float(time_s.max()))
    if ms.nrows() == 0:
        time_start_s = time_end_s = np.nan
    return MainTableScan(
        max_baseline_m=max_baseline_m,
        max_uv_m=max_uv_m,
        time_start_s=time_start_s,
        time_end_s=time_end_s,
        n_autocorr_rows=n_autocorr_rows,
        nant_with_data=len(antennas),
        rows_per_field=tuple(int(c) for c in per_field),
        flagged_fraction=_flagged_fraction(ms),
    )


def _flagged_fraction(ms: tables.table) -> float:
    """Flagged share of the cross-correlation visibilities, FLAG_ROW counting a whole row."""
    flagged = "ntrue(FLAG)"
    if "FLAG_ROW" in ms.colnames():
        flagged = f"iif(FLAG_ROW, nelements(FLAG), {flagged})"
    query = (
        f"select gsum({flagged}) as nflag, gsum(nelements(FLAG)) as ncell from $ms "
        "where ANTENNA1 != ANTENNA2 && isdefined(FLAG)"
    )
    with tables.taql(query) as result:
        if result.nrows() == 0:
            return float("nan")
        nflag, ncell = int(result.getcell("nflag", 0)), int(result.getcell("ncell", 0))
    return nflag / ncell if ncell else float("nan")
