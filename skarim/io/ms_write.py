"""Write CASA Measurement Sets (version 2) with python-casacore.

Used by ``skarim simulate`` and by the tests, which build their own small Measurement Sets.
The main table holds fixed-shape ``DATA``/``FLAG`` columns (``[nchan, ncorr]`` per row) in
tiled storage; the subtables hold what imagers read (ANTENNA, SPECTRAL_WINDOW,
POLARIZATION, DATA_DESCRIPTION, FIELD, OBSERVATION, FEED, PROCESSOR). STATE, SOURCE,
POINTING, FLAG_CMD and HISTORY stay empty (``STATE_ID = -1``).

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

__all__ = ["STOKES_CODES", "SpectralWindow", "write_ms"]

STOKES_CODES = {"RR": 5, "RL": 6, "LR": 7, "LL": 8, "XX": 9, "XY": 10, "YX": 11, "YY": 12}
"""casacore ``Stokes::StokesTypes`` codes of the correlation products (``CORR_TYPE``)."""

_RECEPTOR_INDEX = {"X": 0, "Y": 1, "R": 0, "L": 1}
_FEED_RECEPTORS = {"linear": ("X", "Y"), "circular": ("R", "L")}
_RECEPTOR_ANGLE_RAD = {"linear": (0.0, np.pi / 2), "circular": (0.0, 0.0)}
_TILE_BYTES = 1 << 20  # bytes per tile of the tiled columns
_CHUNK_BYTES = 1 << 26  # bytes of visibilities per putcol
# main-table columns filled here, which extra_columns may not replace
_WRITTEN_COLUMNS = frozenset(
    "UVW FLAG FLAG_CATEGORY WEIGHT SIGMA ANTENNA1 ANTENNA2 ARRAY_ID DATA_DESC_ID EXPOSURE "
    "FEED1 FEED2 FIELD_ID FLAG_ROW INTERVAL OBSERVATION_ID PROCESSOR_ID SCAN_NUMBER STATE_ID "
    "TIME TIME_CENTROID DATA WEIGHT_SPECTRUM".split()
)
# dtype given -> dtype stored, and the casacore value type of the stored dtype
_STORED_DTYPES = {np.dtype(np.int64): np.dtype(np.int32)} | {
    np.dtype(t): np.dtype(t)
    for t in (np.complex64, np.complex128, np.float32, np.float64, np.int32, np.bool_)
}
_CASA_VALUE_TYPES = {
    np.dtype(np.complex64): "complex",
    np.dtype(np.complex128): "dcomplex",
    np.dtype(np.float32): "float",
    np.dtype(np.float64): "double",
    np.dtype(np.int32): "int",
    np.dtype(np.bool_): "boolean",
}


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


@dataclass(frozen=True)
class _Column:
    """A main-table column: the caller's rows (None: all zero), stored dtype, cell shape."""

    values: np.ndarray | None
    dtype: np.dtype
    zero_cell: tuple[int, ...] = ()

    @property
    def cell(self) -> tuple[int, ...]:
        """Shape of one row's cell (``()`` for a scalar column)."""
        return self.zero_cell if self.values is None else tuple(np.shape(self.values)[1:])

    def rows(self, sl: slice) -> np.ndarray:
        """The rows ``sl`` converted to the stored dtype."""
        if self.values is None:
            return np.zeros((sl.stop - sl.start, *self.zero_cell), dtype=self.dtype)
        return np.ascontiguousarray(self.values[sl], dtype=self.dtype)


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
        ``ncorr`` correlation products in ``data``'s order, keys of :data:`STOKES_CODES`, all
        linear (``XX``...) or all circular (``RR``...), e.g. ``("XX", "XY", "YX", "YY")``.
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
        "DATA": _Column(data, np.dtype(np.complex64)),
        "FLAG": _Column(flag, np.dtype(np.bool_), cube[1:]),
    }
    if weight_spectrum is not None:
        columns["WEIGHT_SPECTRUM"] = _Column(weight_spectrum, np.dtype(np.float32))
    for name, values in (extra_columns or {}).items():
        if name in _WRITTEN_COLUMNS or not name.isupper() or not name.isidentifier():
            raise InputError(f"extra column name {name!r} is not a free upper-case column name")
        dtype = np.asarray(values[:0]).dtype
        if dtype not in _STORED_DTYPES:
            raise InputError(f"extra column {name} has unsupported dtype {dtype}")
        columns[name] = _Column(values, _STORED_DTYPES[dtype])
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
        with pt.default_ms(str(tmp), *_main_desc(columns, nrow, ncorr)) as ms:
            ms.addrows(nrow)
            _put_rows(ms, rows, columns, exposure_s)
        feed = "circular" if corr_types[0][0] in "RL" else "linear"
        _fill_antenna(tmp, antenna_itrf_m, antenna_names, antenna_diameter_m)
        _fill_spectral_windows(tmp, spectral_windows)
        _fill_polarization(tmp, corr_types)
        t0, t1 = (float(np.min(time_s)), float(np.max(time_s))) if nrow else (0.0, 0.0)
        _fill_feed(tmp, nant, feed, (t0 + t1) / 2)
        _fill_field(tmp, field_names, phase_dirs_rad, t0)
        _fill_observation(tmp, telescope, [t0 - exposure_s / 2, t1 + exposure_s / 2])
        _fill_processor(tmp)
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
    unknown = [c for c in corr_types if c not in STOKES_CODES]
    if unknown or len(corr_types) != ncorr or len(set(corr_types)) != ncorr:
        raise InputError(
            f"corr_types {tuple(corr_types)} must be {ncorr} distinct products of "
            f"{', '.join(STOKES_CODES)} (data has {ncorr} correlations)"
        )
    if len({c[0] in "RL" for c in corr_types}) != 1:
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


