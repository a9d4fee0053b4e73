"""The main table of a new Measurement Set: fixed-shape columns in tiled storage.

:func:`main_table_desc` describes the columns (``[nchan, ncorr]`` cells of ``DATA``, ``FLAG``
and the like in ``TiledColumnStMan`` tiles of about 1 MiB) and :func:`put_rows` fills them in
chunks of rows, so that no column is converted whole to its stored dtype at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import casacore.tables as pt
import numpy as np

__all__ = ["STORED_DTYPES", "MainColumn", "main_table_desc", "put_rows"]

_TILE_BYTES = 1 << 20  # bytes per tile of the tiled columns
_CHUNK_BYTES = 1 << 26  # bytes of visibilities per putcol
#: dtype given -> dtype stored, for the columns of a caller's own dtype
STORED_DTYPES = {np.dtype(np.int64): np.dtype(np.int32)} | {
    np.dtype(t): np.dtype(t)
    for t in (np.complex64, np.complex128, np.float32, np.float64, np.int32, np.bool_)
}
# the casacore value type of each stored dtype
_CASA_VALUE_TYPES = {
    np.dtype(np.complex64): "complex",
    np.dtype(np.complex128): "dcomplex",
    np.dtype(np.float32): "float",
    np.dtype(np.float64): "double",
    np.dtype(np.int32): "int",
    np.dtype(np.bool_): "boolean",
}


@dataclass(frozen=True)
class MainColumn:
    """A main-table column of fixed-shape cells.

    Attributes
    ----------
    values : numpy.ndarray or None
        ``(nrow, ...)`` the caller's rows; None for a column of zeros.
    dtype : numpy.dtype
        The stored dtype, a key of the casacore value types (see :data:`STORED_DTYPES`).
    zero_cell : tuple of int
        Shape of one row's cell when ``values`` is None.
    """

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


def main_table_desc(columns: Mapping[str, MainColumn], nrow: int, ncorr: int) -> tuple[dict, dict]:
    """Table description and data-manager info of the fixed-shape main-table columns.

    Parameters
    ----------
    columns : mapping of str to MainColumn
        The columns of the caller's own dtype and cell shape, each in its own tiled storage
        manager (a scalar column in the default one).
    nrow : int
        Rows of the main table (a tile holds no more).
    ncorr : int
        Correlations: the cell of ``WEIGHT`` and ``SIGMA``.

    Returns
    -------
    tabledesc, dminfo : dict
        For :func:`casacore.tables.default_ms`, which adds the other standard columns.
    """
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


def put_rows(
    ms: pt.table,
    rows: Mapping[str, np.ndarray],
    columns: Mapping[str, MainColumn],
    exposure_s: float,
) -> None:
    """Fill the main table in chunks of rows, converting each chunk to the stored dtype.

    Parameters
    ----------
    ms : casacore.tables.table
        The main table, open for writing, with its rows added.
    rows : mapping of str to numpy.ndarray
        Per-row columns already in their stored dtype, ``(nrow, ...)``: ``TIME`` and
        ``WEIGHT`` (Jy^-2, from which ``SIGMA = 1 / sqrt(WEIGHT)`` in Jy) among them.
    columns : mapping of str to MainColumn
        The columns of :func:`main_table_desc`, converted a chunk at a time.
    exposure_s : float
        ``INTERVAL`` and ``EXPOSURE``, s.
    """
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
