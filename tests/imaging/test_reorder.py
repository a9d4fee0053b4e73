"""Reordered visibilities: the grid stage writes each channel's Stokes I and imaging weights
once, and exact residuals read them instead of the Measurement Set, with equal results."""

from __future__ import annotations

import numpy as np
import pytest
from msfactory import NPIX, gridded_store, point_sources_ms

import skarim.imaging.grid
from skarim.imaging.batch import ChannelBatch, reordered_batch, weighting_pass
from skarim.imaging.plan import FacetShare, plan_facets
from skarim.imaging.residual import residual_channels
from skarim.io.ms_meta import open_ms
from skarim.io.ms_read import iter_chunks


def _model() -> np.ndarray:
    model = np.zeros((3, NPIX, NPIX), dtype=np.float32)
    model[:, 40, 20] = [0.9, 0.8, 0.7]  # part of one source, a source where the sky has none
    model[:, 12, 8] = 0.2
    return model


def test_the_grid_stage_writes_stokes_i_and_imaging_weights(tmp_path):
    cfg, store, groups = gridded_store(tmp_path, point_sources_ms(tmp_path), "run", reorder=True)
    arrays = store.group["reordered"]
    assert arrays["done"][...].tolist() == [1, 1, 1] and arrays["uvw_done"][0] == 1
    meta = open_ms(cfg.read)
    batch = weighting_pass(meta, cfg.read, cfg.grid, groups)
    for chunk in iter_chunks(meta, cfg.read, precision="double"):
        rows = slice(chunk.row_start, chunk.row_start + len(chunk.uvw_m))
        np.testing.assert_array_equal(arrays["uvw"][rows], chunk.uvw_m)
        for k, g in enumerate(groups):
            _, vis, weight = batch.group_data(chunk, k)  # Briggs weights, as gridded
            np.testing.assert_array_equal(arrays["vis"][rows, g.start : g.stop], vis)
            np.testing.assert_array_equal(arrays["weight"][rows, g.start : g.stop], weight)
    assert np.count_nonzero(arrays["weight"][...]) > 0.9 * arrays["weight"].size


def test_reordered_residuals_equal_those_read_from_the_measurement_set(tmp_path, count_passes):
    ms = point_sources_ms(tmp_path)
    runs = {name: gridded_store(tmp_path, ms, name, reorder=name == "reordered")
            for name in ("reordered", "read")}  # fmt: skip
    got = {}
    for name, (cfg, store, groups) in runs.items():
        store.array("model")[...] = _model()
        count_passes.clear()
        stats = residual_channels(store, cfg.read, cfg.grid, groups)
        got[name] = (store.array("residual")[...], stats, len(count_passes))
    (reordered, r_stats, r_passes), (read, stats, passes) = got["reordered"], got["read"]
    assert len(plan_facets(runs["read"][0].grid)) == 4
    assert passes == 1 + 4  # weighting, then one per facet, each over three chunks
    assert r_passes == 0  # the Measurement Set is not read at all
    np.testing.assert_allclose(reordered, read, rtol=0, atol=1e-12)
    assert [s["rms"] for s in r_stats] == pytest.approx([s["rms"] for s in stats], rel=1e-12)
    assert read[0, 40, 20] == pytest.approx(0.1, abs=0.02)
    assert read[0, 12, 8] == pytest.approx(-0.2, abs=0.05)


def test_a_channel_left_unwritten_is_read_from_the_measurement_set(tmp_path, count_passes):
    cfg, store, groups = gridded_store(tmp_path, point_sources_ms(tmp_path), "run", reorder=True)
    store.array("model")[...] = _model()
    residual_channels(store, cfg.read, cfg.grid, groups)
    want = store.array("residual")[...]
    store.group["reordered/done"][1] = 0  # as a run killed while gridding channel 1 leaves it
    store.array("residual")[...] = 0.0
    count_passes.clear()
    residual_channels(store, cfg.read, cfg.grid, groups)
    assert len(count_passes) == 1 + 4  # the batch holds channel 1: read as without reordering
    np.testing.assert_allclose(store.array("residual")[...], want, rtol=0, atol=1e-12)


def test_only_the_lead_share_writes_and_resumed_channels_are_not_rewritten(tmp_path):
    cfg, store, groups = gridded_store(tmp_path, point_sources_ms(tmp_path), "run", reorder=True)
    arrays = store.group["reordered"]
    written = arrays["vis"][...]
    arrays["vis"][...] = 0
    store.array("gridded")[...] = 0  # grid again: a share that is not the lead writes nothing
    facets = tuple(plan_facets(cfg.grid))
    skarim.imaging.grid.grid_channels(
        store, cfg.read, cfg.grid, groups, share=FacetShare(facets, lead=False)
    )
    assert not arrays["vis"][...].any()
    arrays["done"][1] = 0
    store.array("gridded")[...] = 0
    skarim.imaging.grid.grid_channels(store, cfg.read, cfg.grid, groups)  # the lead: channel 1
    got = arrays["vis"][...]
    g = groups[1]
    np.testing.assert_array_equal(got[:, g.start : g.stop], written[:, g.start : g.stop])
    assert not np.delete(got, np.s_[g.start : g.stop], axis=1).any()
    assert arrays["done"][...].tolist() == [1, 1, 1]


def test_a_reordered_batch_is_read_in_the_rows_given_or_whole_within_the_budget(tmp_path):
    cfg, store, groups = gridded_store(tmp_path, point_sources_ms(tmp_path), "run", reorder=True)
    meta = open_ms(cfg.read)
    budget = cfg.read.model_copy(update={"chunk_rows": None})  # 256 MiB hold all 400 rows
    batch = reordered_batch(store, meta, budget, cfg.grid, groups[1:])
    assert isinstance(batch, ChannelBatch) and batch.weights is None
    chunks = list(batch.chunks())
    assert len(chunks) == 1 and len(chunks[0].uvw_m) == meta.nrow
    assert chunks[0].vis.shape == (meta.nrow, groups[2].stop - groups[1].start)
    assert batch.held  # read whole: held for the next residual of the process
    given = reordered_batch(store, meta, cfg.read, cfg.grid, groups)
    rows = [len(c.uvw_m) for c in given.chunks()] if given is not None else []
    assert rows == [150, 150, 100]  # chunk_rows 150 of 400 rows: read as given
