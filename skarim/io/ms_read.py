"""The read stage: Stokes I visibilities and their weights from a Measurement Set.

:func:`open_ms` checks the Measurement Set against a :class:`~skarim.config.ReadConfig` and
returns its :class:`MSMeta`; :func:`iter_chunks` then streams the selected rows
(that field, that spectral window, cross-correlations only) in chunks of
``ReadConfig.chunk_mb`` (:func:`rows_per_chunk`), so the memory of this stage does not grow
with the Measurement Set.

Stokes I is formed from the two parallel hands named by ``POLARIZATION.CORR_TYPE``:
``I = (XX + YY) / 2`` for linear feeds, ``I = (RR + LL) / 2`` for circular feeds, with weight
``w_I = 4 / (1/w_a + 1/w_b)`` (the inverse of the variance of the mean of two independent
hands). A visibility of I is dropped (weight 0, value 0) when either hand is flagged, when
``FLAG_ROW`` is set, when either weight is not a finite number > 0, or when either hand is
NaN or infinite.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from casacore import tables

from skarim.config import ReadConfig
from skarim.errors import InputError

__all__ = [
    "CORR_TYPE_NAMES",
    "MSMeta",
    "Precision",
    "VisChunk",
    "feed_type",
    "iter_chunks",
    "open_ms",
    "open_ms_table",
    "rows_per_chunk",
    "telescope_name",
]

#: casacore ``Stokes::StokesTypes`` codes of ``POLARIZATION.CORR_TYPE``.
CORR_TYPE_NAMES: dict[int, str] = {
    1: "I", 2: "Q", 3: "U", 4: "V",
    5: "RR", 6: "RL", 7: "LR", 8: "LL",
    9: "XX", 10: "XY", 11: "YX", 12: "YY",
}  # fmt: skip

Precision = Literal["single", "double"]

_REQUIRED_COLUMNS = ("UVW", "ANTENNA1", "ANTENNA2", "DATA_DESC_ID", "FIELD_ID", "FLAG", "TIME")
_REQUIRED_SUBTABLES = ("ANTENNA", "DATA_DESCRIPTION", "FIELD", "POLARIZATION", "SPECTRAL_WINDOW")
_PARALLEL_HANDS = {"circular": ("RR", "LL"), "linear": ("XX", "YY")}
_DTYPES = {"single": (np.complex64, np.float32), "double": (np.complex128, np.float64)}
_MIB = 2**20
_STOKES_BLOCK_ROWS = 16_384


@dataclass(frozen=True)
class MSMeta:
    """What the read stage selected from a Measurement Set.

    Attributes
    ----------
    path : Path
        The Measurement Set directory.
    data_column : str
        The visibility column read.
    field_id : int
        Selected FIELD row.
    field_name : str
        Its NAME.
    phase_centre_rad : tuple of float
        ``(ra, dec)`` in radians from ``FIELD.PHASE_DIR`` (first polynomial term).
    spw : int
        Selected SPECTRAL_WINDOW row.
    freq_hz : numpy.ndarray
        ``(nchan,)`` CHAN_FREQ of the selected channels, Hz.
    chan_width_hz : numpy.ndarray
        ``(nchan,)`` CHAN_WIDTH of the selected channels, Hz.
    feed : str
        ``"linear"`` or ``"circular"``.
    corr_types : tuple of str
        Correlations in the order they are stored, e.g. ``("RR", "RL", "LR", "LL")``.
    nrow : int
        Selected rows: that field, that spectral window, cross-correlations only.
    telescope : str
        ``OBSERVATION.TELESCOPE_NAME`` of the first observation ("" when absent).
    time_range_s : tuple of float
        First and last TIME of the selected rows, MJD seconds (UTC).
    fingerprint : dict
        JSON-able identity of the Measurement Set: resolved ``path``, total ``nrow``,
        ``data_shape`` (one cell of the data column) and ``mtime`` (the latest modification
        time, in seconds since the epoch, of the main table's files).
    """

    path: Path
    data_column: str
    field_id: int
    field_name: str
    phase_centre_rad: tuple[float, float]
    spw: int
    freq_hz: np.ndarray
    chan_width_hz: np.ndarray
    feed: str
    corr_types: tuple[str, ...]
    nrow: int
    telescope: str
    time_range_s: tuple[float, float]
    fingerprint: dict


@dataclass(frozen=True)
class VisChunk:
    """Stokes I of consecutive selected rows.

    Attributes
    ----------
    row_start : int
        Index of the chunk's first row within the selection.
    uvw_m : numpy.ndarray
        ``(n, 3)`` float64 baseline coordinates, metres.
    vis : numpy.ndarray
        ``(n, nchan)`` complex64 or complex128 Stokes I, in the data column's units (Jy);
        0 where dropped.
    weight : numpy.ndarray
        ``(n, nchan)`` float32 or float64 weight of I, Jy^-2; 0 where dropped.
    nonfinite_per_chan : numpy.ndarray
        ``(nchan,)`` int64 visibilities dropped only because a parallel hand was NaN or
        infinite (those already dropped for flags or weights are not counted), per channel.
    """

    row_start: int
    uvw_m: np.ndarray
    vis: np.ndarray
    weight: np.ndarray
    nonfinite_per_chan: np.ndarray

    @property
    def n_nonfinite(self) -> int:
        """Visibilities of the chunk dropped only because a hand was NaN or infinite."""
        return int(self.nonfinite_per_chan.sum())


def open_ms_table(path: Path) -> tables.table:
    """Open the main table of a Measurement Set read-only, after checking it is one.

    Parameters
    ----------
    path : Path
        The Measurement Set directory.

    Returns
    -------
    casacore.tables.table
        The open main table; use it as a context manager so that it is closed.

    Raises
    ------
    InputError
        If the path does not exist, is not a casacore table, or lacks the main-table columns
        or the subtables of a Measurement Set.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"Measurement Set {path} does not exist")
    if not tables.tableexists(str(path)):
        raise InputError(f"{path} is not a Measurement Set: not a casacore table")
    ms = tables.table(str(path), readonly=True, ack=False)
    missing = [c for c in _REQUIRED_COLUMNS if c not in ms.colnames()]
    if missing:
        ms.close()
        raise InputError(f"{path} is not a Measurement Set: no {', '.join(missing)} column")
    missing = [s for s in _REQUIRED_SUBTABLES if not tables.tableexists(str(path / s))]
    if missing:
        ms.close()
        raise InputError(f"{path} is not a Measurement Set: no {', '.join(missing)} table")
    return ms


