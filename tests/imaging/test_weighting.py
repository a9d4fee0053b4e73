"""Tests of skarim.imaging.weighting: natural, uniform and Briggs weights on WSClean's grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from skarim.config import Weighting
from skarim.constants import SPEED_OF_LIGHT_M_S
from skarim.errors import InputError
from skarim.imaging.weighting import WeightGrid, briggs_factors, padded_npix

# A 64-pixel image, no padding, cells of 100 wavelengths; at this frequency 1 m = 1 wavelength.
NPIX = 64
CELL_RAD = 1.0 / (NPIX * 100.0)
ONE_LAMBDA_HZ = np.array([SPEED_OF_LIGHT_M_S])
WSCLEAN_REF = Path(__file__).parents[1] / "data" / "wsclean_weights_evla.npz"


def make_grid(weighting: Weighting, **kw) -> WeightGrid:
    args = dict(
        npix_x=NPIX,
        npix_y=NPIX,
        cell_rad=CELL_RAD,
        weighting=weighting,
        padding=1.0,
        rank_filter_level=0.0,
    )
    args.update(kw)
    return WeightGrid(**args)


def run(grid: WeightGrid, uvw_m, freq_hz, weight) -> np.ndarray:
    grid.add(uvw_m, freq_hz, weight)
    grid.finalize()
    return grid.imaging_weights(uvw_m, freq_hz, weight)


def uv_rows(uv: list[tuple[float, float]]) -> np.ndarray:
    """(nrow, 3) UVW in metres (= wavelengths at ONE_LAMBDA_HZ) with w = 0."""
    return np.array([(u, v, 0.0) for u, v in uv])


def random_vis(seed: int, nrow: int = 400, nchan: int = 3):
    """Random visibilities, all inside the 64-pixel grid, some with weight 0."""
    rng = np.random.default_rng(seed)
    freq_hz = np.linspace(1.0e9, 1.2e9, nchan)
    uvw_m = rng.uniform(-0.35, 0.35, (nrow, 3)) * 3200 * SPEED_OF_LIGHT_M_S / freq_hz[-1]
    weight = rng.uniform(0.5, 2.0, (nrow, nchan)).astype(np.float32)
    weight[rng.random((nrow, nchan)) < 0.1] = 0.0
    return uvw_m, freq_hz, weight


def reference_cells(uvw_m, freq_hz) -> np.ndarray:
    """Cell of each visibility written out by hand: v >= 0 half plane, floor, centre nx/2."""
    du = 1.0 / (NPIX * CELL_RAD)
    u = uvw_m[:, :1] * freq_hz / SPEED_OF_LIGHT_M_S
    v = uvw_m[:, 1:2] * freq_hz / SPEED_OF_LIGHT_M_S
    sign = np.where(v < 0, -1.0, 1.0)
    x = np.floor(sign * u / du + NPIX // 2).astype(int)
    y = np.floor(sign * v / du).astype(int)
    return y * NPIX + x


def test_padded_size_follows_wsclean():
    assert padded_npix(256, 1.2) == 308  # ceil(307.2), already a multiple of 4
    assert padded_npix(254, 1.2) == 308  # ceil(304.8) = 305, up to a multiple of 4
    assert padded_npix(4096, 1.0) == 4096
    grid = WeightGrid(npix_x=256, npix_y=128, cell_rad=1e-5, weighting=Weighting.uniform)
    assert (grid.grid_npix_x, grid.grid_npix_y) == (308, 156)
    assert grid.uv_cell_lambda == pytest.approx((1 / (308 * 1e-5), 1 / (156 * 1e-5)))
    assert grid.cell_weight_sums.shape == (78, 308)


def test_natural_returns_the_weights_unchanged():
    uvw_m, freq_hz, weight = random_vis(1)
    grid = make_grid(Weighting.natural)
    out = run(grid, uvw_m, freq_hz, weight)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, weight)


def test_uniform_weights_sum_to_one_in_every_occupied_cell():
    uvw_m, freq_hz, weight = random_vis(2)
    out = run(make_grid(Weighting.uniform), uvw_m, freq_hz, weight)
    cells = reference_cells(uvw_m, freq_hz)
    occupied = weight > 0
    per_cell = np.bincount(cells[occupied], weights=out[occupied].astype(np.float64))
    sums = per_cell[np.unique(cells[occupied])]
    assert len(sums) > 100
    np.testing.assert_allclose(sums, 1.0, rtol=1e-6)


def test_a_visibility_and_its_conjugate_share_a_cell():
    uvw_m = uv_rows([(150.0, 250.0), (-150.0, -250.0)])
    weight = np.array([[1.0], [3.0]])
    out = run(make_grid(Weighting.uniform), uvw_m, ONE_LAMBDA_HZ, weight)
    np.testing.assert_allclose(out[:, 0], [0.25, 0.75])


def test_hand_made_case_against_design_formulas():
    # A = (150, 250) and B = (-150, -250) -> cell (y=2, x=33), W = 1 + 3 = 4;
    # C = (-420, 30) -> cell (y=0, x=27), W = 2; D has weight 0; E lies beyond the grid
    # (x = floor(33 + 32) = 65 >= 64): dropped, and left out of every sum.
    uvw_m = uv_rows([(150, 250), (-150, -250), (-420, 30), (10, 10), (3300, 0)])
    weight = np.array([[1.0], [3.0], [2.0], [0.0], [50.0]])
    w = weight[:, 0]

    uniform = run(make_grid(Weighting.uniform), uvw_m, ONE_LAMBDA_HZ, weight)[:, 0]
    np.testing.assert_allclose(uniform, [1 / 4, 3 / 4, 2 / 2, 0, 0])

    # f^2 = (5 * 10^-R)^2 / (sum_k W_k^2 / sum_i w_i), sum W^2 = 16 + 4 = 20, sum w = 6
    for robust in (0.0, 1.0, -0.5):
        f2 = (5 * 10**-robust) ** 2 / (20 / 6)
        expected = w / (1 + np.array([4, 4, 2, 0, 0]) * f2)
        expected[-1] = 0.0
        briggs = make_grid(Weighting.briggs, robust=robust)
        np.testing.assert_allclose(run(briggs, uvw_m, ONE_LAMBDA_HZ, weight)[:, 0], expected)
    np.testing.assert_allclose(  # R = 0: f^2 = 7.5, factors 1/31 and 1/16
        run(make_grid(Weighting.briggs), uvw_m, ONE_LAMBDA_HZ, weight)[:, 0],
        [1 / 31, 3 / 31, 2 / 16, 0, 0],
    )
    natural = run(make_grid(Weighting.natural), uvw_m, ONE_LAMBDA_HZ, weight)[:, 0]
    np.testing.assert_array_equal(natural, [1, 3, 2, 0, 0])


def test_grid_edges_as_in_wsclean():
    # Inside: 0 <= floor(u / 100 + 32) < 64 and floor(v / 100) < 32, after (u, v) -> (-u, -v)
    # for v < 0; the grid edge at u = -3200 is inside, u = +3200 outside.
    uvw_m = uv_rows(
        [(-3200, 10), (3200, 10), (3200, -10), (0, 3199.9), (0, 3200), (0, -3200), (3199, 0)]
    )
    weight = np.ones((len(uvw_m), 1))
    expected = [1, 0, 1, 1, 0, 0, 1]
    for weighting in Weighting:
        out = run(make_grid(weighting), uvw_m, ONE_LAMBDA_HZ, weight)[:, 0]
        np.testing.assert_array_equal(out > 0, np.array(expected, dtype=bool), err_msg=weighting)


def test_channel_frequency_scales_uv():
    # 1600 m at 1 wavelength per metre is cell x = 48; at twice the frequency it is 3200
    # wavelengths, beyond the grid.
    uvw_m = uv_rows([(1600.0, 0.0)])
    freq_hz = np.array([1.0, 2.0]) * SPEED_OF_LIGHT_M_S
    out = run(make_grid(Weighting.uniform), uvw_m, freq_hz, np.array([[2.0, 2.0]]))
    np.testing.assert_array_equal(out, [[1.0, 0.0]])


@pytest.mark.parametrize("robust", [5.0, 7.0])
def test_briggs_high_robust_approaches_natural(robust):
    uvw_m, freq_hz, weight = random_vis(3)
    out = run(make_grid(Weighting.briggs, robust=robust), uvw_m, freq_hz, weight)
    ratio = out[weight > 0] / weight[weight > 0]
    assert np.ptp(ratio) / ratio.max() < 1e-3
    np.testing.assert_array_equal(out[weight == 0], 0.0)


def test_briggs_low_robust_approaches_uniform():
    uvw_m, freq_hz, weight = random_vis(4)
    briggs = run(make_grid(Weighting.briggs, robust=-5.0), uvw_m, freq_hz, weight)
    uniform = run(make_grid(Weighting.uniform), uvw_m, freq_hz, weight)
    ratio = briggs[weight > 0] / uniform[weight > 0]
    assert np.ptp(ratio) / ratio.max() < 1e-3


@pytest.mark.parametrize("weighting", list(Weighting))
def test_two_chunks_equal_one(weighting):
    uvw_m, freq_hz, weight = random_vis(5, nrow=300)
    one = make_grid(weighting, robust=0.5, rank_filter_level=3.0)
    expected = run(one, uvw_m, freq_hz, weight)
    two = make_grid(weighting, robust=0.5, rank_filter_level=3.0)
    two.add(uvw_m[:120], freq_hz, weight[:120])
    two.add(uvw_m[120:], freq_hz, weight[120:])
    two.finalize()
    got = np.concatenate(
        [
            two.imaging_weights(uvw_m[:120], freq_hz, weight[:120]),
            two.imaging_weights(uvw_m[120:], freq_hz, weight[120:]),
        ]
    )
    np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.mark.parametrize("weighting", list(Weighting))
def test_zero_weight_stays_zero(weighting):
    uvw_m, freq_hz, weight = random_vis(6)
    out = run(make_grid(weighting), uvw_m, freq_hz, weight)
    assert np.all(out[weight == 0] == 0)
    assert np.all(out[weight > 0] > 0)


def test_rank_filter_clips_to_level_times_local_mean():
    # Four cells of weight 1 (uniform factor 1) in column x = 40 and one cell of weight 0.01
    # (factor 100) at x = 48: its window [40, 56) x [0, 8) holds all five, mean 104 / 5,
    # bound 3 * 20.8 = 62.4, so its imaging weight becomes 0.01 * 62.4.
    cluster = [(800 + 50, 100 * k + 50) for k in range(4)]  # x = 40, y = 0..3
    uvw_m = uv_rows([*cluster, (1600 + 50, 50)])  # x = 48, y = 0
    weight = np.array([[1.0]] * 4 + [[0.01]])
    out = run(make_grid(Weighting.uniform, rank_filter_level=3.0), uvw_m, ONE_LAMBDA_HZ, weight)
    np.testing.assert_allclose(out[:, 0], [1, 1, 1, 1, 0.01 * 62.4])


def test_rank_filter_window_is_half_open():
    # The same cluster at x = 56 lies outside the window [40, 56) of the cell at x = 48:
    # the window holds that cell alone and nothing is clipped.
    cluster = [(2400 + 50, 100 * k + 50) for k in range(4)]  # x = 56
    uvw_m = uv_rows([*cluster, (1600 + 50, 50)])
    weight = np.array([[1.0]] * 4 + [[0.01]])
    out = run(make_grid(Weighting.uniform, rank_filter_level=3.0), uvw_m, ONE_LAMBDA_HZ, weight)
    np.testing.assert_allclose(out[:, 0], [1, 1, 1, 1, 1])


def test_misuse_is_refused():
    uvw_m, freq_hz, weight = random_vis(7, nrow=10)
    grid = make_grid(Weighting.uniform)
    with pytest.raises(RuntimeError, match="finalize"):
        grid.imaging_weights(uvw_m, freq_hz, weight)
    with pytest.raises(RuntimeError, match="finalize"):
        grid.cell_factors  # noqa: B018 -- the property raises
    grid.add(uvw_m, freq_hz, weight)
    grid.finalize()
    with pytest.raises(RuntimeError, match="after finalize"):
        grid.add(uvw_m, freq_hz, weight)
    with pytest.raises(RuntimeError, match="twice"):
        grid.finalize()
    with pytest.raises(RuntimeError, match="finalize"):
        grid.cell_weight_sums  # noqa: B018 -- the property raises
    with pytest.raises(InputError, match="weight"):
        grid.imaging_weights(uvw_m, freq_hz, weight[:, :1])
    with pytest.raises(InputError, match="pixel scale"):
        WeightGrid(npix_x=64, npix_y=64, cell_rad=0.0, weighting=Weighting.uniform)


def test_matches_wsclean_weight_grid_on_a_real_ms(evla_ms):
    """Against the grids WSClean 3.1.0 saved for the shared EVLA MS.

    Made with ``wsclean -size 256 256 -scale 1.2asec -weight uniform|"briggs 0"
    -save-weights -no-dirty evla_ka_J1008.ms`` (default padding 1.2 and rank filter 3):
    the ``v >= 0`` half of ``<name>-weights.fits`` at its occupied cells. At 1.2 arcsec
    about 5% of the visibilities fall beyond the weight grid. Stokes I weights as WSClean's
    ``MSProvider::CopyWeights``: ``min(4 w_RR, 4 w_LL)``.
    """
    tables = pytest.importorskip("casacore.tables")
    ms = evla_ms
    with tables.table(str(ms), ack=False) as t:
        uvw_m = t.getcol("UVW")
        spectrum = t.getcol("WEIGHT_SPECTRUM")  # (nrow, nchan, [RR, RL, LR, LL])
        flag = t.getcol("FLAG")
    with tables.table(str(ms / "SPECTRAL_WINDOW"), ack=False) as t:
        freq_hz = t.getcol("CHAN_FREQ")[0]
    weight = np.minimum(4 * spectrum[..., 0], 4 * spectrum[..., 3]).astype(np.float32)
    weight[flag[..., 0] | flag[..., 3]] = 0.0
    ref = np.load(WSCLEAN_REF)
    cell_rad = np.deg2rad(1.2 / 3600)

    for name, weighting in (("uniform", Weighting.uniform), ("briggs0", Weighting.briggs)):
        grid = WeightGrid(npix_x=256, npix_y=256, cell_rad=cell_rad, weighting=weighting)
        grid.add(uvw_m[:500], freq_hz, weight[:500])
        grid.add(uvw_m[500:], freq_hz, weight[500:])
        if weighting is Weighting.uniform:
            occupied = np.flatnonzero(grid.cell_weight_sums)
            np.testing.assert_array_equal(occupied, ref["cell"])
        grid.finalize()
        factors = grid.cell_factors
        assert factors.shape == tuple(ref["shape"])
        np.testing.assert_allclose(factors.ravel()[ref["cell"]], ref[name], rtol=1e-6)
        inside = grid.imaging_weights(uvw_m, freq_hz, weight) > 0
        assert 0.9 < inside[weight > 0].mean() < 0.99


@pytest.mark.parametrize("robust", [-2.0, 0.0, 0.5])
def test_briggs_factors_follow_the_briggs_formula(robust):
    cells = np.array([0.0, 1.0, 3.0, 10.0])
    f2 = (5.0 * 10.0**-robust) ** 2 / (np.sum(cells**2) / 20.0)
    expected = 1.0 / (1.0 + cells * f2)
    np.testing.assert_allclose(briggs_factors(cells, 20.0, robust), expected, rtol=1e-14)