def _main_desc(columns: Mapping[str, _Column], nrow: int, ncorr: int) -> tuple[dict, dict]:
    """Table description and data-manager info of the fixed-shape main-table columns."""
    descs = [
        pt.makearrcoldesc(name, 0.0, shape=[ncorr], valuetype="float", options=4)
        for name in ("WEIGHT", "SIGMA")
    ]
    dminfo = {}
    for name, column in columns.items():
        value_type = _CASA_VALUE_TYPES[column.dtype]
        cell = column.cell
        if not cell:
            descs.append(pt.makescacoldesc(name, 0, valuetype=value_type))
            continue
        group = f"Tiled{name}"
        descs.append(
            pt.makearrcoldesc(
                name,
                0,
                shape=list(cell),
                valuetype=value_type,
                options=4,  # FixedShape
                datamanagertype="TiledColumnStMan",
                datamanagergroup=group,
            )
        )
        cell_bytes = column.dtype.itemsize * int(np.prod(cell))
        rows_per_tile = max(1, min(nrow, _TILE_BYTES // cell_bytes))
        tile = [*cell[::-1], rows_per_tile]  # casacore (Fortran) order
        dminfo[f"*{len(dminfo) + 1}"] = {
            "TYPE": "TiledColumnStMan",
            "NAME": group,
            "SPEC": {"DEFAULTTILESHAPE": np.array(tile, dtype=np.int32)},
            "COLUMNS": [name],
        }
    return pt.maketabdesc(descs), dminfo


def _put_rows(
    ms: pt.table,
    rows: Mapping[str, np.ndarray],
    columns: Mapping[str, _Column],
    exposure_s: float,
) -> None:
    """Fill the main table in chunks of rows, converting each chunk to the stored dtype."""
    nrow = len(rows["TIME"])
    row_bytes = sum(c.dtype.itemsize * int(np.prod(c.cell)) for c in columns.values())
    step = max(1, _CHUNK_BYTES // row_bytes)
    zeros = ("FEED1", "FEED2", "ARRAY_ID", "OBSERVATION_ID", "PROCESSOR_ID")
    for start in range(0, nrow, step):
        sl = slice(start, min(start + step, nrow))
        n = sl.stop - start
        with np.errstate(divide="ignore"):
            sigma = 1.0 / np.sqrt(rows["WEIGHT"][sl])  # (n, ncorr), inf where the weight is 0
        put = {
            "SIGMA": sigma,
            "EXPOSURE": np.full(n, exposure_s),
            "INTERVAL": np.full(n, exposure_s),
            "SCAN_NUMBER": np.ones(n, dtype=np.int32),
            "STATE_ID": np.full(n, -1, dtype=np.int32),
            **{name: np.zeros(n, dtype=np.int32) for name in zeros},
            **{name: values[sl] for name, values in rows.items()},
            **{name: column.rows(sl) for name, column in columns.items()},
        }
        for name, values in put.items():
            ms.putcol(name, values, startrow=start, nrow=n)


def _subtable(ms_path: Path, name: str, nrow: int) -> pt.table:
    table = pt.table(str(ms_path / name), readonly=False, ack=False)
    table.addrows(nrow)
    return table


def _fill_antenna(
    ms_path: Path, itrf_m: np.ndarray, names: Sequence[str], diameter_m: np.ndarray
) -> None:
    nant = len(names)
    with _subtable(ms_path, "ANTENNA", nant) as t:
        t.putcol("NAME", list(names))
        t.putcol("STATION", list(names))
        t.putcol("POSITION", itrf_m)
        t.putcol("OFFSET", np.zeros((nant, 3)))
        t.putcol("DISH_DIAMETER", diameter_m)
        t.putcol("TYPE", ["GROUND-BASED"] * nant)
        t.putcol("MOUNT", ["ALT-AZ"] * nant)
        t.putcol("FLAG_ROW", np.zeros(nant, dtype=bool))


def _fill_spectral_windows(ms_path: Path, windows: Sequence[SpectralWindow]) -> None:
    nspw = len(windows)
    freq = np.stack([np.asarray(w.freq_hz, dtype=np.float64) for w in windows])  # (nspw, nchan)
    nchan = freq.shape[1]
    width = np.array([float(w.width_hz) for w in windows])  # (nspw,)
    with _subtable(ms_path, "SPECTRAL_WINDOW", nspw) as t:
        t.putcol("CHAN_FREQ", freq)
        t.putcol("CHAN_WIDTH", np.repeat(width[:, None], nchan, axis=1))
        t.putcol("EFFECTIVE_BW", np.repeat(np.abs(width)[:, None], nchan, axis=1))
        t.putcol("RESOLUTION", np.repeat(np.abs(width)[:, None], nchan, axis=1))
        t.putcol("REF_FREQUENCY", freq[:, 0])
        t.putcol("TOTAL_BANDWIDTH", nchan * np.abs(width))
        t.putcol("NUM_CHAN", np.full(nspw, nchan, dtype=np.int32))
        t.putcol("NAME", [f"SPW{i}" for i in range(nspw)])
        t.putcol("MEAS_FREQ_REF", np.full(nspw, 5, dtype=np.int32))  # TOPO
        t.putcol("NET_SIDEBAND", np.ones(nspw, dtype=np.int32))
        t.putcol("FREQ_GROUP", np.zeros(nspw, dtype=np.int32))
        t.putcol("FREQ_GROUP_NAME", [""] * nspw)
        t.putcol("IF_CONV_CHAIN", np.zeros(nspw, dtype=np.int32))
        t.putcol("FLAG_ROW", np.zeros(nspw, dtype=bool))
    with _subtable(ms_path, "DATA_DESCRIPTION", nspw) as t:
        t.putcol("SPECTRAL_WINDOW_ID", np.arange(nspw, dtype=np.int32))
        t.putcol("POLARIZATION_ID", np.zeros(nspw, dtype=np.int32))
        t.putcol("FLAG_ROW", np.zeros(nspw, dtype=bool))


def _fill_polarization(ms_path: Path, corr_types: Sequence[str]) -> None:
    codes = np.array([[STOKES_CODES[c] for c in corr_types]], dtype=np.int32)  # (1, ncorr)
    product = np.array([[[_RECEPTOR_INDEX[r] for r in c] for c in corr_types]], dtype=np.int32)
    with _subtable(ms_path, "POLARIZATION", 1) as t:
        t.putcol("CORR_TYPE", codes)
        t.putcol("CORR_PRODUCT", product)  # (1, ncorr, 2)
        t.putcol("NUM_CORR", np.array([len(corr_types)], dtype=np.int32))
        t.putcol("FLAG_ROW", np.zeros(1, dtype=bool))


def _fill_feed(ms_path: Path, nant: int, feed: str, time_s: float) -> None:
    with _subtable(ms_path, "FEED", nant) as t:
        t.putcol("ANTENNA_ID", np.arange(nant, dtype=np.int32))
        t.putcol("FEED_ID", np.zeros(nant, dtype=np.int32))
        t.putcol("SPECTRAL_WINDOW_ID", np.full(nant, -1, dtype=np.int32))  # all windows
        t.putcol("BEAM_ID", np.full(nant, -1, dtype=np.int32))
        t.putcol("TIME", np.full(nant, time_s))
        t.putcol("INTERVAL", np.zeros(nant))  # valid at all times
        t.putcol("NUM_RECEPTORS", np.full(nant, 2, dtype=np.int32))
        t.putcol("POLARIZATION_TYPE", np.array([_FEED_RECEPTORS[feed]] * nant))
        t.putcol("RECEPTOR_ANGLE", np.tile(_RECEPTOR_ANGLE_RAD[feed], (nant, 1)))
        t.putcol("POL_RESPONSE", np.tile(np.eye(2, dtype=np.complex64), (nant, 1, 1)))
        t.putcol("BEAM_OFFSET", np.zeros((nant, 2, 2)))
        t.putcol("POSITION", np.zeros((nant, 3)))


def _fill_field(ms_path: Path, names: Sequence[str], dirs_rad: np.ndarray, time_s: float) -> None:
    nfield = len(names)
    dirs = dirs_rad[:, None, :]  # (nfield, 1, 2): NUM_POLY + 1 = 1 polynomial term
    with _subtable(ms_path, "FIELD", nfield) as t:
        t.putcol("NAME", list(names))
        t.putcol("CODE", [""] * nfield)
        for column in ("PHASE_DIR", "DELAY_DIR", "REFERENCE_DIR"):
            t.putcol(column, dirs)
        t.putcol("TIME", np.full(nfield, time_s))
        t.putcol("NUM_POLY", np.zeros(nfield, dtype=np.int32))
        t.putcol("SOURCE_ID", np.full(nfield, -1, dtype=np.int32))
        t.putcol("FLAG_ROW", np.zeros(nfield, dtype=bool))


def _fill_observation(ms_path: Path, telescope: str, time_range_s: list[float]) -> None:
    with _subtable(ms_path, "OBSERVATION", 1) as t:
        t.putcol("TELESCOPE_NAME", [telescope])
        t.putcol("TIME_RANGE", np.array([time_range_s]))
        t.putcol("OBSERVER", ["skarim"])
        t.putcol("PROJECT", ["skarim"])
        t.putcol("SCHEDULE_TYPE", [""])
        t.putcol("RELEASE_DATE", np.zeros(1))
        t.putcol("FLAG_ROW", np.zeros(1, dtype=bool))
        t.putcell("LOG", 0, np.array(["written by skarim"]))
        t.putcell("SCHEDULE", 0, np.array([""]))


def _fill_processor(ms_path: Path) -> None:
    with _subtable(ms_path, "PROCESSOR", 1) as t:
        t.putcol("TYPE", ["CORRELATOR"])
        t.putcol("SUB_TYPE", ["SIMULATOR"])
        t.putcol("TYPE_ID", np.array([-1], dtype=np.int32))
        t.putcol("MODE_ID", np.array([-1], dtype=np.int32))
        t.putcol("FLAG_ROW", np.zeros(1, dtype=bool))
