"""Imaging weights (natural, uniform, Briggs) that follow WSClean 3.x cell by cell.

Weighting takes two passes over the streamed data, one :class:`WeightGrid` per output
channel: :meth:`WeightGrid.add` sums the natural weights per uv cell,
:meth:`WeightGrid.finalize` turns the sums into one factor per cell, and
:meth:`WeightGrid.imaging_weights` multiplies each natural weight by its cell's factor.

Conventions, read in WSClean's source (``structures/imageweights.h``/``.cpp``,
``main/settings.h``/``.cpp``, ``structures/weightmode.h``, ``gridding/msgridderbase.cpp``,
``imageweightcache.h``, ``msproviders/msprovider.cpp``; public mirrors of 3.x) and checked
against WSClean 3.1.0 itself on the shared EVLA Measurement Set (its ``-save-weights`` grids,
dirty images and PSFs, for natural, uniform and Briggs weighting; ``tests/imaging/
test_weighting.py`` keeps WSClean's grids as a reference):

- **Grid size.** The weight grid is the *padded* image, not the image:
  ``Settings::RecalculateDerivedDimensions`` sets
  ``paddedImageWidth = ceil(trimmedImageWidth * imagePadding)`` and then "Make the width and
  height divisable by four" (``imagePadding = 1.2`` by default), and ``createWeightCache``
  builds ``ImageWeights`` from ``paddedImageWidth``, ``paddedImageHeight``. A cell is
  ``1 / (n_pad * cell_rad)`` wavelengths wide (``n_pad = 308`` for a 256-pixel image).
- **Half plane.** ``ImageWeights`` stores only ``v >= 0``: ``_grid.assign(_imageWidth *
  _imageHeight / 2, 0.0)``, and ``uvToXY`` reflects ``if (v < 0.0) { u = -u; v = -v; }``. A
  visibility and its Hermitian conjugate therefore land in the same cell and are counted once.
- **Cell of a visibility.** ``u = u_m / wavelength`` per channel (``wavelength = c / freq``),
  then ``x = int(floor(u * _imageWidth * _pixelScaleX + _imageWidth / 2))`` and
  ``y = int(floor(v * _imageHeight * _pixelScaleY))``.
- **Beyond the grid.** ``isWithinLimits`` is ``x >= 0 && x < _imageWidth && y < _imageHeight
  / 2``; a visibility outside is not gridded (nor counted in the total) and
  ``sampleGridValue`` returns 0 for it, so its imaging weight is 0 under *every* weighting,
  natural included (``RequiresGridding()`` is ``true`` for all modes; the gridder multiplies
  the visibility weight by ``GetWeight(u, v)``).
- **Uniform.** ``val = 1.0 / val`` for occupied cells: ``w / W_k``.
- **Briggs.** ``avgW = sum_k W_k^2 / _totalSum`` (over the half-plane grid and the gridded
  weights), ``numeratorSqrt = 5 exp(-ln(10) R)``, ``sSq = numeratorSqrt^2 / avgW``, factor
  ``1 / (1 + W_k sSq)``: docs/design.md section 3's ``w / (1 + W_k f^2)``.
- **Natural.** Factor 1 in occupied cells (``if (val != 0.0) val = 1.0``): ``w`` unchanged
  inside the grid, 0 outside.
- **Rank filter, on by default** (``rankFilterLevel = 3.0``, ``rankFilterSize = 16``):
  after ``FinishGridding``, when the level is ``>= 1``, a nonzero factor above ``level``
  times the mean of the nonzero factors in the window ``[x - size/2, x + size/2) x
  [y - size/2, y + size/2)`` (clipped to the half plane) is replaced by that bound, capping
  the uniform weight of sparse cells (``rank_filter_level=0``: ``-weighting-rank-filter 0``).
- **Channels.** Without ``-mf-weighting`` each output channel's weights come from its own
  visibilities (``ImageWeightCache::Get(ms_list, outputChannelIndex, ...)``): one
  :class:`WeightGrid` per output channel, every input channel at its own frequency.
- **Natural weights in.** The caller's Stokes I weight decides the match too: WSClean's
  ``MSProvider::CopyWeights`` gives ``min(4 w_a, 4 w_b)`` of the two parallel hands (0 if
  either is flagged or not finite).
- **Taper and uv range** multiply the factors last (:mod:`skarim.imaging.taper`);
  ``-super-weight`` and ``-use-weights-as-taper`` (off by default) are not modelled.

**Storage.** A grid keeps only its occupied cells (:mod:`skarim.imaging.weight_cells`): their
sorted flat indices into the half plane and one float64 each, the sum ``W_k`` and then the
factor: 16 bytes per occupied cell, and for Briggs 16 per cell the rank filter clipped (its
factor before the filter), whatever the image size (:attr:`WeightGrid.nbytes`). Every cell not
stored has one factor: 0 for uniform, ``1 / (1 + 0 f^2)`` for Briggs, 1 for natural. The
rank filter is computed at the stored cells, and on demand at any other cell a visibility
of nonzero weight falls in, from window sums over the stored cells that equal the dense
grid's to float round-off.
"""

