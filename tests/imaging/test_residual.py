"""Exact residuals: a model equal to the sky leaves nothing, batched or one channel at a time,
with one facet or several, each facet's model predicted once per chunk."""

from __future__ import annotations

import numpy as np
import pytest
from msfactory import NPIX, SOURCES, gridded_store, point_sources_ms

import skarim.imaging.residual
from skarim.imaging.plan import plan_facets
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


#: A model with flux in each of the four 32-pixel facets of a 64^2 image: FITS (y, x), Jy.
FOUR_FACET_MODEL = [(40, 20, 0.9), (10, 50, 0.4), (12, 8, 0.2), (52, 44, 0.3)]


def _four_facet_model() -> np.ndarray:
    model = np.zeros((3, NPIX, NPIX), dtype=np.float32)
    for y, x, flux in FOUR_FACET_MODEL:
        model[:, y, x] = flux
    return model


def test_four_facets_equal_one_facet_and_leave_no_scratch(tmp_path):
    ms = point_sources_ms(tmp_path)
    got = {}
    for name, facet_pix in (("four", 32), ("one", 64)):
        cfg, store, groups = gridded_store(tmp_path, ms, name, facet_pix=facet_pix)
        assert len(plan_facets(cfg.grid)) == {32: 4, 64: 1}[facet_pix]
        store.array("model")[...] = _four_facet_model()
        stats = residual_channels(store, cfg.read, cfg.grid, groups)
        got[name] = (store.array("residual")[...], stats)
        scratch = store.group.get("scratch")
        if facet_pix == 32:  # kept on disk between the facet passes, then removed
            assert scratch is not None and list(scratch.array_keys()) == []
        else:  # one facet: predicted and imaged in one pass, nothing kept
            assert scratch is None
    (four, four_stats), (one, one_stats) = got["four"], got["one"]
    # different facets, same sky: equal to the gridder's accuracy (epsilon 1e-10)
    np.testing.assert_allclose(four, one, rtol=0, atol=1e-7 * np.abs(one).max())
    assert [s["rms"] for s in four_stats] == pytest.approx([s["rms"] for s in one_stats], rel=1e-6)
    assert four[0, 40, 20] == pytest.approx(0.1, abs=0.02)  # 1.0 Jy less 0.9 of model
    assert four[0, 12, 8] == pytest.approx(-0.2, abs=0.05)  # model flux where the sky has none


@pytest.mark.parametrize("chunk_rows", [150, None], ids=["three-chunks", "held-whole"])
def test_each_facet_model_is_predicted_once_per_chunk(tmp_path, monkeypatch, chunk_rows):
    cfg, store, groups = gridded_store(tmp_path, point_sources_ms(tmp_path), "run", chunk_rows)
    store.array("model")[...] = _four_facet_model()
    calls = []  # (first row's u, rows, first frequency, facet's x0, y0) of each prediction
    image_to_vis = skarim.imaging.residual.image_to_vis

    def counted(**kwargs):
        block, uvw = kwargs["block"], kwargs["uvw_m"]
        calls.append((uvw[0, 0], len(uvw), kwargs["freq_hz"][0], block.x0, block.y0))
        return image_to_vis(**kwargs)

    monkeypatch.setattr(skarim.imaging.residual, "image_to_vis", counted)
    residual_channels(store, cfg.read, cfg.grid, groups)
    nchunk, nfacet = (3 if chunk_rows else 1), len(plan_facets(cfg.grid))
    assert nfacet == 4
    assert len(calls) == nchunk * len(groups) * nfacet  # F per chunk and channel, not F^2
    assert len(set(calls)) == len(calls)  # no facet of a channel predicted twice for a chunk
