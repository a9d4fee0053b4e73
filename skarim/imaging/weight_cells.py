"""The occupied cells of a uv weight grid: a sorted table of flat cell indices and values.

A :class:`~skarim.imaging.weighting.WeightGrid` keeps only the cells that visibilities fell
in, so its memory follows the number of occupied cells, never the image area. A cell is the
flat index ``y * nx + x`` into the ``(nrows, nx)`` half-plane grid; the table holds the cells
sorted and unique, with one float64 value each, and every cell not in the table holds one
common value ``empty`` (0 for weight sums and uniform factors, 1 for Briggs factors). This
module finds the cell of each visibility (:func:`visibility_cells`, WSClean's conventions as
:mod:`skarim.imaging.weighting` describes them), merges chunks into the table, looks cells
up, and computes the window sums of WSClean's rank filter at any cells without building the
grid:

- the queried cells are taken in bands of rows. A band whose queried cells are dense enough
  (at least one per :data:`DENSE_RATIO` cells of its buffer) is filled into a dense buffer of
  the band's rows plus the window's margin, at most ``(band + size) x nx`` cells
  (:data:`BAND_CELLS`), and summed as a dense grid is: along v, then along u;
- the other cells are summed over the table directly: for each row of the window, two binary
  searches find its stored cells, a slice of the table summed in order, and the window's
  cells not stored count as ``empty``.

Both give the dense grid's sums to float round-off; their cost follows the occupied cells,
and their memory the band and the occupied cells.
"""

from __future__ import annotations

import numpy as np

from skarim.constants import SPEED_OF_LIGHT_M_S
from skarim.errors import InputError

__all__ = [
    "BAND_CELLS",
    "DENSE_RATIO",
    "add_cells",
    "chunk_cell_sums",
    "find_cells",
    "visibility_cells",
    "window_sums",
]

BAND_CELLS = 2**20
"""Grid cells per band of rows (at least one row) summed on a dense buffer, margin apart."""

DENSE_RATIO = 128
"""A band is summed on a dense buffer when it holds a queried cell per this many buffer cells."""

_SPARSE_QUERIES = 2**18
"""Queried cells summed together over the table, which bounds its temporaries."""