from __future__ import annotations

import math

import numpy as np

from skarim.config import Weighting
from skarim.errors import InputError
from skarim.imaging.taper import UVTaper
from skarim.imaging.weight_cells import (
    add_cells,
    chunk_cell_sums,
    find_cells,
    visibility_cells,
    window_sums,
)

__all__ = ["WeightGrid", "briggs_factors", "padded_npix"]


def padded_npix(npix: int, padding: float) -> int:
    """Padded image size as WSClean computes it, which is also its weight-grid size.

    Parameters
    ----------
    npix : int
        Image size in pixels.
    padding : float
        Padding factor (WSClean ``-padding``, default 1.2).

    Returns
    -------
    int
        ``ceil(npix * padding)`` rounded up to a multiple of four.

    Examples
    --------
    >>> padded_npix(256, 1.2), padded_npix(254, 1.2), padded_npix(64, 1.0)
    (308, 308, 64)
    """
    n = math.ceil(npix * padding)
    return n + (4 - n % 4) % 4


def briggs_factors(cell_weight: np.ndarray, total_weight: float, robust: float) -> np.ndarray:
    """Briggs correction factors of uv cells, ``1 / (1 + W_k f^2)``, as WSClean computes them.

    ``f^2 = (5 * 10^-R)^2 / (sum_k W_k^2 / sum w)``, with ``10^-R`` written
    ``exp(-ln(10) R)`` as in WSClean. A visibility's imaging weight is its natural weight
    ``w`` times the factor of its cell.

    Parameters
    ----------
    cell_weight : numpy.ndarray
        Sums ``W_k`` of the natural weights in each uv cell (any shape), weight units.
    total_weight : float
        Sum of the natural weights of every visibility gridded, weight units (> 0).
    robust : float
        Briggs robustness ``R``.

    Returns
    -------
    numpy.ndarray
        Dimensionless factors, the shape of ``cell_weight``.
    """
    mean_cell_weight = float(np.sum(cell_weight * cell_weight)) / total_weight
    numerator_sqrt = 5.0 * math.exp(-math.log(10.0) * robust)
    f2 = numerator_sqrt * numerator_sqrt / mean_cell_weight
    return 1.0 / (1.0 + cell_weight * f2)


