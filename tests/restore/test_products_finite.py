"""No product holds a NaN or infinite pixel inside the horizon (skarim.restore.products)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from msfactory import point_source_vis, random_uvw_m, write_stokes_i_ms

from skarim.config import ClusterConfig, GridConfig, OutputConfig, ReadConfig, RunConfig
from skarim.errors import InputError
from skarim.io.store import RunStore
from skarim.restore.products import write_products
from skarim.run.pipeline import run_imaging


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_pixel_stops_the_product_and_keeps_the_previous_file(tmp_path, bad):
    rng = np.random.default_rng(2)
    freq = np.array([1.3e9, 1.31e9])
    uvw = random_uvw_m(rng, 300, max_m=800.0)
    ms = write_stokes_i_ms(tmp_path / "p.ms", uvw, freq, point_source_vis(uvw, freq, 0, 0))
    cfg = RunConfig(
        read=ReadConfig(ms=ms),
        grid=GridConfig(npix_x=64, npix_y=64, cell_rad=2e-5, tile=32, channels_out=2),
        cluster=ClusterConfig(kind="sync"),
        output=OutputConfig(name=str(tmp_path / "run")),
        dirty_only=True,
    )
    dirty = run_imaging(cfg).products["dirty"]
    before = dirty.read_bytes()
    store = RunStore.open(cfg.output.store_path, mode="r+")
    store.array("dirty")[1, 40, 7] = bad  # channel 1, row 40
    with pytest.raises(InputError, match=r"run-dirty\.fits not written: 1 NaN or infinite pixel"):
        write_products(store, cfg, ("dirty",))
    assert dirty.read_bytes() == before  # the file of the run before, as it was
    assert np.all(np.isfinite(fits.getdata(dirty)))
    assert sorted(p.name for p in tmp_path.iterdir() if ".tmp-" in p.name) == []
