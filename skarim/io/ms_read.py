"""The read stage: Stokes I visibilities and their weights from a Measurement Set.

:func:`iter_chunks` streams the rows that :func:`skarim.io.ms_meta.open_ms` selected (that
field, that spectral window, cross-correlations only) in chunks of ``ReadConfig.chunk_mb``
(:func:`rows_per_chunk`), so the memory of this stage does not grow with the Measurement Set.
A selection read in several chunks whose Stokes I (for the channels read) fits one chunk's
budget is gathered whole (:func:`gathers`, :func:`gather_chunks`): its passes then make one
ducc0 call per channel, not one per chunk, each of which transforms a whole grid.

Stokes I is formed from the two parallel hands named by ``POLARIZATION.CORR_TYPE``:
``I = (XX + YY) / 2`` for linear feeds, ``I = (RR + LL) / 2`` for circular feeds, with weight
``w_I = 4 / (1/w_a + 1/w_b)`` (the inverse of the variance of the mean of two independent
hands). A visibility of I is dropped (weight 0, value 0) when either hand is flagged, when
``FLAG_ROW`` is set, when either weight is not a finite number > 0, or when either hand or
the row's UVW is NaN or infinite (such a row's UVW is read as 0).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
from casacore import tables

from skarim.config import ReadConfig
from skarim.errors import InputError
from skarim.io.correlations import PARALLEL_HANDS
from skarim.io.ms_meta import MSMeta, selected_rows

__all__ = [
    "Precision",
    "VisChunk",
    "check_weights",
    "gather_chunks",
    "gathered_bytes",
    "gathers",
    "iter_chunks",
    "read_step",
    "rows_per_chunk",
]

Precision = Literal["single", "double"]

_DTYPES = {"single": (np.complex64, np.float32), "double": (np.complex128, np.float64)}
_MIB = 2**20
_STOKES_BLOCK_ROWS = 16_384
_PROBE_ROWS = 1024  # the first read of check_weights: a healthy selection answers there


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
        ``(nchan,)`` int64 visibilities dropped only because a parallel hand or the row's UVW
        was NaN or infinite (those already dropped for flags or weights are not counted), per
        channel.
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


def gathered_bytes(nrow: int, nchan: int, precision: Precision) -> int:
    """Bytes of ``nrow`` rows of Stokes I, its weights and UVW over ``nchan`` channels."""
    vis, weight = (np.dtype(t).itemsize for t in _DTYPES[precision])
    return nrow * (nchan * (vis + weight) + 3 * 8)


def gathers(cfg: ReadConfig, nrow: int, rows_chunk: int, nchan: int, precision: Precision) -> bool:
    """Whether a selection of ``nrow`` rows read ``rows_chunk`` at a time is gathered whole.

    It is when its chunks are sized by ``cfg.chunk_mb`` (rows given by ``chunk_rows`` are
    read as given), it takes more than one chunk, and its Stokes I over the ``nchan``
    channels read (:func:`gathered_bytes`) fits ``chunk_mb`` MiB, one chunk's budget.

    Examples
    --------
    >>> read = ReadConfig(ms="sim.ms")  # chunk_mb 256
    >>> gathers(read, 47_400, 4_900, 375, "single")  # 375 channels of a 1024-channel MS
    True
    >>> gathers(read, 47_400, 47_400, 375, "single")  # one chunk: held as it is read
    False
    """
    return (
        cfg.chunk_rows is None
        and rows_chunk < nrow
        and gathered_bytes(nrow, nchan, precision) <= cfg.chunk_mb * _MIB
    )


def gather_chunks(
    chunks: Iterator[VisChunk], nrow: int, nchan: int, precision: Precision
) -> VisChunk:
    """The chunks of a whole selection, in order, as one chunk (filled in place: the chunks
    are released as they are copied).

    Raises
    ------
    ValueError
        If the chunks do not cover rows ``0 .. nrow - 1`` in order, over ``nchan`` channels.
    """
    vis_t, weight_t = _DTYPES[precision]
    uvw_m = np.empty((nrow, 3))  # (nrow, 3) metres
    vis = np.empty((nrow, nchan), vis_t)  # (nrow, nchan)
    weight = np.empty((nrow, nchan), weight_t)  # (nrow, nchan)
    nonfinite = np.zeros(nchan, np.int64)  # (nchan,)
    done = 0
    for chunk in chunks:
        n = len(chunk.uvw_m)
        if chunk.row_start != done or done + n > nrow or chunk.vis.shape[1] != nchan:
            raise ValueError(f"chunk of rows {chunk.row_start}+{n} after {done} of {nrow}")
        uvw_m[done : done + n] = chunk.uvw_m
        vis[done : done + n] = chunk.vis
        weight[done : done + n] = chunk.weight
        nonfinite += chunk.nonfinite_per_chan
        done += n
    if done != nrow:
        raise ValueError(f"the chunks cover {done} of {nrow} rows")
    return VisChunk(row_start=0, uvw_m=uvw_m, vis=vis, weight=weight, nonfinite_per_chan=nonfinite)


def iter_chunks(
    meta: MSMeta, cfg: ReadConfig, *, precision: Precision = "single", gather: bool = False
) -> Iterator[VisChunk]:
    """Stream Stokes I and its weight over the selected rows, a chunk at a time.

    Parameters
    ----------
    meta : MSMeta
        The selection, from :func:`skarim.io.ms_meta.open_ms` with the same ``cfg``.
    cfg : ReadConfig
        Supplies ``chunk_rows`` (or, when None, ``chunk_mb``, see :func:`rows_per_chunk`)
        and ``chan_start``.
    precision : {"single", "double"}
        complex64/float32 or complex128/float64 output.
    gather : bool
        Yield a selection that :func:`gathers` as one chunk of all its rows.

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
    hand_a, hand_b = (meta.corr_types.index(h) for h in PARALLEL_HANDS[meta.feed])
    chans = slice(cfg.chan_start, cfg.chan_start + len(meta.freq_hz))
    with selected_rows(meta) as sel:
        has_spectrum = "WEIGHT_SPECTRUM" in sel.colnames()
        step = _read_step(sel, meta, cfg)
        nrow, nchan = sel.nrows(), chans.stop - chans.start
        chunks = (
            _read_chunk(
                sel, meta, chans, slice(start, min(start + step, nrow)), has_spectrum,
                (hand_a, hand_b), precision,
            )
            for start in range(0, nrow, step)
        )  # fmt: skip
        if gather and gathers(cfg, nrow, step, nchan, precision):
            yield gather_chunks(chunks, nrow, nchan, precision)
        else:
            yield from chunks