def feed_type(corr_types: Sequence[str]) -> str | None:
    """The feed type whose two parallel hands are both among the correlations.

    Parameters
    ----------
    corr_types : sequence of str
        Correlation names, e.g. ``("XX", "YY", "XY", "YX")``.

    Returns
    -------
    str or None
        ``"circular"`` (RR and LL present), ``"linear"`` (XX and YY present), or None.
    """
    for feed, (hand_a, hand_b) in _PARALLEL_HANDS.items():
        if hand_a in corr_types and hand_b in corr_types:
            return feed
    return None


def telescope_name(path: Path) -> str:
    """TELESCOPE_NAME of the first OBSERVATION row of a Measurement Set.

    Parameters
    ----------
    path : Path
        The Measurement Set directory.

    Returns
    -------
    str
        The name, or "" when there is no OBSERVATION table or it has no rows.
    """
    path = Path(path)
    obs_path = path / "OBSERVATION"
    if not tables.tableexists(str(obs_path)):
        return ""
    with tables.table(str(obs_path), readonly=True, ack=False) as obs:
        return str(obs.getcell("TELESCOPE_NAME", 0)) if obs.nrows() else ""


def open_ms(cfg: ReadConfig) -> MSMeta:
    """Check the Measurement Set against the read configuration and describe the selection.

    Parameters
    ----------
    cfg : ReadConfig
        Path, data column, field (id as text, or name), spectral window and channel range.

    Returns
    -------
    MSMeta
        The selection: phase centre, frequencies, correlations, row count and time range.

    Raises
    ------
    InputError
        If the path is missing or not a Measurement Set, the data column is absent or empty,
        the field, spectral window or channel range does not exist, the spectral window has
        no parallel-hand correlations, or no cross-correlation rows are selected.
    """
    path = Path(cfg.ms)
    with open_ms_table(path) as ms:
        _check_data_column(ms, path, cfg.data_column)
        field_id, field_name, phase_centre_rad = _select_field(path, cfg.field)
        freq_hz, chan_width_hz = _select_channels(path, cfg)
        corr_types = _corr_types(path, cfg.spw)
        feed = feed_type(corr_types)
        if feed is None:
            raise InputError(
                f"no parallel-hand correlations (RR and LL, or XX and YY) in spw {cfg.spw} "
                f"of {path}: CORR_TYPE is {' '.join(corr_types)}"
            )
        with _query(ms, path, field_id, cfg.spw) as sel:
            nrow = sel.nrows()
            if nrow == 0:
                raise InputError(
                    f"no cross-correlation rows in {path} for field {field_id} "
                    f"({field_name}) and spw {cfg.spw}"
                )
            if not sel.iscelldefined(cfg.data_column, 0):
                raise InputError(f"column {cfg.data_column} in {path} holds no data")
            time_rows = cfg.chunk_rows or cfg.chunk_mb * _MIB // 8  # TIME: 8 bytes a row
            time_range_s = _time_range_s(sel, time_rows)
        fingerprint = {
            "path": str(path.resolve()),
            "nrow": ms.nrows(),
            "data_shape": list(ms.getcell(cfg.data_column, 0).shape)
            if ms.iscelldefined(cfg.data_column, 0)
            else [],
            "mtime": _mtime_s(path),
        }
    return MSMeta(
        path=path,
        data_column=cfg.data_column,
        field_id=field_id,
        field_name=field_name,
        phase_centre_rad=phase_centre_rad,
        spw=cfg.spw,
        freq_hz=freq_hz,
        chan_width_hz=chan_width_hz,
        feed=feed,
        corr_types=corr_types,
        nrow=nrow,
        telescope=telescope_name(path),
        time_range_s=time_range_s,
        fingerprint=fingerprint,
    )


