"""A tile pass over the tiles of a channel: what it writes, and the tiles the RIM skips."""

from __future__ import annotations

import numpy as np
from msfactory import NPIX, gridded_store, point_sources_ms

from skarim.deconv.device import select_device
from skarim.deconv.passes import deconvolve_tile_batch
from skarim.deconv.rim_deconvolver import RimDeconvolver
from skarim.deconv.tiles import tile_windows


def test_a_rim_pass_skips_the_tiles_whose_residual_holds_nothing(tmp_path):
    cfg, store, _ = gridded_store(tmp_path, point_sources_ms(tmp_path), "skip")
    sigma = 1e-3  # Jy/beam
    rng = np.random.default_rng(1)
    residual = rng.normal(0, sigma, (NPIX, NPIX))
    residual[40, 20] += 0.2  # 200 sigma in tile (1, 0); tile (1, 1) holds noise only
    floor = np.full((NPIX, NPIX), 1e-4, dtype=np.float32)  # the model of the cycle before
    store.array("residual")[0] = residual
    store.array("model")[0] = floor
    row = [w for w in tile_windows(cfg) if w.ty == 1]  # tiles (1, 0) and (1, 1)
    cpu = select_device("cpu")
    rim = RimDeconvolver.from_config(cfg.deconv, cpu)
    written, skipped = deconvolve_tile_batch(store, rim, 0, 2, row, sigma)
    assert (written, skipped) == (2, 1) and cfg.deconv.skip_sigma == 8.0
    assert list(store.array("cycle")[0, 1]) == [2, 2]
    out = store.array("model_next")[0]
    np.testing.assert_array_equal(out[32:, 32:], floor[32:, 32:])  # the empty tile: as it was
    assert out[32:, :32].max() > 100 * floor.max()  # the source's tile: the RIM ran there
    # with skipping off, the RIM runs on both tiles and moves the empty one's model too
    store.array("cycle")[0, 1] = [1, 1]
    every = RimDeconvolver.from_config(cfg.deconv.model_copy(update={"skip_sigma": 0.0}), cpu)
    assert deconvolve_tile_batch(store, every, 0, 2, row, sigma) == (2, 0)
    assert not np.array_equal(store.array("model_next")[0, 32:, 32:], floor[32:, 32:])
