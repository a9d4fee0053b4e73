"""The sparse weight grid against the dense algorithm it replaced, and its memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from skarim.config import Weighting
from skarim.constants import SPEED_OF_LIGHT_M_S
from skarim.imaging.weight_cells import BAND_CELLS
from skarim.imaging.weighting import WeightGrid


def dense_reference(uvw_m, freq_hz, weight, *, weighting, robust, level, n=1500, cell_rad=1e-5):
    """The dense algorithm the sparse grid replaced, compactly, on an ``n``-cell padded grid.

    Returns the ``(n/2, n)`` factor grid and a function giving the imaging weights of any
    visibilities. The rank filter's window sums (size 16) add 16 shifted copies along each
    axis, without running sums.
    """

    def cells(uvw_m, freq_hz):
        lam = SPEED_OF_LIGHT_M_S / freq_hz
        u, v = uvw_m[:, :1] / lam, uvw_m[:, 1:2] / lam
        sign = np.where(v < 0, -1.0, 1.0)
        x, y = np.floor(sign * u * n * cell_rad + n // 2), np.floor(sign * v * n * cell_rad)
        inside = (x >= 0) & (x < n) & (y < n // 2)
        return (y * n + x)[inside].astype(np.int64), inside

    cell, inside = cells(uvw_m, freq_hz)
    w = weight[inside]
    sums = np.bincount(cell, weights=w, minlength=n // 2 * n).reshape(n // 2, n)
    if weighting is Weighting.natural:
        grid = np.ones_like(sums)
    elif weighting is Weighting.uniform:
        grid = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums != 0)
    else:
        grid = 1 / (1 + sums * (5 * 10.0**-robust) ** 2 / (np.sum(sums**2) / w.sum()))
    if level >= 1 and weighting is not Weighting.natural:

        def box(a):  # sum over [i - 8, i + 8) along both axes, clipped to the grid
            for axis in (0, 1):
                p = np.pad(np.moveaxis(a, axis, 0), [(8, 8), (0, 0)])
                a = np.moveaxis(sum(p[k : k + len(p) - 16] for k in range(16)), 0, axis)
            return a

        bound = level * box(grid) / np.maximum(box((grid != 0).astype(float)), 1)
        grid = np.where((grid != 0) & (grid > bound), bound, grid)

    def imaging_weights(uvw_m, freq_hz, weight):
        cell, inside = cells(uvw_m, freq_hz)
        out = np.zeros(weight.shape)
        out[inside] = weight[inside] * grid.ravel()[cell]
        return out

    return grid, imaging_weights


def core_and_edges(seed: int, n: int = 1500, cell_rad: float = 1e-5):
    """Visibilities on an ``n``-cell grid: a dense core, scattered cells, and the grid's edges.

    The core fills about 11000 cells near the origin, enough for its band of rows to be
    summed on a dense buffer; the scattered visibilities (a fifth beyond the grid) leave the
    last band sparse, summed cell by cell. The edge visibilities sit in the first and last
    columns and the last row, on v = 0 and just below it (reflected).
    """
    rng = np.random.default_rng(seed)
    freq_hz = np.array([1.0, 1.1, 1.25]) * SPEED_OF_LIGHT_M_S  # 1, 1.1, 1.25 wavelengths/m
    extent = 0.5 / cell_rad  # the grid spans u in [-extent, extent), v in [0, extent)
    du = 1 / (n * cell_rad)
    edges = [(-extent + 0.3 * du, 0.2 * du), (-extent, -0.5 * du), (extent - 0.4 * du, 0)]
    edges += [(0.6 * du, extent - 0.2 * du), (-extent + 0.1 * du, extent - 0.5 * du)]
    edges += [(extent - 0.2 * du, -(extent - 0.7 * du)), (3.3 * du, -0.01 * du), (0, 0)]
    uvw_m = np.concatenate(
        [
            rng.normal(0, 30 * du, (9000, 3)),
            rng.uniform(-1.1, 1.1, (1500, 3)) * extent,
            np.array([(u, v, 0.0) for u, v in edges]),
        ]
    )
    weight = rng.uniform(0.5, 2.0, (len(uvw_m), len(freq_hz)))
    weight[rng.random(weight.shape) < 0.1] = 0.0
    return uvw_m, freq_hz, weight


@pytest.mark.parametrize(
    ("weighting", "robust"),
    [(Weighting.natural, 0.0), (Weighting.uniform, 0.0)]
    + [(Weighting.briggs, r) for r in (-1.0, 0.0, 2.0)],
)
@pytest.mark.parametrize("level", [0.0, 3.0, 1.0])
def test_sparse_grid_equals_the_dense_algorithm(weighting, robust, level):
    # 1500 x 750 cells, two bands of rows (weight_cells.BAND_CELLS): window sums come from
    # a dense buffer in the core's band and from the table in the other. Both use running
    # sums no longer than the dense algorithm's, whose round-off (here up to 4e-11 of a
    # window's mean, where the Briggs -1 core's small factors sit among empty cells of
    # factor 1) the tolerance allows.
    assert BAND_CELLS // 1500 < 750
    uvw_m, freq_hz, weight = core_and_edges(1)
    kw = dict(weighting=weighting, robust=robust)
    grid = WeightGrid(
        npix_x=1500, npix_y=1500, cell_rad=1e-5, padding=1.0, rank_filter_level=level, **kw
    )
    grid.add(uvw_m[:4000], freq_hz, weight[:4000])
    grid.add(uvw_m[4000:], freq_hz, weight[4000:])
    grid.finalize()
    factors, reference = dense_reference(uvw_m, freq_hz, weight, level=level, **kw)
    np.testing.assert_allclose(grid.cell_factors, factors, rtol=1e-10, atol=0)
    np.testing.assert_array_equal(grid.cell_factors == 0, factors == 0)
    if level == 1.0 and weighting is not Weighting.natural:  # the filter clipped cells
        unfiltered = dense_reference(uvw_m, freq_hz, weight, level=0.0, **kw)[0]
        assert np.count_nonzero(factors != unfiltered) > 100
    # pass 2 on the same data, then on other data, some in cells pass 1 left empty
    for data in ((uvw_m, freq_hz, weight), core_and_edges(2)):
        got, expected = grid.imaging_weights(*data), reference(*data)
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=0)
        np.testing.assert_array_equal(got == 0, expected == 0)


def test_the_other_data_falls_in_cells_the_first_left_empty():
    first, other = core_and_edges(1), core_and_edges(2)
    uniform = dense_reference(*first, weighting=Weighting.uniform, robust=0.0, level=0.0)[1]
    natural = dense_reference(*first, weighting=Weighting.natural, robust=0.0, level=0.0)[1]
    assert np.count_nonzero((uniform(*other) == 0) & (natural(*other) > 0)) > 1000


def test_weight_grid_memory_follows_the_visibilities_not_the_image():
    # The same visibilities on a 2048^2 and an 8192^2 image (the uv extent is set by the
    # pixel size, the cell by the image size): the occupied cells, hence the memory, match.
    cell_rad = 1e-5
    rng = np.random.default_rng(3)
    freq_hz = np.array([1.0e9, 1.1e9])
    uvw_m = rng.uniform(-0.5, 0.5, (10000, 3)) * SPEED_OF_LIGHT_M_S / freq_hz[-1] / cell_rad
    weight = rng.uniform(0.5, 2.0, (len(uvw_m), len(freq_hz)))

    def held_and_peak(npix):
        tracemalloc.start()
        try:
            grid = WeightGrid(
                npix_x=npix, npix_y=npix, cell_rad=cell_rad, weighting=Weighting.briggs
            )
            grid.add(uvw_m, freq_hz, weight)
            grid.finalize()
            out = grid.imaging_weights(uvw_m, freq_hz, weight)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert np.count_nonzero(out) == weight.size  # every visibility on both grids
        return grid.nbytes, peak

    (small, small_peak), (large, large_peak) = held_and_peak(2048), held_and_peak(8192)
    assert 16 * weight.size * 0.9 < small <= 16 * weight.size * 1.1  # 16 B per occupied cell
    assert large / small < 1.3 and large_peak / small_peak < 1.3
    assert large_peak < 8 * 9832 * 4916 / 20  # the 8192^2 image's dense half plane: 386 MB
