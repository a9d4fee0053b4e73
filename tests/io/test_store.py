"""Tests of skarim.io.store: a store belongs to one MS, one configuration and one RIM."""

from __future__ import annotations

import shutil

import pytest
import zarr
from msfactory import point_sources_ms

from skarim.config import DeconvConfig, GridConfig, OutputConfig, ReadConfig, RunConfig
from skarim.deconv.rim import RIM, RIMConfig
from skarim.deconv.weights import save_weights
from skarim.deconv.weights_id import shipped_weights_path, weights_sha256
from skarim.errors import StoreMismatchError
from skarim.io.ms_meta import open_ms
from skarim.io.store import RunStore
from skarim.run.pipeline import open_run_store


def _cfg(ms, tmp_path, **deconv):
    return RunConfig(
        read=ReadConfig(ms=ms),
        grid=GridConfig(npix_x=64, npix_y=64, cell_rad=1e-4, tile=32),
        deconv=DeconvConfig(**deconv),
        output=OutputConfig(name=str(tmp_path / "run")),
    )


def test_a_store_is_refused_to_another_config_or_other_weights(tmp_path):
    ms = point_sources_ms(tmp_path)
    meta = open_ms(ReadConfig(ms=ms))
    store = open_run_store(_cfg(ms, tmp_path), meta)
    assert store.group.attrs["config"]["deconv"]["weights_sha256"] == weights_sha256(None)
    store.array("dirty")[0, 0, 0] = 7.0  # a mark that a resumed store keeps
    # the shipped weights copied elsewhere are the same weights: the store is resumed
    copy = shutil.copy(shipped_weights_path(), tmp_path / "copy.pt")
    assert open_run_store(_cfg(ms, tmp_path, weights=copy), meta).array("dirty")[0, 0, 0] == 7.0
    # other weights (an untrained network) are another run
    other = tmp_path / "other.pt"
    save_weights(RIM(RIMConfig(hidden=8, steps=2)), other)
    assert weights_sha256(other) != weights_sha256(None)
    with pytest.raises(StoreMismatchError, match="another configuration"):
        open_run_store(_cfg(ms, tmp_path, weights=other), meta)
    wider = _cfg(ms, tmp_path, margin=8)
    with pytest.raises(StoreMismatchError, match="another configuration"):
        open_run_store(wider, meta)
    replaced = open_run_store(wider, meta, overwrite=True)
    assert replaced.group.attrs["config"]["deconv"]["margin"] == 8
    assert replaced.array("dirty")[0, 0, 0] == 0.0


def test_scratch_arrays_left_by_a_killed_task_are_cleared(tmp_path):
    ms = point_sources_ms(tmp_path)
    store = open_run_store(_cfg(ms, tmp_path), open_ms(ReadConfig(ms=ms)))
    assert store.clear_scratch() == 0
    kept = store.scratch_array((4, 2), (2, 2), "complex64")
    kept[...] = 1.0
    store.scratch_array((3,), (3,), "float32")  # a second task's, never dropped
    assert store.clear_scratch() == 2
    assert "scratch" not in store.group
    assert store.array("dirty").shape == (1, 64, 64)  # the run's arrays stay


def test_a_store_whose_creation_was_cut_short_is_made_again(tmp_path):
    ms = point_sources_ms(tmp_path)
    meta = open_ms(ReadConfig(ms=ms))
    cfg = _cfg(ms, tmp_path)
    half = zarr.open_group(
        str(cfg.output.store_path), mode="w", attributes={"complete_layout": False}
    )
    half.create_array("dirty", shape=(1, 8, 8), chunks=(1, 8, 8), dtype="float32")  # then killed
    store = open_run_store(cfg, meta)  # no --overwrite needed: it held no work
    assert store.group.attrs["complete_layout"] is True
    assert store.array("dirty").shape == (1, 64, 64) and "rcycle" in store.group
    (tmp_path / "other").mkdir()
    foreign = zarr.open_group(str(tmp_path / "other" / "run.zarr"), mode="w")  # not skarim's
    foreign.create_array("x", shape=(2,), dtype="int8")
    other = _cfg(ms, tmp_path / "other")
    with pytest.raises(StoreMismatchError):
        open_run_store(other, meta)


def test_a_store_without_psfs_is_gridded_again_for_a_run_that_needs_them(tmp_path):
    ms = point_sources_ms(tmp_path)
    meta = open_ms(ReadConfig(ms=ms))
    dirty_only = _cfg(ms, tmp_path).model_copy(update={"dirty_only": True})
    store = open_run_store(dirty_only, meta)
    assert not store.makes_psf
    store.array("gridded")[...] = 1
    store.array("sumwt")[...] = 5.0
    # another dirty-only run resumes it as it is
    again = open_run_store(dirty_only, meta)
    assert not again.makes_psf and again.array("gridded")[...].all()
    # a deconvolving run needs PSFs: nothing gridded counts any more
    store = open_run_store(_cfg(ms, tmp_path), meta)
    assert store.makes_psf
    assert not store.array("gridded")[...].any() and not store.array("sumwt")[...].any()
    # a store made before the attribute existed made PSFs
    del store.group.attrs["makes_psf"]
    assert RunStore.open(tmp_path / "run.zarr").makes_psf
