"""The read stage's selection from a Measurement Set, and its description.

The selection is one field, one spectral window, a range of its channels and the
cross-correlation rows. :func:`open_ms` checks the Measurement Set against a
:class:`~skarim.config.ReadConfig` and describes the selection (:class:`MSMeta`) from its
subtables (:mod:`skarim.io.ms_tables`); :func:`select_rows` queries the selected rows of the
main table, and :func:`selected_rows` opens them for the readers of a described selection.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from casacore import tables

from skarim.config import ReadConfig
from skarim.errors import InputError
from skarim.io.correlations import feed_type
from skarim.io.ms_tables import (
    data_columns,
    open_ms_table,
    read_data_descriptions,
    read_fields,
    read_polarizations,
    read_spectral_windows,
    telescope_name,
)

__all__ = ["MSMeta", "open_ms", "select_rows", "selected_rows"]

_MIB = 2**20
_OPENED_KEPT = 4  # selections :func:`open_ms` keeps per process
_OPENED: OrderedDict[tuple[ReadConfig, tuple[int, int, int]], MSMeta] = OrderedDict()


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
        ``(nchan,)`` CHAN_FREQ of the selected channels, Hz (read-only).
    chan_width_hz : numpy.ndarray
        ``(nchan,)`` CHAN_WIDTH of the selected channels, Hz (read-only).
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
    whole_table : bool
        Whether the selection is every row of the main table: :func:`selected_rows` then
        reads the table itself, with no query.
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
    whole_table: bool = False


def open_ms(cfg: ReadConfig) -> MSMeta:
    """Check the Measurement Set against the read configuration and describe the selection.

    A process asked again for the same selection of an unchanged Measurement Set (none of
    its tables' files modified since) is answered from memory: the driver and the
    in-process tasks of a run, or one worker's tasks, select and scan the rows once.

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
    key = (cfg, _tables_state(Path(cfg.ms)))
    if key in _OPENED:
        _OPENED.move_to_end(key)
        return _OPENED[key]
    meta = _describe(cfg)
    _OPENED[key] = meta
    while len(_OPENED) > _OPENED_KEPT:
        _OPENED.popitem(last=False)
    return meta


def _tables_state(path: Path) -> tuple[int, int, int]:
    """``(files, total bytes, latest mtime ns)`` of the files of every table of an MS (the
    lock files left out): any write to the main table or a subtable changes it."""
    stats = [f.stat() for f in path.glob("**/table.*") if f.name != "table.lock"]
    return (
        len(stats),
        sum(st.st_size for st in stats),
        max((st.st_mtime_ns for st in stats), default=0),
    )


def _describe(cfg: ReadConfig) -> MSMeta:
    """:func:`open_ms` from the tables."""
    path = Path(cfg.ms)
    with open_ms_table(path) as ms:
        column = _data_column(ms, path, cfg.data_column)
        field_id, field_name, phase_centre_rad = _select_field(path, cfg.field)
        freq_hz, chan_width_hz = _select_channels(path, cfg)  # read-only: the meta is shared
        corr_types = _corr_types(path, cfg.spw)
        feed = feed_type(corr_types)
        if feed is None:
            raise InputError(
                f"no parallel-hand correlations (RR and LL, or XX and YY) in spw {cfg.spw} "
                f"of {path}: CORR_TYPE is {' '.join(corr_types)}"
            )
        with select_rows(ms, path, field_id, cfg.spw) as sel:
            nrow = sel.nrows()
            if nrow == 0:
                raise InputError(
                    f"no cross-correlation rows in {path} for field {field_id} "
                    f"({field_name}) and spw {cfg.spw}"
                )
            if not sel.iscelldefined(column, 0):
                raise InputError(f"column {column} in {path} holds no data")
            time_rows = cfg.chunk_rows or cfg.chunk_mb * _MIB // 8  # TIME: 8 bytes a row
            time_range_s = _time_range_s(sel, time_rows)
        fingerprint = {
            "path": str(path.resolve()),
            "nrow": ms.nrows(),
            "data_shape": list(ms.getcell(column, 0).shape) if ms.iscelldefined(column, 0) else [],
            "mtime": _mtime_s(path),
        }
    return MSMeta(
        path=path,
        data_column=column,
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
        whole_table=nrow == fingerprint["nrow"],
    )


@contextmanager
def selected_rows(meta: MSMeta) -> Iterator[tables.table]:
    """The selection's rows of the main table, open to read, closed on leaving.

    The main table itself when the selection is all of it (``meta.whole_table``): the query
    of :func:`select_rows`, which reads four columns of every row, is then not run.
    """
    with open_ms_table(meta.path) as ms:
        if meta.whole_table:
            yield ms
            return
        with select_rows(ms, meta.path, meta.field_id, meta.spw) as sel:
            yield sel


def select_rows(ms: tables.table, path: Path, field_id: int, spw: int) -> tables.table:
    """The selected rows: one field, the spectral window's data descriptions, no autos.

    Parameters
    ----------
    ms : casacore.tables.table
        The open main table (:func:`open_ms_table`).
    path : Path
        The Measurement Set directory.
    field_id, spw : int
        FIELD and SPECTRAL_WINDOW rows.

    Returns
    -------
    casacore.tables.table
        The selection, in table order; use it as a context manager so that it is closed.
    """
    spw_ids, _ = read_data_descriptions(path)
    dd_ids = np.flatnonzero(spw_ids == spw).tolist()
    return ms.query(f"FIELD_ID == {field_id} && DATA_DESC_ID IN {dd_ids} && ANTENNA1 != ANTENNA2")


def _data_column(ms: tables.table, path: Path, column: str | None) -> str:
    """``column``, or WSClean's default (CORRECTED_DATA if the table has it, else DATA).

    Raises unless it is a complex array column of the main table.
    """
    if column is None:
        column = "CORRECTED_DATA" if "CORRECTED_DATA" in ms.colnames() else "DATA"
    available = data_columns(ms)
    if column not in available:
        raise InputError(
            f"column {column} not in {path}; available: {', '.join(available) or 'none'}"
        )
    return column


def _select_field(path: Path, field: str) -> tuple[int, str, tuple[float, float]]:
    """FIELD id, name and phase centre ``(ra, dec)`` in radians of ``field`` (id or name)."""
    fields = read_fields(path)
    names = [name for name, _ in fields]
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
    name, phase_centre_rad = fields[field_id]
    return field_id, name, phase_centre_rad


def _select_channels(path: Path, cfg: ReadConfig) -> tuple[np.ndarray, np.ndarray]:
    """CHAN_FREQ and CHAN_WIDTH, Hz, of channels ``[chan_start, chan_stop)`` of the spw."""
    windows = read_spectral_windows(path)
    nspw = len(windows)
    if not 0 <= cfg.spw < nspw:
        raise InputError(
            f"spw {cfg.spw} out of range: {path} has {nspw} spectral window(s), 0..{nspw - 1}"
        )
    freq_hz, width_hz = windows[cfg.spw]
    nchan = freq_hz.size
    stop = nchan if cfg.chan_stop is None else cfg.chan_stop
    if not 0 <= cfg.chan_start < stop <= nchan:
        raise InputError(
            f"channel range [{cfg.chan_start}, {stop}) is empty or outside spw {cfg.spw}, "
            f"which has channels 0..{nchan - 1}"
        )
    selected = freq_hz[cfg.chan_start : stop].copy(), width_hz[cfg.chan_start : stop].copy()
    for values in selected:
        values.flags.writeable = False
    return selected


def _corr_types(path: Path, spw: int) -> tuple[str, ...]:
    """Correlation names of the spectral window, the same for all its data descriptions."""
    polarizations = read_polarizations(path)
    spw_ids, pol_ids = read_data_descriptions(path)
    pol_ids = pol_ids[spw_ids == spw]
    if any(not 0 <= p < len(polarizations) for p in pol_ids):
        raise InputError(f"a data description of spw {spw} in {path} has no POLARIZATION row")
    setups = {polarizations[int(p)] for p in pol_ids}
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
