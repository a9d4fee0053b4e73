"""The grid stage against a direct DFT, tiled gridding against the full image, and batches
of output channels against one channel at a time."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from msfactory import new_run_store, random_uvw_m, write_stokes_i_ms

import skarim.imaging.plan
from skarim.config import (
    ClusterConfig,
    GridConfig,
    OutputConfig,
    ReadConfig,
    RunConfig,
    Weighting,
)
from skarim.constants import SPEED_OF_LIGHT_M_S
from skarim.imaging.grid import grid_channel, grid_channels
from skarim.imaging.plan import (
    accumulator_bytes,
    channel_groups,
    groups_per_batch,
    plan_facets,
)
from skarim.imaging.weighting import WeightGrid
from skarim.io.ms_meta import open_ms
from skarim.io.ms_read import iter_chunks
from skarim.io.store import RunStore
from skarim.run.pipeline import run_imaging


def _direct_dft(uvw_m, freq_hz, vis, weight, npix, cell_rad):
    """Dirty image [y, x] by a direct float64 sum, FITS pixel conventions of DESIGN.md."""
    j = np.arange(npix) - npix / 2
    m = (j * cell_rad)[:, None] * np.ones((1, npix))  # (y, x)
    l_ = -(j * cell_rad)[None, :] * np.ones((npix, 1))
    n = np.sqrt(1 - l_**2 - m**2)
    image = np.zeros((npix, npix))
    for c, f in enumerate(freq_hz):
        u, v, w = (uvw_m * f / SPEED_OF_LIGHT_M_S).T
        for k in range(len(u)):
            phase = 2 * np.pi * (u[k] * l_ + v[k] * m + w[k] * (n - 1))
            image += weight[k, c] * np.real(vis[k, c] * np.exp(-1j * phase))
    return image / weight.sum()


@pytest.mark.parametrize(
    ("weighting", "robust"),
    [(Weighting.natural, 0.0), (Weighting.uniform, 0.0), (Weighting.briggs, 0.0)],
)
def test_dirty_equals_direct_dft_wide_field(tmp_path, weighting, robust):
    rng = np.random.default_rng(1)
    npix, cell = 64, np.deg2rad(3.0 / 60)  # a 3.2-degree field
    freq = np.array([1.0e9, 1.05e9])
    uvw = random_uvw_m(rng, 300, max_m=150.0, w_frac=2.0)  # |w| up to 300 m: non-coplanar
    vis = (rng.normal(size=(300, 2)) + 1j * rng.normal(size=(300, 2))).astype(np.complex128)
    ms = write_stokes_i_ms(tmp_path / "dft.ms", uvw, freq, vis)
    cfg = RunConfig(
        read=ReadConfig(ms=ms),
        grid=GridConfig(
            npix_x=npix,
            npix_y=npix,
            cell_rad=cell,
            weighting=weighting,
            robust=robust,
            tile=32,
            epsilon=1e-10,
            double_precision=True,
        ),
        output=OutputConfig(name=str(tmp_path / "dft")),
        dirty_only=True,
    )
    run_imaging(cfg)
    dirty = RunStore.open(cfg.output.store_path).array("dirty")[0]
    # imaging weights of the same visibilities, natural weight of I is 4/(1/1+1/1) = 2
    grid = WeightGrid(npix_x=npix, npix_y=npix, cell_rad=cell, weighting=weighting, robust=robust)
    natural = np.full((300, 2), 2.0)
    grid.add(uvw, freq, natural)
    grid.finalize()
    w = grid.imaging_weights(uvw, freq, natural)
    assert np.count_nonzero(w) > 400  # most visibilities are inside the weight grid
    ref = _direct_dft(uvw, freq, vis, w, npix, cell)
    assert np.abs(dirty - ref).max() < 1e-6 * np.abs(ref).max()


def test_tiled_gridding_equals_full_image(tmp_path):
    rng = np.random.default_rng(2)
    freq = np.array([1.4e9, 1.41e9, 1.42e9, 1.43e9])
    uvw = random_uvw_m(rng, 2000, max_m=2000.0, w_frac=0.3)
    vis = (rng.normal(size=(2000, 4)) + 1j * rng.normal(size=(2000, 4))).astype(np.complex64)
    ms = write_stokes_i_ms(tmp_path / "tiles.ms", uvw, freq, vis)
    cell = np.deg2rad(2.0 / 3600)
    images = {}
    for facet_pix in (128, 32):
        cfg = RunConfig(
            read=ReadConfig(ms=ms, chunk_rows=700),
            grid=GridConfig(
                npix_x=128,
                npix_y=96,
                cell_rad=cell,
                weighting=Weighting.briggs,
                tile=32,
                facet_pix=facet_pix,
                channels_out=2,
            ),
            output=OutputConfig(name=str(tmp_path / f"f{facet_pix}")),
            cluster=ClusterConfig(kind="sync"),  # one thread: ducc0's sums in one order
            dirty_only=True,
            make_psf=True,
        )
        assert len(plan_facets(cfg.grid)) == (1 if facet_pix == 128 else 12)
        result = run_imaging(cfg)
        assert result.tiles_gridded == 2 * 12
        store = RunStore.open(cfg.output.store_path)
        images[facet_pix] = (store.array("dirty")[...], store.array("psf")[...])
    full, tiled = images[128], images[32]
    # facets agree to the gridder's accuracy
    assert np.abs(full[0] - tiled[0]).max() < cfg.grid.epsilon * np.abs(full[0]).max()
    np.testing.assert_array_equal(full[1], tiled[1])
    assert full[1][0, 32, 32] == pytest.approx(1.0)


def test_channel_groups_split_like_wsclean():
    groups = channel_groups(10, 4)
    assert [(g.start, g.stop) for g in groups] == [(0, 2), (2, 5), (5, 8), (8, 10)]


def test_chunked_reading_sums_to_the_same_image(tmp_path):
    rng = np.random.default_rng(3)
    freq = np.array([1.0e9])
    uvw = random_uvw_m(rng, 500, max_m=500.0)
    vis = (rng.normal(size=(500, 1)) + 1j * rng.normal(size=(500, 1))).astype(np.complex64)
    ms = write_stokes_i_ms(tmp_path / "c.ms", uvw, freq, vis)
    out = []
    for rows in (37, 10_000):
        read = ReadConfig(ms=ms, chunk_rows=rows)
        assert sum(len(c.uvw_m) for c in iter_chunks(open_ms(read), read)) == 500
        cfg = RunConfig(
            read=read,
            grid=GridConfig(
                npix_x=64,
                npix_y=64,
                cell_rad=np.deg2rad(10 / 3600),
                tile=64,
                weighting=Weighting.uniform,
            ),
            output=OutputConfig(name=str(tmp_path / f"c{rows}")),
            dirty_only=True,
        )
        run_imaging(cfg)
        out.append(RunStore.open(cfg.output.store_path).array("dirty")[0])
    # the chunks' images sum to the one-pass image to the gridder's accuracy
    assert np.abs(out[0] - out[1]).max() < cfg.grid.epsilon * np.abs(out[1]).max()


def _six_channel_ms(tmp_path):
    """600 rows x 6 channels of noise, one visibility NaN (channel 2)."""
    rng = np.random.default_rng(4)
    freq = 1.4e9 + 1e7 * np.arange(6)
    uvw = random_uvw_m(rng, 600, max_m=3000.0, w_frac=0.3)
    vis = (rng.normal(size=(600, 6)) + 1j * rng.normal(size=(600, 6))).astype(np.complex64)
    vis[5, 2] = np.nan
    return write_stokes_i_ms(tmp_path / "six.ms", uvw, freq, vis)


def _config(tmp_path, ms, name, *, chunk_rows=None, **grid) -> RunConfig:
    return RunConfig(
        read=ReadConfig(ms=ms, chunk_rows=chunk_rows),
        grid=GridConfig(
            npix_x=256,
            npix_y=256,
            cell_rad=np.deg2rad(1 / 3600),
            tile=64,
            channels_out=3,
            weighting=Weighting.briggs,
            **grid,
        ),
        output=OutputConfig(name=str(tmp_path / name)),
        dirty_only=True,
    )


def _products(store):
    return {name: store.array(name)[...] for name in ("dirty", "psf", "sumwt", "gridded")}


@pytest.mark.parametrize(
    ("facet_pix", "budget_mb", "batch", "passes"),
    [(128, 2048, 3, 1 + 4), (256, 2, 2, 2 * (1 + 1))],  # 4 facets, one batch; 1 facet, 2+1
)
def test_batched_grid_equals_channel_by_channel_reading_once_per_pass(
    tmp_path, count_passes, facet_pix, budget_mb, batch, passes
):
    ms = _six_channel_ms(tmp_path)
    grid = {"facet_pix": facet_pix, "memory_budget_mb": budget_mb}
    batched = _config(tmp_path, ms, "batched", chunk_rows=250, **grid)  # 3 chunks
    assert groups_per_batch(batched.grid) == batch
    store, groups = new_run_store(batched)
    written = []
    stats = grid_channels(store, batched.read, batched.grid, groups, on_tiles=written.append)
    assert len(count_passes) == passes
    assert sum(written) == 3 * 16
    assert stats == {"nonfinite": 1, "visibilities": 6 * 600 - 1, "sumwt": 3}

    count_passes.clear()
    single = _config(tmp_path, ms, "single", chunk_rows=250, **grid)
    single_store, _ = new_run_store(single)
    for group in groups:
        grid_channel(single_store, single.read, single.grid, group)
    assert len(count_passes) == 3 * (1 + len(plan_facets(single.grid)))
    for name, value in _products(single_store).items():
        np.testing.assert_array_equal(_products(store)[name], value, err_msg=name)


def test_a_selection_in_one_chunk_is_read_once(tmp_path, count_passes):
    cfg = _config(tmp_path, _six_channel_ms(tmp_path), "once", facet_pix=128)  # 4 facets
    store, groups = new_run_store(cfg)
    grid_channels(store, cfg.read, cfg.grid, groups)
    assert len(count_passes) == 1
    assert grid_channels(store, cfg.read, cfg.grid, groups) == {
        "nonfinite": 0,
        "visibilities": 0,
        "sumwt": 0,
    }
    assert len(count_passes) == 1  # everything was done: nothing read


class _Killed(Exception):
    pass


def test_an_interrupted_batch_resumes_to_the_same_products(tmp_path):
    ms = _six_channel_ms(tmp_path)
    whole = _config(tmp_path, ms, "whole", chunk_rows=250, facet_pix=128)
    store, groups = new_run_store(whole)
    grid_channels(store, whole.read, whole.grid, groups)

    cfg = _config(tmp_path, ms, "killed", chunk_rows=250, facet_pix=128)
    killed, _ = new_run_store(cfg)

    def kill(n):
        raise _Killed

    with pytest.raises(_Killed):  # after channel 0's first facet is written
        grid_channels(killed, cfg.read, cfg.grid, groups, on_tiles=kill)
    gridded = killed.array("gridded")[...]  # (chan, nty, ntx)
    assert gridded.sum() == 4 and gridded[0, :2, :2].all()
    assert list(killed.array("sumwt")[...] > 0) == [True, False, False]
    written = []
    grid_channels(killed, cfg.read, cfg.grid, groups, on_tiles=written.append)
    assert sum(written) == 3 * 16 - 4
    for name, value in _products(store).items():
        np.testing.assert_array_equal(_products(killed)[name], value, err_msg=name)


def test_a_batch_around_a_finished_channel_counts_only_its_own_channels(tmp_path):
    ms = _six_channel_ms(tmp_path)
    whole = _config(tmp_path, ms, "whole")
    store, groups = new_run_store(whole)
    grid_channels(store, whole.read, whole.grid, groups)
    cfg = _config(tmp_path, ms, "gap")
    gap, _ = new_run_store(cfg)
    assert grid_channel(gap, cfg.read, cfg.grid, groups[1])["nonfinite"] == 1  # the NaN
    stats = grid_channels(gap, cfg.read, cfg.grid, groups)  # reads channels 0-5, grids 0 and 2
    assert stats == {"nonfinite": 0, "visibilities": 4 * 600, "sumwt": 2}
    for name, value in _products(store).items():
        np.testing.assert_array_equal(_products(gap)[name], value, err_msg=name)


def test_groups_per_batch_keeps_the_accumulators_within_the_budget():
    cfg = GridConfig(npix_x=1024, npix_y=1024, cell_rad=7e-6, channels_out=64)
    per_group = accumulator_bytes(cfg)
    # 1024^2 facet + 512^2 PSF + the 1232 x 616 weight grid, float64
    assert per_group == 8 * (1024**2 + 512**2 + 1232 * 616)
    for budget_mb in (1, 16, 100, 2048):
        n = groups_per_batch(cfg.model_copy(update={"memory_budget_mb": budget_mb}))
        assert n == max(1, min(64, budget_mb * 2**20 // per_group))
        assert n == 1 or n * per_group <= budget_mb * 2**20
    small_facets = cfg.model_copy(update={"facet_pix": 256, "memory_budget_mb": 100})
    assert accumulator_bytes(small_facets) == 8 * (256**2 + 512**2 + 1232 * 616)
    assert groups_per_batch(small_facets) > groups_per_batch(
        cfg.model_copy(update={"memory_budget_mb": 100})
    )
    assert doctest.testmod(skarim.imaging.plan).failed == 0


def _dirty_of(ms, tmp_path, name, npix_x, npix_y, tile, weighting, facet_pix=8192):
    cfg = RunConfig(
        read=ReadConfig(ms=ms),
        grid=GridConfig(
            npix_x=npix_x,
            npix_y=npix_y,
            cell_rad=np.deg2rad(2.0 / 3600),
            weighting=weighting,
            tile=tile,
            facet_pix=facet_pix,
        ),
        output=OutputConfig(name=str(tmp_path / name)),
        dirty_only=True,
    )
    run_imaging(cfg)
    store = RunStore.open(cfg.output.store_path)
    return cfg, store.array("dirty")[0], store.array("psf")[0]


def test_partial_edge_tiles_give_the_cut_out_of_a_tile_multiple_image(tmp_path):
    rng = np.random.default_rng(8)
    freq = np.array([1.4e9, 1.41e9])
    uvw = random_uvw_m(rng, 1500, max_m=2000.0, w_frac=0.3)
    vis = (rng.normal(size=(1500, 2)) + 1j * rng.normal(size=(1500, 2))).astype(np.complex64)
    ms = write_stokes_i_ms(tmp_path / "edge.ms", uvw, freq, vis)
    # 120 x 88 in 32-pixel tiles: the last tile of each row and column is 24 pixels, and
    # 64-pixel facets make partial facets too
    cfg, odd, odd_psf = _dirty_of(ms, tmp_path, "odd", 120, 88, 32, Weighting.natural, 64)
    assert (cfg.grid.ntile_x, cfg.grid.ntile_y) == (4, 3) and len(plan_facets(cfg.grid)) == 4
    assert odd.shape == (88, 120)
    # the same sky on 128 x 96 pixels (whole tiles) has its phase centre 4 pixels further in
    _, whole, whole_psf = _dirty_of(ms, tmp_path, "whole", 128, 96, 32, Weighting.natural)
    peak = np.abs(whole).max()
    assert np.abs(odd - whole[4:92, 4:124]).max() < cfg.grid.epsilon * peak
    np.testing.assert_allclose(odd_psf, whole_psf, atol=cfg.grid.epsilon)
    # and one tile over the whole image gives the same image (Briggs: the weights depend on
    # the image size only, not on the tiles)
    _, tiled, tiled_psf = _dirty_of(ms, tmp_path, "tb", 120, 88, 32, Weighting.briggs, 64)
    _, single, single_psf = _dirty_of(ms, tmp_path, "sb", 120, 88, 120, Weighting.briggs)
    assert np.abs(tiled - single).max() < cfg.grid.epsilon * np.abs(single).max()
    np.testing.assert_allclose(tiled_psf, single_psf[88:152, 88:152], atol=cfg.grid.epsilon)
