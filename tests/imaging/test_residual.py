"""Exact residuals: a model equal to the sky leaves nothing, batched or one channel at a time."""

from __future__ import annotations

import numpy as np
import pytest
from msfactory import NPIX, SOURCES, gridded_store, point_sources_ms

from skarim.imaging.residual import residual_channel, residual_channels


def test_the_true_model_leaves_no_residual(tmp_path):
    cfg, store, groups = gridded_store(tmp_path, point_sources_ms(tmp_path), "true")
    model = np.zeros((3, NPIX, NPIX), dtype=np.float32)
    for y, x, flux in SOURCES:
        model[:, y, x] = flux
    store.array("model")[...] = model
    stats = residual_channels(store, cfg.read, cfg.grid, groups)
    dirty, residual = store.array("dirty")[...], store.array("residual")[...]
    for c in range(3):
        assert dirty[c, 40, 20] == pytest.approx(1.0, abs=0.05)
        assert np.abs(residual[c]).max() < 1e-6 * np.abs(dirty[c]).max()
        assert stats[c]["flux"] == pytest.approx(1.5)
        assert stats[c]["rms"] < 1e-6


def test_batched_residuals_equal_one_channel_at_a_time(tmp_path, count_passes):
    ms = point_sources_ms(tmp_path)
    model = np.zeros((3, NPIX, NPIX), dtype=np.float32)
    model[:, 40, 20] = [0.9, 0.8, 0.7]  # part of one source: a residual remains
    runs = {name: gridded_store(tmp_path, ms, name) for name in ("batched", "single")}
    passes = count_passes
    passes.clear()  # count the residual stage only, not the gridding above
    cfg, store, groups = runs["batched"]
    store.array("model")[...] = model
    stats = residual_channels(store, cfg.read, cfg.grid, groups)
    assert len(passes) == 1 + 4  # weighting, then one pass per facet, for all three channels
    passes.clear()
    cfg, single, groups = runs["single"]
    single.array("model")[...] = model
    single_stats = [residual_channel(single, cfg.read, cfg.grid, g) for g in groups]
    assert len(passes) == 3 * (1 + 4)
    residual = store.array("residual")[...]
    np.testing.assert_array_equal(residual, single.array("residual")[...])
    assert stats == single_stats
    assert [s["flux"] for s in stats] == pytest.approx([0.9, 0.8, 0.7])
    assert residual[0, 40, 20] == pytest.approx(0.1, abs=0.02)
    assert residual[0, 10, 50] == pytest.approx(0.5, abs=0.05)


def test_a_batch_read_whole_is_held_for_the_next_residuals(tmp_path, count_passes):
    ms = point_sources_ms(tmp_path)
    model = np.zeros((3, NPIX, NPIX), dtype=np.float32)
    model[:, 40, 20] = 0.9
    chunked_cfg, chunked, groups = gridded_store(tmp_path, ms, "chunked")  # 3 chunks
    count_passes.clear()
    chunked.array("model")[...] = model
    want = residual_channels(chunked, chunked_cfg.read, chunked_cfg.grid, groups)
    assert len(count_passes) == 1 + 4  # read in chunks: not held, read again
    count_passes.clear()
    cfg, store, groups = gridded_store(tmp_path, ms, "whole", chunk_rows=None)  # one chunk
    assert len(count_passes) == 1  # the gridding's read, held for the residuals
    store.array("model")[...] = model
    for _ in range(2):
        got = residual_channels(store, cfg.read, cfg.grid, groups)
        assert [s["rms"] for s in got] == pytest.approx([s["rms"] for s in want], rel=1e-9)
        np.testing.assert_allclose(
            store.array("residual")[...], chunked.array("residual")[...], rtol=0, atol=1e-7
        )
    assert len(count_passes) == 1  # neither residual read the Measurement Set
