"""The grid stage against a direct DFT, and tiled gridding against the full image."""

from __future__ import annotations

import numpy as np
import pytest
from msfactory import C_M_S, random_uvw_m, write_stokes_i_ms

from skarim.config import GridConfig, OutputConfig, ReadConfig, RunConfig, Weighting
from skarim.grid import channel_groups, plan_facets
from skarim.pipeline import run_imaging
from skarim.read import iter_chunks, open_ms
from skarim.store import RunStore
from skarim.weighting import WeightGrid


def _direct_dft(uvw_m, freq_hz, vis, weight, npix, cell_rad):
    """Dirty image [y, x] by a direct float64 sum, FITS pixel conventions of DESIGN.md."""
    j = np.arange(npix) - npix / 2
    m = (j * cell_rad)[:, None] * np.ones((1, npix))  # (y, x)
    l_ = -(j * cell_rad)[None, :] * np.ones((npix, 1))
    n = np.sqrt(1 - l_**2 - m**2)
    image = np.zeros((npix, npix))
    for c, f in enumerate(freq_hz):
        u, v, w = (uvw_m * f / C_M_S).T
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
            dirty_only=True,
        )
        assert len(plan_facets(cfg.grid)) == (1 if facet_pix == 128 else 12)
        result = run_imaging(cfg)
        assert result.tiles_gridded == 2 * 12
        store = RunStore.open(cfg.output.store_path)
        images[facet_pix] = (store.array("dirty")[...], store.array("psf")[...])
    full, tiled = images[128], images[32]
    assert np.abs(full[0] - tiled[0]).max() < 1e-5 * np.abs(full[0]).max()
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
    assert np.abs(out[0] - out[1]).max() < 1e-5 * np.abs(out[1]).max()