class WeightGrid:
    """Accumulates the sum of natural weights per uv cell (pass 1), then turns natural
    weights into imaging weights (pass 2). It holds only the occupied cells of the half plane
    ``v >= 0``, ``(grid_npix_y // 2, grid_npix_x)`` cells (module docstring, *Storage*).

    Parameters
    ----------
    npix_x, npix_y : int
        Image size in pixels (before padding).
    cell_rad : float
        Pixel size in radians.
    weighting : Weighting
        natural, uniform or briggs.
    robust : float
        Briggs robustness ``R`` (briggs only): ``+5`` is close to natural, ``-5`` to uniform.
    padding : float
        WSClean's image padding; the weight grid is :func:`padded_npix` cells on a side.
    rank_filter_level : float
        WSClean's weighting rank filter level; below 1 turns the filter off.
    rank_filter_size : int
        Side of the rank filter window in cells.
    taper : UVTaper or None
        Gaussian taper and uv range multiplied into the factors; None: neither.

    Raises
    ------
    InputError
        If a size, the cell or the padding is not positive.
    """

    def __init__(
        self,
        *,
        npix_x: int,
        npix_y: int,
        cell_rad: float,
        weighting: Weighting,
        robust: float = 0.0,
        padding: float = 1.2,
        rank_filter_level: float = 3.0,
        rank_filter_size: int = 16,
        taper: UVTaper | None = None,
    ) -> None:
        if npix_x < 1 or npix_y < 1:
            raise InputError(f"image size must be positive, got {npix_x}x{npix_y}")
        if not cell_rad > 0:
            raise InputError(f"pixel scale must be positive, got {cell_rad} rad")
        if not padding > 0:
            raise InputError(f"padding must be positive, got {padding}")
        self.weighting = Weighting(weighting)
        self.robust = float(robust)
        self.cell_rad = float(cell_rad)
        self.grid_npix_x = padded_npix(npix_x, padding)
        self.grid_npix_y = padded_npix(npix_y, padding)
        self.rank_filter_level = float(rank_filter_level)
        self.rank_filter_size = int(rank_filter_size)
        self.taper = taper if taper is not None and taper.active else None
        self._shape = (self.grid_npix_y // 2, self.grid_npix_x)  # (v >= 0, u)
        self._occupied = np.empty(0, np.int64)  # sorted flat cells y * nx + x
        self._values = np.empty(0)  # their sums W_k, then their factors
        self._empty = 0.0  # factor of a cell not stored, before the rank filter
        self._clipped = np.empty(0, np.int64)  # Briggs: stored cells the filter clipped ...
        self._unclipped = np.empty(0)  # ... and their factors before it
        self._total_weight = 0.0
        self._finalized = False

    @property
    def uv_cell_lambda(self) -> tuple[float, float]:
        """Width of a weight-grid cell along u and v, in wavelengths."""
        return (
            1.0 / (self.grid_npix_x * self.cell_rad),
            1.0 / (self.grid_npix_y * self.cell_rad),
        )

    @property
    def nbytes(self) -> int:
        """Bytes the grid holds: 16 per occupied cell, and for Briggs 16 more per cell the
        rank filter clipped (at most 32 per occupied cell).

        Follows the visibilities added, not the image size; for memory planning.
        """
        return sum(a.nbytes for a in (self._occupied, self._values, self._clipped, self._unclipped))

    @property
    def cell_weight_sums(self) -> np.ndarray:
        """``(grid_npix_y // 2, grid_npix_x)`` sums of natural weights ``W_k`` per cell.

        Before :meth:`finalize` only. Builds the dense grid: for tests and small images.

        Raises
        ------
        RuntimeError
            If called after :meth:`finalize`.
        """
        if self._finalized:
            raise RuntimeError("the cell sums were turned into weights by finalize()")
        dense = np.zeros(self._shape)
        dense.reshape(-1)[self._occupied] = self._values
        return dense

    @property
    def cell_factors(self) -> np.ndarray:
        """``(grid_npix_y // 2, grid_npix_x)`` correction factor per cell, after :meth:`finalize`.

        WSClean's ``-save-weights`` grid (its ``v >= 0`` half), dense: for tests, small images.

        Raises
        ------
        RuntimeError
            If called before :meth:`finalize`.
        """
        if not self._finalized:
            raise RuntimeError("call WeightGrid.finalize() before reading cell_factors")
        cells = np.arange(self._shape[0] * self._shape[1])
        natural = self.weighting is Weighting.natural
        factors = np.ones(cells.shape) if natural else self._factors(cells)
        return (factors * self._tapers(cells)).reshape(self._shape)

    def add(self, uvw_m: np.ndarray, freq_hz: np.ndarray, weight: np.ndarray) -> None:
        """Add a chunk of visibilities to the per-cell sums of natural weights (pass 1).

        A no-op for natural weighting.

        Parameters
        ----------
        uvw_m : numpy.ndarray
            ``(nrow, 3)`` UVW coordinates in metres.
        freq_hz : numpy.ndarray
            ``(nchan,)`` channel frequencies in Hz.
        weight : numpy.ndarray
            ``(nrow, nchan)`` natural weights of Stokes I; 0 marks a dropped visibility.

        Raises
        ------
        RuntimeError
            If called after :meth:`finalize`.
        """
        if self._finalized:
            raise RuntimeError("WeightGrid.add() called after finalize()")
        if self.weighting is Weighting.natural:
            return
        cell, inside = visibility_cells(
            uvw_m, freq_hz, weight, self.grid_npix_x, self.grid_npix_y, self.cell_rad
        )
        w = np.asarray(weight, dtype=np.float64)[inside]  # (nvis,)
        if cell.size == 0:
            return
        self._occupied, self._values = add_cells(
            self._occupied, self._values, *chunk_cell_sums(cell, w)
        )
        self._total_weight += float(w.sum())

    def finalize(self) -> None:
        """Turn the per-cell sums into correction factors; no :meth:`add` after this.

        Raises
        ------
        RuntimeError
            If called twice.
        """
        if self._finalized:
            raise RuntimeError("WeightGrid.finalize() called twice")
        self._finalized = True
        sums = self._values  # (ncell,) W_k of the stored cells
        if self.weighting is Weighting.natural:
            self._empty = 1.0
            return
        if self.weighting is Weighting.uniform:
            factors = np.zeros_like(sums)
            np.divide(1.0, sums, out=factors, where=sums != 0.0)
            self._empty = 0.0
        elif self._total_weight != 0.0:  # the factor of an empty cell, 1 / (1 + 0 f^2), last
            factors = briggs_factors(np.append(sums, 0.0), self._total_weight, self.robust)
            factors, self._empty = factors[:-1], float(factors[-1])
        else:
            factors, self._empty = np.ones_like(sums), 1.0
        self._values = factors
        if self._filters():
            bound = self._rank_bound(self._occupied)
            clipped = np.flatnonzero((factors != 0.0) & (factors > bound))
            if self._empty != 0.0:  # the filter may run again at cells not stored (Briggs)
                self._clipped, self._unclipped = clipped, factors[clipped]
            factors[clipped] = bound[clipped]

    def imaging_weights(
        self, uvw_m: np.ndarray, freq_hz: np.ndarray, weight: np.ndarray
    ) -> np.ndarray:
        """Imaging weights of a chunk of visibilities (pass 2).

        Parameters
        ----------
        uvw_m : numpy.ndarray
            ``(nrow, 3)`` UVW coordinates in metres.
        freq_hz : numpy.ndarray
            ``(nchan,)`` channel frequencies in Hz.
        weight : numpy.ndarray
            ``(nrow, nchan)`` natural weights, as given to :meth:`add`.

        Returns
        -------
        numpy.ndarray
            ``(nrow, nchan)`` imaging weights, dtype of ``weight``: the natural weight times
            the correction factor of its cell, 0 for a visibility beyond the weight grid.

        Raises
        ------
        RuntimeError
            If :meth:`finalize` has not been called (uniform and Briggs).
        """
        if not self._finalized and self.weighting is not Weighting.natural:
            raise RuntimeError("call WeightGrid.finalize() before imaging_weights()")
        weight = np.asarray(weight)
        cell, inside = visibility_cells(
            uvw_m, freq_hz, weight, self.grid_npix_x, self.grid_npix_y, self.cell_rad
        )
        out = np.zeros(weight.shape, dtype=np.float64)  # (nrow, nchan)
        w = weight[inside]
        factor = 1.0 if self.weighting is Weighting.natural else self._factors(cell, w != 0)
        out[inside] = w * (factor * self._tapers(cell))
        return out.astype(weight.dtype, copy=False)

    def _tapers(self, cell: np.ndarray) -> np.ndarray | float:
        """The taper and uv range factor of each cell (1 without them)."""
        if self.taper is None:
            return 1.0
        return self.taper.cell_factors(cell, self.grid_npix_x, self.grid_npix_y, self.cell_rad)

    def _filters(self) -> bool:
        """Whether the rank filter runs: WSClean's level >= 1, a window, not natural."""
        return (
            self.rank_filter_level >= 1.0
            and self.rank_filter_size // 2 > 0  # else WSClean's mean is 0/0: nothing clipped
            and self.weighting is not Weighting.natural
        )

    def _rank_bound(self, query: np.ndarray) -> np.ndarray:
        """WSClean's ``RankFilter`` bound at sorted unique cells: ``level`` times the mean of
        the nonzero factors (before the filter) in the window ``[y - size/2, y + size/2) x
        [x - size/2, x + size/2)``, clipped to the half-plane grid."""
        before = self._values
        if self._clipped.size:
            before = before.copy()
            before[self._clipped] = self._unclipped
        sums, counts = window_sums(
            self._occupied, before, self._empty, self._shape, self.rank_filter_size // 2, query
        )
        return self.rank_filter_level * sums / np.maximum(counts, 1.0)

    def _factors(self, cell: np.ndarray, needed: np.ndarray | None = None) -> np.ndarray:
        """Correction factor of each cell (flat cells of the grid), after finalize.

        Where ``needed`` is False (a visibility of weight 0), a cell not stored keeps the
        factor of an empty cell before the rank filter: its imaging weight is 0 all the same
        (NaN if that factor is), and no window sums are computed for it.
        """
        pos, found = find_cells(self._occupied, cell)
        if found.all():
            return self._values[pos]
        out = np.full(cell.shape, self._empty)
        out[found] = self._values[pos[found]]
        missing = ~found if needed is None else ~found & needed
        if self._filters() and self._empty != 0.0 and missing.any():
            missing = np.flatnonzero(missing)  # cells no visibility of pass 1 fell in
            query, inverse = np.unique(cell[missing], return_inverse=True)
            bound = self._rank_bound(query)
            out[missing] = np.where(self._empty > bound, bound, self._empty)[inverse]
        return out