def visibility_cells(
    uvw_m: np.ndarray, freq_hz: np.ndarray, weight: np.ndarray, nx: int, ny: int, cell_rad: float
) -> tuple[np.ndarray, np.ndarray]:
    """Flat half-plane cell of every visibility inside an ``nx x ny`` weight grid.

    Parameters
    ----------
    uvw_m : numpy.ndarray
        ``(nrow, 3)`` UVW coordinates in metres.
    freq_hz : numpy.ndarray
        ``(nchan,)`` channel frequencies in Hz.
    weight : numpy.ndarray
        ``(nrow, nchan)`` weights (only their shape is used).
    nx, ny : int
        Grid size in cells (the padded image); the half plane is ``(ny // 2, nx)``.
    cell_rad : float
        Image pixel size in radians.

    Returns
    -------
    cell : numpy.ndarray
        ``(ninside,)`` int64 indices into the flattened ``(ny // 2, nx)`` grid.
    inside : numpy.ndarray
        ``(nrow, nchan)`` bool, True where the visibility falls on the grid.

    Raises
    ------
    InputError
        If the shapes of ``uvw_m``, ``freq_hz`` and ``weight`` disagree.
    """
    uvw_m = np.asarray(uvw_m, dtype=np.float64)
    freq_hz = np.asarray(freq_hz, dtype=np.float64)
    nrow, nchan = len(uvw_m), len(freq_hz)
    if uvw_m.shape != (nrow, 3) or np.shape(weight) != (nrow, nchan):
        raise InputError(
            f"expected uvw (nrow, 3) and weight (nrow, {nchan}), "
            f"got {uvw_m.shape} and {np.shape(weight)}"
        )
    wavelength_m = SPEED_OF_LIGHT_M_S / freq_hz  # (nchan,)
    x = uvw_m[:, 0:1] / wavelength_m  # (nrow, nchan) u in wavelengths, becomes x
    y = uvw_m[:, 1:2] / wavelength_m  # (nrow, nchan) v in wavelengths, becomes y
    lower = y < 0.0  # reflect onto the v >= 0 half plane
    np.negative(x, out=x, where=lower)
    np.negative(y, out=y, where=lower)
    # floor(u * nx * cell + nx / 2) and floor(v * ny * cell), in WSClean's order
    x *= nx
    x *= cell_rad
    x += nx // 2
    np.floor(x, out=x)
    y *= ny
    y *= cell_rad
    np.floor(y, out=y)
    inside = (x >= 0) & (x < nx) & (y < ny // 2)
    cell = y[inside].astype(np.int64) * nx + x[inside].astype(np.int64)
    return cell, inside


def chunk_cell_sums(cell: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cells a chunk of visibilities fell in and the sum of their weights in each.

    The sums add each cell's weights in the chunk's order (``np.bincount``), as a dense grid
    does. Cells whose weights are all 0 may be left out: adding them changes nothing.

    Parameters
    ----------
    cell : numpy.ndarray
        ``(nvis,)`` int64 flat cell of each visibility.
    weight : numpy.ndarray
        ``(nvis,)`` float64 natural weights, weight units.

    Returns
    -------
    cells, sums : numpy.ndarray
        ``(ncell,)`` sorted unique int64 cells and ``(ncell,)`` float64 sums.
    """
    if cell.size == 0:
        return np.empty(0, np.int64), np.empty(0)
    lo, hi = int(cell.min()), int(cell.max()) + 1
    if hi - lo <= 2 * cell.size:  # a dense span no larger than twice the chunk
        sums = np.bincount(cell - lo, weights=weight, minlength=hi - lo)
        at = np.flatnonzero(sums)
        return at + lo, sums[at]
    keep = weight != 0.0
    cells, inverse = np.unique(cell[keep], return_inverse=True)
    return cells, np.bincount(inverse, weights=weight[keep], minlength=len(cells))


def add_cells(
    cells: np.ndarray, values: np.ndarray, new_cells: np.ndarray, new_values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Merge a sorted unique table of cells into another, adding the values of shared cells.

    Parameters
    ----------
    cells, values : numpy.ndarray
        The table: ``(n,)`` sorted unique int64 cells and their float64 values; ``values``
        is updated in place where a cell is in both tables.
    new_cells, new_values : numpy.ndarray
        ``(m,)`` sorted unique int64 cells and their values to add.

    Returns
    -------
    cells, values : numpy.ndarray
        ``(n + m - shared,)`` the merged table, sorted and unique.
    """
    pos = np.searchsorted(cells, new_cells)
    found = _is_at(cells, pos, new_cells)
    values[pos[found]] += new_values[found]
    fresh = ~found
    if fresh.any():
        cells = np.insert(cells, pos[fresh], new_cells[fresh])
        values = np.insert(values, pos[fresh], new_values[fresh])
    return cells, values


def find_cells(cells: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each queried cell is in a sorted table, and whether it is there.

    Queries spanning few cells are looked up on a dense index of their span (at most two
    entries per query); others by binary search in sorted order.

    Parameters
    ----------
    cells : numpy.ndarray
        ``(n,)`` sorted unique int64 cells.
    query : numpy.ndarray
        ``(nq,)`` int64 cells.

    Returns
    -------
    pos : numpy.ndarray
        ``(nq,)`` int64 position of each queried cell in ``cells``, where found.
    found : numpy.ndarray
        ``(nq,)`` bool, True where ``cells[pos] == query``.
    """
    if query.size == 0:
        return np.empty(0, np.int64), np.empty(0, bool)
    lo, hi = int(query.min()), int(query.max()) + 1
    if hi - lo <= 2 * query.size:
        a, b = np.searchsorted(cells, [lo, hi])
        index = np.full(hi - lo, -1, np.int64)  # position of each cell of the span, or -1
        index[cells[a:b] - lo] = np.arange(a, b)
        pos = index[query - lo]
        return pos, pos >= 0
    order = np.argsort(query)
    pos = np.empty(query.shape, np.int64)
    pos[order] = np.searchsorted(cells, query[order])
    return pos, _is_at(cells, pos, query)


def _is_at(cells: np.ndarray, pos: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Whether ``cells[pos] == query``, False where ``pos`` is past the end."""
    found = pos < len(cells)
    found[found] = cells[pos[found]] == query[found]
    return found


def window_sums(
    cells: np.ndarray,
    values: np.ndarray,
    empty: float,
    shape: tuple[int, int],
    half: int,
    query: np.ndarray,
    dense_ratio: float = DENSE_RATIO,
) -> tuple[np.ndarray, np.ndarray]:
    """Sum and number of nonzero values in the window of each queried cell.

    The grid holds ``values`` at ``cells`` and ``empty`` everywhere else; the window of cell
    ``(y, x)`` is ``[y - half, y + half) x [x - half, x + half)``, clipped to the grid.

    Parameters
    ----------
    cells, values : numpy.ndarray
        ``(n,)`` sorted unique int64 cells and their float64 values.
    empty : float
        Value of every cell not in ``cells``.
    shape : tuple of int
        ``(nrows, nx)`` of the grid.
    half : int
        Half the window side, cells (> 0).
    query : numpy.ndarray
        ``(nq,)`` sorted unique int64 cells.
    dense_ratio : float
        A band is summed on a dense buffer when it has at most this many buffer cells per
        queried cell (:data:`DENSE_RATIO`; 0: never, ``inf``: always).

    Returns
    -------
    sums, counts : numpy.ndarray
        ``(nq,)`` float64 sums of the window's values and numbers of its nonzero values.
    """
    nrows, nx = shape
    sums, counts = np.zeros(len(query)), np.zeros(len(query))
    if len(query) == 0:  # no cell to filter (every visibility flagged)
        return sums, counts
    band = max(1, BAND_CELLS // nx)
    band_of = query // (band * nx)  # (nq,) nondecreasing
    starts = np.flatnonzero(np.diff(band_of, prepend=-1))
    sparse = []
    for a, b in zip(starts, [*starts[1:], len(query)], strict=True):
        y0 = int(band_of[a]) * band
        y1 = min(y0 + band, nrows)
        x = query[a:b] % nx
        box = (
            max(y0 - half, 0),
            min(y1 - 1 + half, nrows),
            max(int(x.min()) - half, 0),
            min(int(x.max()) + half, nx),
        )
        if (box[1] - box[0]) * (box[3] - box[2]) <= dense_ratio * (b - a):
            sums[a:b], counts[a:b] = _dense_band(
                cells, values, empty, shape, half, query[a:b], (y0, y1), box
            )
        else:
            sparse.append(np.arange(a, b))
    at = np.concatenate(sparse) if sparse else np.empty(0, np.int64)
    for s in range(0, len(at), _SPARSE_QUERIES):
        part = at[s : s + _SPARSE_QUERIES]
        sums[part], counts[part] = _sparse_sums(cells, values, empty, shape, half, query[part])
    return sums, counts


def _dense_band(
    cells: np.ndarray,
    values: np.ndarray,
    empty: float,
    shape: tuple[int, int],
    half: int,
    query: np.ndarray,
    rows: tuple[int, int],
    box: tuple[int, int, int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Window sums of the queried cells of rows ``[y0, y1)`` on a dense buffer.

    ``box = (r0, r1, c0, c1)`` is the part of the grid their windows cover.
    """
    nrows, nx = shape
    (y0, y1), (r0, r1, c0, c1) = rows, box
    lo, hi = np.searchsorted(cells, [r0 * nx, r1 * nx])
    y, x = np.divmod(cells[lo:hi], nx)
    inside = (x >= c0) & (x < c1)
    buf = np.full((r1 - r0, c1 - c0), empty)  # (rows, columns) of the box
    buf[y[inside] - r0, x[inside] - c0] = values[lo:hi][inside]
    band_rows = np.arange(y0, y1)
    top, bottom = np.maximum(band_rows - half, 0) - r0, np.minimum(band_rows + half, nrows) - r0
    qy, qx = np.divmod(query, nx)
    left, right = np.maximum(qx - half, 0) - c0, np.minimum(qx + half, nx) - c0
    out = []
    for a in (buf, (buf != 0.0).astype(np.float64)):
        down = np.zeros((r1 - r0 + 1, c1 - c0))
        np.cumsum(a, axis=0, out=down[1:])
        strip = down[bottom] - down[top]  # (y1 - y0, columns): sums over the window's rows
        across = np.zeros((y1 - y0, c1 - c0 + 1))
        np.cumsum(strip, axis=1, out=across[:, 1:])
        out.append(across[qy - y0, right] - across[qy - y0, left])
    return out[0], out[1]


def _sparse_sums(
    cells: np.ndarray,
    values: np.ndarray,
    empty: float,
    shape: tuple[int, int],
    half: int,
    query: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Window sums of the queried cells, row by row of the window over the table."""
    nrows, nx = shape
    qy, qx = np.divmod(query, nx)
    left, right = np.maximum(qx - half, 0), np.minimum(qx + half, nx)
    area = (np.minimum(qy + half, nrows) - np.maximum(qy - half, 0)) * (right - left)
    padded = np.append(values, 0.0)  # reduceat may start a (discarded) sum at the end
    nonzero = (padded != 0.0).astype(np.float64)
    sums, counts = np.zeros(len(query)), np.zeros(len(query))
    stored = np.zeros(len(query), np.int64)
    bounds = np.empty(2 * len(query), np.int64)
    for dy in range(-half, half):
        row = (qy + dy) * nx  # a row beyond the grid finds no cell: its keys are < 0 or > all
        bounds[0::2] = np.searchsorted(cells, row + left)  # stored cells [first, end) of the
        bounds[1::2] = np.searchsorted(cells, row + right)  # window's row, in the table
        n = bounds[1::2] - bounds[0::2]  # (nq,) at most 2 * half
        stored += n
        sums += np.where(n > 0, np.add.reduceat(padded, bounds)[0::2], 0.0)
        counts += np.where(n > 0, np.add.reduceat(nonzero, bounds)[0::2], 0.0)
    unstored = area - stored
    return sums + unstored * empty, counts + unstored * float(empty != 0.0)