def rows_per_chunk(
    chunk_mb: int, *, nchan: int, ncorr: int, data_bytes: int, weight_spectrum: bool
) -> int:
    """Rows of a read chunk of ``chunk_mb`` MiB.

    A row costs its whole data, FLAG (1 byte) and weight (float32; WEIGHT_SPECTRUM per
    channel when the column exists, else WEIGHT per correlation) cells, its UVW (3 float64)
    and FLAG_ROW (1 byte): what :func:`iter_chunks` reads before selecting channels. The
    Stokes I arrays of a chunk are a fraction of that (2 of ``ncorr`` correlations).

    Parameters
    ----------
    chunk_mb : int
        The chunk's size, MiB.
    nchan, ncorr : int
        Channels of the spectral window and correlations: the shape of a data cell.
    data_bytes : int
        Bytes of one visibility of the data column (8 for complex, 16 for dcomplex).
    weight_spectrum : bool
        Whether the WEIGHT_SPECTRUM column exists.

    Returns
    -------
    int
        Rows per chunk, at least 1.

    Examples
    --------
    >>> rows_per_chunk(256, nchan=4, ncorr=4, data_bytes=8, weight_spectrum=False)
    1451002
    >>> rows_per_chunk(1, nchan=65536, ncorr=4, data_bytes=8, weight_spectrum=True)
    1
    """
    weight_bytes = nchan * ncorr * 4 if weight_spectrum else ncorr * 4
    row_bytes = nchan * ncorr * (data_bytes + 1) + weight_bytes + 3 * 8 + 1
    return max(1, chunk_mb * _MIB // row_bytes)


def iter_chunks(
    meta: MSMeta, cfg: ReadConfig, *, precision: Precision = "single"
) -> Iterator[VisChunk]:
    """Stream Stokes I and its weight over the selected rows, a chunk at a time.

    Parameters
    ----------
    meta : MSMeta
        The selection, from :func:`open_ms` with the same ``cfg``.
    cfg : ReadConfig
        Supplies ``chunk_rows`` (or, when None, ``chunk_mb``, see :func:`rows_per_chunk`)
        and ``chan_start``.
    precision : {"single", "double"}
        complex64/float32 or complex128/float64 output.

    Yields
    ------
    VisChunk
        Consecutive chunks covering rows ``0 .. meta.nrow - 1`` of the selection in table
        order.

    Raises
    ------
    ValueError
        If ``precision`` is not one of the two allowed values.
    """
    if precision not in _DTYPES:
        raise ValueError(f"precision must be one of {sorted(_DTYPES)}, got {precision!r}")
    hand_a, hand_b = (meta.corr_types.index(h) for h in _PARALLEL_HANDS[meta.feed])
    chans = slice(cfg.chan_start, cfg.chan_start + len(meta.freq_hz))
    with open_ms_table(meta.path) as ms, _query(ms, meta.path, meta.field_id, meta.spw) as sel:
        has_spectrum = "WEIGHT_SPECTRUM" in sel.colnames()
        cell = sel.getcell(meta.data_column, 0)  # (nchan_spw, ncorr)
        step = cfg.chunk_rows or rows_per_chunk(
            cfg.chunk_mb,
            nchan=cell.shape[0],
            ncorr=cell.shape[1],
            data_bytes=cell.dtype.itemsize,
            weight_spectrum=has_spectrum,
        )
        for start in range(0, sel.nrows(), step):
            n = min(step, sel.nrows() - start)
            rows = slice(start, start + n)
            yield _read_chunk(sel, meta, chans, rows, has_spectrum, (hand_a, hand_b), precision)


def _read_chunk(
    sel: tables.table,
    meta: MSMeta,
    chans: slice,
    rows: slice,
    has_spectrum: bool,
    hands: tuple[int, int],
    precision: Precision,
) -> VisChunk:
    """Rows ``rows`` of the selection, channels ``chans``, as Stokes I.

    The whole cells read here are released on return, before the next chunk is read.
    """
    start, n = rows.start, rows.stop - rows.start
    # whole cells, sliced here: getcolslice across rows grows casacore's tile cache to the
    # size of the column
    data = sel.getcol(meta.data_column, startrow=start, nrow=n)[:, chans]  # (n, nchan, ncorr)
    flag = sel.getcol("FLAG", startrow=start, nrow=n)[:, chans]  # (n, nchan, ncorr)
    flag_row = sel.getcol("FLAG_ROW", startrow=start, nrow=n)  # (n,)
    weight = _weights(sel, has_spectrum, chans, start, n)  # (n, nchan, ncorr)
    vis_i, weight_i, nonfinite = _stokes_i(data, flag, flag_row, weight, hands, precision)
    return VisChunk(
        row_start=start,
        uvw_m=sel.getcol("UVW", startrow=start, nrow=n).astype(np.float64),
        vis=vis_i,
        weight=weight_i,
        nonfinite_per_chan=nonfinite,
    )


def _stokes_i(
    data: np.ndarray,
    flag: np.ndarray,
    flag_row: np.ndarray,
    weight: np.ndarray,
    hands: tuple[int, int],
    precision: Precision,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stokes I, its weight and the NaN/inf count per channel of ``(n, nchan, ncorr)`` cells.

    Worked through in blocks of :data:`_STOKES_BLOCK_ROWS` rows so that the temporaries stay
    small and are reused rather than allocated at the size of the chunk.

    Returns
    -------
    vis, weight, nonfinite : numpy.ndarray
        ``(n, nchan)`` Stokes I (Jy) and its weight (Jy^-2), 0 where dropped, and ``(nchan,)``
        int64 counts of visibilities dropped only for a NaN or infinite hand.
    """
    vis_dtype, weight_dtype = _DTYPES[precision]
    n, nchan = data.shape[:2]
    a, b = hands
    vis_i = np.empty((n, nchan), dtype=vis_dtype)
    weight_i = np.empty((n, nchan), dtype=weight_dtype)
    nonfinite = np.zeros(nchan, dtype=np.int64)
    for start in range(0, n, _STOKES_BLOCK_ROWS):
        rows = slice(start, min(n, start + _STOKES_BLOCK_ROWS))
        vis_a = data[rows, :, a].astype(vis_dtype)  # (m, nchan)
        vis_b = data[rows, :, b].astype(vis_dtype)
        w_a = weight[rows, :, a].astype(weight_dtype)
        w_b = weight[rows, :, b].astype(weight_dtype)
        finite = np.isfinite(vis_a) & np.isfinite(vis_b)
        usable = (
            ~flag[rows, :, a]
            & ~flag[rows, :, b]
            & ~flag_row[rows, None]
            & np.isfinite(w_a)
            & np.isfinite(w_b)
            & (w_a > 0)
            & (w_b > 0)
        )
        drop = ~(usable & finite)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            np.multiply(vis_a + vis_b, 0.5, out=vis_i[rows])
            np.divide(4, 1 / w_a + 1 / w_b, out=weight_i[rows])
        vis_i[rows][drop] = 0
        weight_i[rows][drop] = 0
        nonfinite += np.count_nonzero(usable & ~finite, axis=0)
    return vis_i, weight_i, nonfinite


def _weights(sel: tables.table, has_spectrum: bool, chans: slice, start: int, n: int) -> np.ndarray:
    """``(n, nchan, ncorr)`` weights: WEIGHT_SPECTRUM when it holds data, else WEIGHT."""
    if has_spectrum and sel.iscelldefined("WEIGHT_SPECTRUM", start):
        try:
            return sel.getcol("WEIGHT_SPECTRUM", startrow=start, nrow=n)[:, chans]
        except RuntimeError:  # some rows of the chunk have no cell
            pass
    weight = sel.getcol("WEIGHT", startrow=start, nrow=n)  # (n, ncorr)
    nchan = chans.stop - chans.start
    return np.broadcast_to(weight[:, None, :], (n, nchan, weight.shape[1]))


def _query(ms: tables.table, path: Path, field_id: int, spw: int) -> tables.table:
    """The selected rows: one field, the spectral window's data descriptions, no autos."""
    with tables.table(str(path / "DATA_DESCRIPTION"), readonly=True, ack=False) as dd:
        dd_ids = np.flatnonzero(dd.getcol("SPECTRAL_WINDOW_ID") == spw).tolist()
    return ms.query(f"FIELD_ID == {field_id} && DATA_DESC_ID IN {dd_ids} && ANTENNA1 != ANTENNA2")


def _check_data_column(ms: tables.table, path: Path, column: str) -> None:
    """Raise unless ``column`` is a complex array column of the main table."""
    available = [
        c
        for c in ms.colnames()
        if ms.getcoldesc(c).get("valueType") in ("complex", "dcomplex")
        and ms.getcoldesc(c).get("ndim", 0) != 0
    ]
    if column not in available:
        raise InputError(
            f"column {column} not in {path}; available: {', '.join(available) or 'none'}"
        )


def _select_field(path: Path, field: str) -> tuple[int, str, tuple[float, float]]:
    """FIELD id, name and phase centre ``(ra, dec)`` in radians of ``field`` (id or name)."""
    with tables.table(str(path / "FIELD"), readonly=True, ack=False) as ft:
        names = list(ft.getcol("NAME")) if ft.nrows() else []
        listing = ", ".join(f"{i}={name}" for i, name in enumerate(names)) or "none"
        text = field.strip()
        if text.lstrip("-").isdigit():
            field_id = int(text)
            if not 0 <= field_id < len(names):
                raise InputError(f"field {field_id} out of range in {path}; fields: {listing}")
        elif text in names:
            field_id = names.index(text)
        else:
            raise InputError(f"field {text!r} not in {path}; fields: {listing}")
        phase_dir = ft.getcell("PHASE_DIR", field_id)  # (npoly + 1, 2)
    return field_id, names[field_id], (float(phase_dir[0, 0]), float(phase_dir[0, 1]))


def _select_channels(path: Path, cfg: ReadConfig) -> tuple[np.ndarray, np.ndarray]:
    """CHAN_FREQ and CHAN_WIDTH, Hz, of channels ``[chan_start, chan_stop)`` of the spw."""
    with tables.table(str(path / "SPECTRAL_WINDOW"), readonly=True, ack=False) as spw_table:
        nspw = spw_table.nrows()
        if not 0 <= cfg.spw < nspw:
            raise InputError(
                f"spw {cfg.spw} out of range: {path} has {nspw} spectral window(s), 0..{nspw - 1}"
            )
        freq_hz = np.asarray(spw_table.getcell("CHAN_FREQ", cfg.spw), dtype=np.float64)
        width_hz = np.asarray(spw_table.getcell("CHAN_WIDTH", cfg.spw), dtype=np.float64)
    nchan = freq_hz.size
    stop = nchan if cfg.chan_stop is None else cfg.chan_stop
    if not 0 <= cfg.chan_start < stop <= nchan:
        raise InputError(
            f"channel range [{cfg.chan_start}, {stop}) is empty or outside spw {cfg.spw}, "
            f"which has channels 0..{nchan - 1}"
        )
    return freq_hz[cfg.chan_start : stop], width_hz[cfg.chan_start : stop]


def _corr_types(path: Path, spw: int) -> tuple[str, ...]:
    """Correlation names of the spectral window, the same for all its data descriptions."""
    with (
        tables.table(str(path / "DATA_DESCRIPTION"), readonly=True, ack=False) as dd,
        tables.table(str(path / "POLARIZATION"), readonly=True, ack=False) as pol,
    ):
        pol_ids = dd.getcol("POLARIZATION_ID")[dd.getcol("SPECTRAL_WINDOW_ID") == spw]
        setups = {
            tuple(CORR_TYPE_NAMES.get(int(c), str(c)) for c in pol.getcell("CORR_TYPE", int(p)))
            for p in pol_ids
        }
    if not setups:
        raise InputError(f"no data description in {path} refers to spw {spw}")
    if len(setups) > 1:
        listed = "; ".join(" ".join(s) for s in sorted(setups))
        raise InputError(f"spw {spw} of {path} mixes correlation setups: {listed}")
    return setups.pop()


def _time_range_s(sel: tables.table, chunk_rows: int) -> tuple[float, float]:
    """First and last TIME of the selected rows, MJD seconds, read in chunks."""
    t_min, t_max = np.inf, -np.inf
    for start in range(0, sel.nrows(), chunk_rows):
        time_s = sel.getcol("TIME", startrow=start, nrow=min(chunk_rows, sel.nrows() - start))
        t_min, t_max = min(t_min, float(time_s.min())), max(t_max, float(time_s.max()))
    return t_min, t_max


def _mtime_s(path: Path) -> float:
    """Latest modification time of the main table's files (not its lock file)."""
    files = [f for f in path.glob("table.*") if f.name != "table.lock"]
    return max((f.stat().st_mtime for f in files), default=path.stat().st_mtime)
