"""Tile geometry of a run's image: store tiles, their deconvolution windows, and task blocks.

A *tile* is the store's ``tile x tile`` square (one Zarr chunk; ``GridConfig.tile``). A
tile is deconvolved on its *window*: the tile plus a halo of ``DeconvConfig.margin`` pixels
read from its neighbours, clipped to the image and zero outside it, so every window is a
``(tile + 2 margin)^2`` array with the tile's *core* at ``[margin, margin + tile)`` on both
axes. :class:`TileWindow` says where both sit, :func:`read_windows` reads a batch of windows
from the store, :func:`fit_psf` sizes the PSF to a window, and :func:`row_blocks` cuts the
tile rows into the blocks that one task covers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from skarim.config import RunConfig

__all__ = [
    "TASKS_PER_WORKER",
    "TileWindow",
    "tile_windows",
    "write_cores",
    "row_blocks",
    "read_windows",
    "fit_psf",
]

#: Tile-pass tasks per channel and cycle are at most this many times the workers: enough to
#: balance the load, few enough that a 100,000-tile image is not a 100,000-task graph.
TASKS_PER_WORKER = 4


@dataclass(frozen=True)
class TileWindow:
    """Tile ``(ty, tx)`` and its window: the core plus a halo, clipped to the image.

    Attributes
    ----------
    ty, tx : int
        Tile row and column.
    tile : int
        Tile size, pixels.
    margin : int
        Halo around the tile, pixels.
    npix_x, npix_y : int
        Image size, pixels.
    """

    ty: int
    tx: int
    tile: int
    margin: int
    npix_x: int
    npix_y: int

    @property
    def core(self) -> tuple[slice, slice]:
        """``(y, x)`` slices of the tile in the image (an edge tile is cut to the image)."""
        t = self.tile
        y0, x0 = self.ty * t, self.tx * t
        return slice(y0, min(y0 + t, self.npix_y)), slice(x0, min(x0 + t, self.npix_x))

    def window(self) -> tuple[slice, slice, tuple[slice, slice]]:
        """Image slices of the window, and where they sit in a ``(t + 2m)^2`` array."""
        t, m = self.tile, self.margin
        y0, x0 = self.ty * t - m, self.tx * t - m
        ys, xs = max(y0, 0), max(x0, 0)
        ye, xe = min(y0 + t + 2 * m, self.npix_y), min(x0 + t + 2 * m, self.npix_x)
        inner = (slice(ys - y0, ye - y0), slice(xs - x0, xe - x0))
        return slice(ys, ye), slice(xs, xe), inner


def tile_windows(cfg: RunConfig) -> list[TileWindow]:
    """All tiles of the image, row-major.

    Parameters
    ----------
    cfg : RunConfig
        The run: tile size and image size (``grid``), halo (``deconv.margin``).

    Returns
    -------
    list of TileWindow
        ``ntile_y * ntile_x`` tiles, row by row.
    """
    g = cfg.grid
    return [
        TileWindow(ty, tx, g.tile, cfg.deconv.margin, g.npix_x, g.npix_y)
        for ty in range(g.ntile_y)
        for tx in range(g.ntile_x)
    ]


def row_blocks(cfg: RunConfig, n_workers: int) -> list[range]:
    """Tile rows cut into the contiguous blocks that tile-pass tasks cover, one task per block.

    There are at most ``TASKS_PER_WORKER * n_workers`` blocks, never more than the tile rows
    nor than the tile batches of a channel (``DeconvConfig.batch_tiles``).

    Parameters
    ----------
    cfg : RunConfig
        The run (tile counts, batch size).
    n_workers : int
        Workers of the cluster.

    Returns
    -------
    list of range
        Tile rows of each block, in order.

    Examples
    --------
    >>> from skarim.config import GridConfig, ReadConfig, RunConfig
    >>> cfg = RunConfig(read=ReadConfig(ms="x.ms"),
    ...                 grid=GridConfig(npix_x=512, npix_y=512, cell_rad=1e-5, tile=32))
    >>> [(r.start, r.stop) for r in row_blocks(cfg, 1)]
    [(0, 4), (4, 8), (8, 12), (12, 16)]
    >>> len(row_blocks(cfg, 100))
    16
    """
    g = cfg.grid
    batches = -(-g.ntile_x * g.ntile_y // cfg.deconv.batch_tiles)
    n = max(1, min(g.ntile_y, batches, TASKS_PER_WORKER * n_workers))
    return [range(int(a[0]), int(a[-1]) + 1) for a in np.array_split(np.arange(g.ntile_y), n)]


def read_windows(arr, chan: int, wins: list[TileWindow]) -> np.ndarray:  # noqa: ANN001
    """The windows of ``wins`` in channel ``chan`` of an image array, zero outside the image.

    Parameters
    ----------
    arr : zarr.Array or numpy.ndarray
        ``(channel, y, x)`` image of the store.
    chan : int
        Output channel.
    wins : list of TileWindow
        Tiles of one size and margin, close together (a batch of one tile row): they are
        read as the one block that covers them all.

    Returns
    -------
    numpy.ndarray
        ``(len(wins), w, w)`` windows, float32, ``w = tile + 2 margin``; each indexed from its
        unclipped corner, so its core is always at ``[margin, margin + tile)``.
    """
    size = wins[0].tile + 2 * wins[0].margin
    out = np.zeros((len(wins), size, size), dtype=np.float32)  # (b, w, w)
    spans = [win.window() for win in wins]
    # one read covering every window: each stored chunk is decoded once, not once per window
    y0, y1 = min(s[0].start for s in spans), max(s[0].stop for s in spans)
    x0, x1 = min(s[1].start for s in spans), max(s[1].stop for s in spans)
    block = np.asarray(arr[chan, y0:y1, x0:x1])  # (rows, cols) around the windows
    for i, (ys, xs, inner) in enumerate(spans):
        out[i][inner] = block[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
    return out


def write_cores(arr, chan: int, wins: list[TileWindow], windows: np.ndarray) -> None:  # noqa: ANN001
    """Write the cores of ``windows`` (as :func:`read_windows` returns them) into channel
    ``chan`` of an image array, each tile's core cut to the image at its edges."""
    for win, window in zip(wins, windows, strict=True):
        ys, xs = win.core
        m = win.margin  # windows are indexed from the unclipped corner: the core is at (m, m)
        arr[chan, ys, xs] = window[m : m + ys.stop - ys.start, m : m + xs.stop - xs.start]


def fit_psf(psf: np.ndarray, w: int) -> np.ndarray:
    """Crop or zero-pad a centred ``(2p, 2p)`` PSF to ``(2w, 2w)``, peak kept at ``(w, w)``.

    Parameters
    ----------
    psf : numpy.ndarray
        ``(2p, 2p)`` PSF with peak 1 at ``(p, p)``.
    w : int
        Window size, pixels: the operator of a ``(w, w)`` window needs a ``(2w, 2w)`` PSF.

    Returns
    -------
    numpy.ndarray
        ``(2w, 2w)`` PSF, float32.
    """
    p = psf.shape[0] // 2
    out = np.zeros((2 * w, 2 * w), dtype=np.float32)
    r = min(p, w)
    out[w - r : w + r, w - r : w + r] = psf[p - r : p + r, p - r : p + r]
    return out
