"""Write CASA Measurement Sets (version 2) with python-casacore.

Used by ``skarim simulate`` and by the tests, which build their own small Measurement Sets.
The main table holds fixed-shape ``DATA``/``FLAG`` columns (``[nchan, ncorr]`` per row) in
tiled storage (:mod:`skarim.io.ms_write_columns`); the subtables hold what imagers read
(ANTENNA, SPECTRAL_WINDOW, POLARIZATION, DATA_DESCRIPTION, FIELD, OBSERVATION, FEED,
PROCESSOR: :mod:`skarim.io.ms_write_subtables`). STATE, SOURCE, POINTING, FLAG_CMD and
HISTORY stay empty (``STATE_ID = -1``).

The set is built under ``<path>.tmp`` and renamed to ``path`` only once it is complete, so
a crash never leaves a half-written set under the final name.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import casacore.tables as pt
import numpy as np

from skarim.errors import InputError
from skarim.io.correlations import CORR_PRODUCT_CODES, product_feed
from skarim.io.ms_write_columns import STORED_DTYPES, MainColumn, main_table_desc, put_rows
from skarim.io.ms_write_subtables import fill_subtables

__all__ = ["SpectralWindow", "write_ms"]

# main-table columns filled here, which extra_columns may not replace
_WRITTEN_COLUMNS = frozenset(
    "UVW FLAG FLAG_CATEGORY WEIGHT SIGMA ANTENNA1 ANTENNA2 ARRAY_ID DATA_DESC_ID EXPOSURE "
    "FEED1 FEED2 FIELD_ID FLAG_ROW INTERVAL OBSERVATION_ID PROCESSOR_ID SCAN_NUMBER STATE_ID "
    "TIME TIME_CENTROID DATA WEIGHT_SPECTRUM".split()
)


@dataclass(frozen=True)
class SpectralWindow:
    """One spectral window.

    Attributes
    ----------
    freq_hz : numpy.ndarray
        ``(nchan,)`` channel centres in Hz.
    width_hz : float
        Channel width in Hz (negative for descending frequencies).
    """

    freq_hz: np.ndarray
    width_hz: float


def write_ms(
    path: Path,
    *,
    antenna_itrf_m: np.ndarray,
    antenna_names: Sequence[str],
    antenna_diameter_m: np.ndarray,
    telescope: str,
    time_s: np.ndarray,
    ant1: np.ndarray,
    ant2: np.ndarray,
    uvw_m: np.ndarray,
    spectral_windows: Sequence[SpectralWindow],
    data: np.ndarray,
    corr_types: Sequence[str],
    weight: np.ndarray,
    weight_spectrum: np.ndarray | None = None,
    flag: np.ndarray | None = None,
    flag_row: np.ndarray | None = None,
    field_names: Sequence[str] = ("FIELD0",),
    phase_dirs_rad: np.ndarray | None = None,
    field_id: np.ndarray | None = None,
    data_desc_id: np.ndarray | None = None,
    extra_columns: Mapping[str, np.ndarray] | None = None,
    exposure_s: float | None = None,
    overwrite: bool = False,
) -> None:
    """Write a Measurement Set.

    Parameters
    ----------
    path : pathlib.Path
        The Measurement Set directory to create.
    antenna_itrf_m : numpy.ndarray
        ``(nant, 3)`` antenna positions, ITRF metres.
    antenna_names : sequence of str
        ``nant`` antenna names (ANTENNA ``NAME`` and ``STATION``).
    antenna_diameter_m : numpy.ndarray
        ``(nant,)`` dish diameters, metres.
    telescope : str
        OBSERVATION ``TELESCOPE_NAME``, e.g. ``"MeerKAT"``.
    time_s : numpy.ndarray
        ``(nrow,)`` mid-integration times, MJD seconds (UTC); ``TIME`` and ``TIME_CENTROID``.
    ant1, ant2 : numpy.ndarray
        ``(nrow,)`` antenna indices of each row.
    uvw_m : numpy.ndarray
        ``(nrow, 3)`` baseline coordinates ``xyz(ant2) - xyz(ant1)`` in the (u, v, w) frame
        of the phase centre, metres.
    spectral_windows : sequence of SpectralWindow
        Spectral windows, all with the same number of channels ``nchan``.
    data : numpy.ndarray
        ``(nrow, nchan, ncorr)`` complex visibilities in Jy (stored as complex64).
    corr_types : sequence of str
        ``ncorr`` correlation products in ``data``'s order, keys of
        :data:`~skarim.io.correlations.CORR_PRODUCT_CODES`, all linear (``XX``...) or all
        circular (``RR``...), e.g. ``("XX", "XY", "YX", "YY")``.
    weight : numpy.ndarray
        ``(nrow, ncorr)`` non-negative weights, 1/Jy^2 (``WEIGHT``); ``SIGMA`` is written as
        ``1 / sqrt(weight)`` in Jy, infinite where the weight is 0.
    weight_spectrum : numpy.ndarray, optional
        ``(nrow, nchan, ncorr)`` weights; the ``WEIGHT_SPECTRUM`` column exists only if given.
    flag : numpy.ndarray, optional
        ``(nrow, nchan, ncorr)`` bool flags; default all False.
    flag_row : numpy.ndarray, optional
        ``(nrow,)`` bool row flags; default all False.
    field_names : sequence of str
        ``nfield`` FIELD names.
    phase_dirs_rad : numpy.ndarray, optional
        ``(nfield, 2)`` RA, Dec (J2000) of each field's phase centre, radians; default 0, 0.
    field_id : numpy.ndarray, optional
        ``(nrow,)`` FIELD index of each row; default 0.
    data_desc_id : numpy.ndarray, optional
        ``(nrow,)`` DATA_DESCRIPTION index of each row, default 0; description ``i`` is
        spectral window ``i`` with polarisation setup 0.
    extra_columns : mapping of str to numpy.ndarray, optional
        Further main-table columns, each ``(nrow, ...)``, e.g. ``{"CORRECTED_DATA": ...}``;
        stored with the array's dtype and a fixed cell shape.
    exposure_s : float, optional
        ``INTERVAL`` and ``EXPOSURE`` in seconds; default the smallest spacing of the
        distinct times (1 s for a single time).
    overwrite : bool
        Replace an existing Measurement Set at ``path``.

    Raises
    ------
    InputError
        If shapes or values are inconsistent, ``path`` exists (and ``overwrite`` is False)
        or is not a Measurement Set, or casacore cannot write the set.
    """
    path = Path(path)
    nrow, nchan, ncorr = _check_main(
        time_s, ant1, ant2, uvw_m, spectral_windows, data, corr_types, weight, len(antenna_names)
    )
    nant = len(antenna_names)
    nfield = len(field_names)
    antenna_itrf_m = np.asarray(antenna_itrf_m, dtype=np.float64)
    antenna_diameter_m = np.asarray(antenna_diameter_m, dtype=np.float64)
    if antenna_itrf_m.shape != (nant, 3) or antenna_diameter_m.shape != (nant,):
        raise InputError(
            f"antenna_itrf_m {antenna_itrf_m.shape} and antenna_diameter_m "
            f"{antenna_diameter_m.shape} must be ({nant}, 3) and ({nant},)"
        )
    if phase_dirs_rad is None:
        phase_dirs_rad = np.zeros((nfield, 2))
    phase_dirs_rad = np.asarray(phase_dirs_rad, dtype=np.float64)
    if nfield < 1 or phase_dirs_rad.shape != (nfield, 2):
        raise InputError(f"phase_dirs_rad {phase_dirs_rad.shape} must be ({nfield}, 2)")
    if flag_row is not None and np.shape(flag_row) != (nrow,):
        raise InputError(f"flag_row has shape {np.shape(flag_row)}, expected ({nrow},)")
    rows = {  # per-row columns, small next to the visibilities
        "TIME": np.asarray(time_s, dtype=np.float64),
        "TIME_CENTROID": np.asarray(time_s, dtype=np.float64),
        "ANTENNA1": np.asarray(ant1, dtype=np.int32),
        "ANTENNA2": np.asarray(ant2, dtype=np.int32),
        "UVW": np.asarray(uvw_m, dtype=np.float64),
        "WEIGHT": np.asarray(weight, dtype=np.float32),
        "FIELD_ID": _index_column(field_id, nrow, nfield, "field_id"),
        "DATA_DESC_ID": _index_column(data_desc_id, nrow, len(spectral_windows), "data_desc_id"),
        "FLAG_ROW": np.zeros(nrow, bool) if flag_row is None else np.asarray(flag_row, bool),
    }
    cube = (nrow, nchan, ncorr)
    columns = {
        "DATA": MainColumn(data, np.dtype(np.complex64)),
        "FLAG": MainColumn(flag, np.dtype(np.bool_), cube[1:]),
    }
    if weight_spectrum is not None:
        columns["WEIGHT_SPECTRUM"] = MainColumn(weight_spectrum, np.dtype(np.float32))
    for name, values in (extra_columns or {}).items():
        if name in _WRITTEN_COLUMNS or not name.isupper() or not name.isidentifier():
            raise InputError(f"extra column name {name!r} is not a free upper-case column name")
        dtype = np.asarray(values[:0]).dtype
        if dtype not in STORED_DTYPES:
            raise InputError(f"extra column {name} has unsupported dtype {dtype}")
        columns[name] = MainColumn(values, STORED_DTYPES[dtype])
    for name, column in columns.items():
        if column.values is not None and np.shape(column.values)[:1] != (nrow,):
            raise InputError(f"{name} has shape {np.shape(column.values)}, expected {nrow} rows")
    for name in ("FLAG", "WEIGHT_SPECTRUM"):
        if name in columns and columns[name].cell != cube[1:]:
            raise InputError(f"{name} must have shape {cube}")
    if exposure_s is None:
        steps = np.diff(np.unique(time_s))
        exposure_s = float(steps.min()) if steps.size else 1.0
    if not exposure_s > 0:
        raise InputError(f"exposure_s must be positive, got {exposure_s}")

    tmp = path.with_name(path.name + ".tmp")
    _check_destination(path, overwrite)
    if tmp.exists():
        shutil.rmtree(tmp)  # left by a crashed write
    try:
        with pt.default_ms(str(tmp), *main_table_desc(columns, nrow, ncorr)) as ms:
            ms.addrows(nrow)
            put_rows(ms, rows, columns, exposure_s)
        fill_subtables(
            tmp,
            antenna_itrf_m=antenna_itrf_m,
            antenna_names=antenna_names,
            antenna_diameter_m=antenna_diameter_m,
            freq_hz=np.stack([np.asarray(w.freq_hz, dtype=np.float64) for w in spectral_windows]),
            width_hz=np.array([float(w.width_hz) for w in spectral_windows]),
            corr_types=corr_types,
            field_names=field_names,
            phase_dirs_rad=phase_dirs_rad,
            telescope=telescope,
            time_range_s=(float(np.min(time_s)), float(np.max(time_s))) if nrow else (0.0, 0.0),
            exposure_s=exposure_s,
        )
    except RuntimeError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise InputError(f"casacore could not write {path}: {exc}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)


def _check_main(
    time_s: np.ndarray,
    ant1: np.ndarray,
    ant2: np.ndarray,
    uvw_m: np.ndarray,
    spectral_windows: Sequence[SpectralWindow],
    data: np.ndarray,
    corr_types: Sequence[str],
    weight: np.ndarray,
    nant: int,
) -> tuple[int, int, int]:
    """Check the shapes of the main-table arrays; return ``(nrow, nchan, ncorr)``."""
    if np.ndim(data) != 3 or not np.iscomplexobj(data):
        raise InputError(f"data must be a complex (nrow, nchan, ncorr) array, got {data.dtype}")
    nrow, nchan, ncorr = data.shape
    if not spectral_windows:
        raise InputError("at least one spectral window is needed")
    for i, spw in enumerate(spectral_windows):
        freq = np.asarray(spw.freq_hz)
        if freq.shape != (nchan,) or not np.all(freq > 0) or spw.width_hz == 0:
            raise InputError(
                f"spectral window {i} must have {nchan} positive frequencies (data has {nchan} "
                f"channels) and a non-zero width, got {freq.shape} and {spw.width_hz} Hz"
            )
    unknown = [c for c in corr_types if c not in CORR_PRODUCT_CODES]
    if unknown or len(corr_types) != ncorr or len(set(corr_types)) != ncorr:
        raise InputError(
            f"corr_types {tuple(corr_types)} must be {ncorr} distinct products of "
            f"{', '.join(CORR_PRODUCT_CODES)} (data has {ncorr} correlations)"
        )
    if len({product_feed(c) for c in corr_types}) != 1:
        raise InputError(f"corr_types {tuple(corr_types)} mix linear and circular products")
    for name, arr, shape in (
        ("time_s", time_s, (nrow,)),
        ("ant1", ant1, (nrow,)),
        ("ant2", ant2, (nrow,)),
        ("uvw_m", uvw_m, (nrow, 3)),
        ("weight", weight, (nrow, ncorr)),
    ):
        if np.shape(arr) != shape:
            raise InputError(f"{name} has shape {np.shape(arr)}, expected {shape}")
    for name, ant in (("ant1", ant1), ("ant2", ant2)):
        if nrow and (np.min(ant) < 0 or np.max(ant) >= nant):
            raise InputError(f"{name} indices must lie in [0, {nant})")
    if not np.all(np.isfinite(time_s)) or not np.all(np.isfinite(uvw_m)):
        raise InputError("time_s and uvw_m must be finite")
    if not np.all(np.isfinite(weight)) or np.any(np.asarray(weight) < 0):
        raise InputError("weight must be finite and non-negative")
    return nrow, nchan, ncorr


def _index_column(values: np.ndarray | None, nrow: int, n: int, name: str) -> np.ndarray:
    if values is None:
        return np.zeros(nrow, dtype=np.int32)
    if np.shape(values) != (nrow,):
        raise InputError(f"{name} has shape {np.shape(values)}, expected ({nrow},)")
    if nrow and (np.min(values) < 0 or np.max(values) >= n):
        raise InputError(f"{name} values must lie in [0, {n})")
    return np.asarray(values, dtype=np.int32)


def _check_destination(path: Path, overwrite: bool) -> None:
    if not path.exists():
        if not path.parent.is_dir():
            raise InputError(f"cannot write {path}: {path.parent} is not a directory")
        return
    if not overwrite:
        raise InputError(f"{path} exists; remove it or ask to overwrite")
    if not (path / "table.dat").is_file():
        raise InputError(f"{path} exists and is not a casacore table; not replacing it")
