"""Tests of skarim.imaging.weight_cells: the sorted table of occupied uv cells."""

from __future__ import annotations

import math

import numpy as np
import pytest

from skarim.imaging.weight_cells import (
    BAND_CELLS,
    DENSE_RATIO,
    add_cells,
    chunk_cell_sums,
    find_cells,
    window_sums,
)

# A wide half plane: BAND_CELLS // NX = 14 rows a band, so 20 rows are two bands.
SHAPE = (20, 70_000)
NROWS, NX = SHAPE


def flat(y, x):
    return np.asarray(y, np.int64) * NX + np.asarray(x, np.int64)


def table(seed: int):
    """A dense block in the corner (some values 0) and cells scattered over the plane,
    the four corners included."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:NROWS, 0:60]
    block = flat(yy, xx).ravel()[rng.random(yy.size) < 0.7]
    corners = flat([0, 0, NROWS - 1, NROWS - 1], [0, NX - 1, 0, NX - 1])
    scattered = rng.integers(0, NROWS * NX, 300)
    cells = np.unique(np.concatenate([block, corners, scattered]))
    values = rng.uniform(0.01, 5.0, len(cells))
    values[rng.random(len(cells)) < 0.1] = 0.0
    return cells, values


def brute_window_sums(cells, values, empty, half, query):
    """Each window summed on its own from the table (fsum), its unstored cells as empty."""
    y, x = np.divmod(cells, NX)
    sums, counts = [], []
    for qy, qx in zip(*np.divmod(query, NX), strict=True):
        r0, r1 = max(qy - half, 0), min(qy + half, NROWS)
        c0, c1 = max(qx - half, 0), min(qx + half, NX)
        v = values[(y >= r0) & (y < r1) & (x >= c0) & (x < c1)]
        unstored = (r1 - r0) * (c1 - c0) - len(v)
        sums.append(math.fsum(v) + unstored * empty)
        counts.append(np.count_nonzero(v) + unstored * (empty != 0))
    return np.array(sums), np.array(counts, dtype=float)


def test_the_grid_spans_two_bands():
    assert 1 <= BAND_CELLS // NX < NROWS <= 2 * (BAND_CELLS // NX)


@pytest.mark.parametrize("empty", [0.0, 1.0])
@pytest.mark.parametrize("dense_ratio", [0.0, math.inf, DENSE_RATIO])  # sparse, dense, mixed
@pytest.mark.parametrize("queries", ["block", "scattered", "both"])
def test_window_sums_match_each_window_summed_alone(empty, dense_ratio, queries):
    cells, values = table(1)
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:NROWS, 0:70]
    block = flat(yy, xx).ravel()  # stored and empty cells, the block's edge and beyond
    scattered = np.concatenate(
        [cells[rng.choice(len(cells), 40)], rng.integers(0, NROWS * NX, 40), flat([19], [NX - 1])]
    )
    both = np.concatenate([block, scattered])
    query = np.unique({"block": block, "scattered": scattered, "both": both}[queries])
    for half in (8, 1, 3):
        got = window_sums(cells, values, empty, SHAPE, half, query, dense_ratio=dense_ratio)
        expected = brute_window_sums(cells, values, empty, half, query)
        # a dense buffer sums with running sums along 70000-cell rows: round-off ~ 1e-16 x
        # the row's running total, which the tolerance bounds
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-11, atol=1e-12)
        np.testing.assert_array_equal(got[1], expected[1])


def test_window_sums_of_an_empty_table():
    none = np.empty(0, np.int64)
    sums, counts = window_sums(none, np.empty(0), 1.0, SHAPE, 8, flat([0, 5, 19], [0, 9, NX - 1]))
    np.testing.assert_array_equal(sums, [8 * 8, 13 * 16, 9 * 9])  # clipped windows of ones
    np.testing.assert_array_equal(counts, sums)


def test_window_sums_of_no_query_cell():
    # every visibility flagged: nothing is gridded and nothing is asked for
    cells = flat([3], [40])
    sums, counts = window_sums(cells, np.ones(1), 0.0, SHAPE, 8, np.empty(0, np.int64))
    assert sums.shape == counts.shape == (0,)


def test_find_cells_by_dense_index_and_by_search():
    cells, _ = table(3)
    rng = np.random.default_rng(4)
    near = rng.integers(0, 500, 300)  # a span of 500 cells: the dense index
    far = np.concatenate([cells[rng.choice(len(cells), 50)], rng.integers(0, NROWS * NX, 50)])
    for query in (near, far, np.empty(0, np.int64)):
        pos, found = find_cells(cells, query)
        np.testing.assert_array_equal(found, np.isin(query, cells))
        np.testing.assert_array_equal(cells[pos[found]], query[found])
    assert find_cells(cells, near)[1].any() and find_cells(cells, far)[1].any()


def test_chunks_merge_into_the_sums_of_a_dense_grid():
    rng = np.random.default_rng(5)
    ncell = NROWS * NX
    dense = np.zeros(ncell)
    cells, values = np.empty(0, np.int64), np.empty(0)
    for k in range(6):
        # narrow chunks (summed on their span) and chunks spread over the plane (sorted)
        n = 2000
        cell = rng.integers(k * 100, k * 100 + 800, n) if k % 2 else rng.integers(0, ncell, n)
        weight = rng.uniform(0.1, 2.0, n)
        weight[rng.random(n) < 0.2] = 0.0
        dense += np.bincount(cell, weights=weight, minlength=ncell)
        cells, values = add_cells(cells, values, *chunk_cell_sums(cell, weight))
    assert np.all(np.diff(cells) > 0)
    occupied = np.flatnonzero(dense)
    np.testing.assert_array_equal(cells, occupied)
    np.testing.assert_array_equal(values, dense[occupied])  # same additions, same order