def read_step(meta: MSMeta, cfg: ReadConfig) -> int:
    """Rows of each chunk :func:`iter_chunks` reads (the last may be shorter)."""
    with selected_rows(meta) as sel:
        return _read_step(sel, meta, cfg)


def _read_step(sel: tables.table, meta: MSMeta, cfg: ReadConfig) -> int:
    """``chunk_rows``, else the rows of ``chunk_mb`` MiB of whole cells (:func:`rows_per_chunk`)."""
    cell, spectrum = sel.getcell(meta.data_column, 0), "WEIGHT_SPECTRUM" in sel.colnames()
    return cfg.chunk_rows or rows_per_chunk(
        cfg.chunk_mb, nchan=cell.shape[0], ncorr=cell.shape[1], data_bytes=cell.dtype.itemsize,
        weight_spectrum=spectrum,
    )  # fmt: skip


def check_weights(meta: MSMeta, cfg: ReadConfig) -> None:
    """Refuse a selection none of whose visibilities has a usable weight, before any gridding.

    A visibility of I is usable only when both parallel hands have a finite weight > 0
    (see the module docstring). The weights (WEIGHT_SPECTRUM where it holds data, else WEIGHT)
    are read a chunk at a time and the scan stops at the first usable one: the first
    :data:`_PROBE_ROWS` rows for a healthy Measurement Set. Flags are not read.

    Parameters
    ----------
    meta : MSMeta
        The selection, from :func:`skarim.io.ms_meta.open_ms` with the same ``cfg``.
    cfg : ReadConfig
        Supplies the chunking (as :func:`iter_chunks`) and ``chan_start``.

    Raises
    ------
    InputError
        When no weight is usable: the visibilities counted by what their weights hold
        (zero, negative, NaN or infinite).
    """
    hands = [meta.corr_types.index(h) for h in PARALLEL_HANDS[meta.feed]]
    chans = slice(cfg.chan_start, cfg.chan_start + len(meta.freq_hz))
    counts = {"zero": 0, "negative": 0, "NaN or infinite": 0}
    columns = set()
    with selected_rows(meta) as sel:
        has_spectrum = "WEIGHT_SPECTRUM" in sel.colnames()
        ncorr = sel.getcell(meta.data_column, 0).shape[1]
        step = cfg.chunk_rows or rows_per_chunk(
            cfg.chunk_mb,
            nchan=chans.stop - chans.start,
            ncorr=ncorr,
            data_bytes=0,
            weight_spectrum=has_spectrum,
        )
        nrow, start, n = sel.nrows(), 0, min(step, _PROBE_ROWS)
        while start < nrow:
            n = min(n, nrow - start)
            cells = _weights(sel, has_spectrum, chans, start, n)  # (n, nchan, ncorr)
            start, n = start + n, step
            columns.add("WEIGHT" if cells.strides[1] == 0 else "WEIGHT_SPECTRUM")
            weight = cells[..., hands]  # (n, nchan, 2)
            bad_value = ~np.isfinite(weight).all(axis=-1)  # (n, nchan)
            negative = ~bad_value & (weight < 0).any(axis=-1)
            zero = ~bad_value & ~negative & (weight == 0).any(axis=-1)
            if np.any(~(bad_value | negative | zero)):
                return
            counts["NaN or infinite"] += int(bad_value.sum())
            counts["negative"] += int(negative.sum())
            counts["zero"] += int(zero.sum())
    found = ", ".join(f"{what} ({n})" for what, n in counts.items() if n)
    raise InputError(
        f"no usable weight in {meta.path} ({' and '.join(sorted(columns))}, field "
        f"{meta.field_id}, spw {meta.spw}): the weights of its {sum(counts.values())} "
        f"visibilities are {found}; a visibility needs a finite weight > 0 in both parallel "
        "hands"
    )


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
    uvw_m = sel.getcol("UVW", startrow=start, nrow=n).astype(np.float64)  # (n, 3)
    uvw_ok = np.isfinite(uvw_m).all(axis=1)  # (n,)
    uvw_m[~uvw_ok] = 0.0
    vis_i, weight_i, nonfinite = _stokes_i(data, flag, flag_row, weight, uvw_ok, hands, precision)
    return VisChunk(
        row_start=start,
        uvw_m=uvw_m,
        vis=vis_i,
        weight=weight_i,
        nonfinite_per_chan=nonfinite,
    )


def _stokes_i(
    data: np.ndarray,
    flag: np.ndarray,
    flag_row: np.ndarray,
    weight: np.ndarray,
    uvw_ok: np.ndarray,
    hands: tuple[int, int],
    precision: Precision,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stokes I, its weight and the NaN/inf count per channel of ``(n, nchan, ncorr)`` cells;
    ``uvw_ok`` is ``(n,)``, True where the row's UVW is finite.

    Worked through in blocks of :data:`_STOKES_BLOCK_ROWS` rows so that the temporaries stay
    small and are reused rather than allocated at the size of the chunk.

    Returns
    -------
    vis, weight, nonfinite : numpy.ndarray
        ``(n, nchan)`` Stokes I (Jy) and its weight (Jy^-2), 0 where dropped, and ``(nchan,)``
        int64 counts of visibilities dropped only for a NaN or infinite hand or UVW.
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
        finite = np.isfinite(vis_a) & np.isfinite(vis_b) & uvw_ok[rows, None]
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
