"""Major cycles of channels deconvolved together: accepted, refused and pruned as one."""

from __future__ import annotations

import numpy as np
from msfactory import NPIX, SOURCES, gridded_store, point_sources_ms

from skarim.config import RunConfig
from skarim.deconv.major_cycle import finish_cycle


def _joined(cfg: RunConfig, cycles: int) -> RunConfig:
    deconv = {"major_cycles": cycles, "converged_ratio": 0.0, "join_channels": True}
    return cfg.model_copy(update={"deconv": cfg.deconv.model_copy(update=deconv)})


def _truth() -> np.ndarray:
    truth = np.zeros((3, NPIX, NPIX), dtype=np.float32)
    for y, x, flux in SOURCES:
        truth[:, y, x] = flux
    return truth


def test_joined_channels_are_accepted_together_when_their_mean_square_residual_falls(tmp_path):
    cfg, store, groups = gridded_store(tmp_path, point_sources_ms(tmp_path), "joined")
    cfg = _joined(cfg, 4)
    truth = _truth()
    store.array("model_next")[...] = 0.5 * truth
    finish_cycle(store, cfg, groups, 1, joined=True)
    # channel 0 no better (its residual is -0.5 of the sky instead of +0.5), the others
    # exact: alone, channel 0 would be refused; joined, the MFS residual fell, so all are kept
    step = np.stack([1.5 * truth[0], truth[1], truth[2]])
    store.array("model_next")[...] = step
    alone = finish_cycle(store, cfg.model_copy(), groups[:1], 2)  # the per-channel rule
    assert alone[0].stopped
    store.array("model_next")[...] = step
    store.array("rcycle")[0] = 1
    store.array("cycle")[0] = 1
    stats = finish_cycle(store, cfg, groups, 2, joined=True)
    assert [s.stopped for s in stats] == [False] * 3
    assert np.array_equal(store.array("model")[...], step)
    assert list(store.array("rcycle")[...]) == [2, 2, 2]
    # all channels three times the sky: worse in mean square: all refused, the RIM phase ends
    store.array("model_next")[...] = 3 * truth
    stats = finish_cycle(store, cfg, groups, 3, joined=True)
    assert [s.stopped for s in stats] == [True] * 3
    assert list(store.array("rcycle")[...]) == [4, 4, 4]
    assert np.array_equal(store.array("model")[1:], truth[1:])  # pruning keeps the sources


def test_joined_pruning_keeps_the_same_pixels_in_every_channel(tmp_path):
    cfg, store, groups = gridded_store(tmp_path, point_sources_ms(tmp_path), "prune")
    cfg = _joined(cfg, 1)  # cycle 1 is the RIM's last: its model is pruned
    model = _truth()
    model[0, 5, 5] = 0.002  # flux in one channel where the data hold none
    model[:, 30, 30] = 0.001  # and in all of them
    store.array("model_next")[...] = model
    finish_cycle(store, cfg, groups, 1, joined=True)
    kept = store.array("model")[...]
    for y, x, flux in SOURCES:
        assert np.allclose(kept[:, y, x], flux)
    assert kept[0, 5, 5] == 0 and np.all(kept[:, 30, 30] == 0)
    support = kept != 0
    assert (support == support[0]).all()  # one set of pixels in all channels
