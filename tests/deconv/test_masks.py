"""Masks and local noise in the deconvolution: WSClean's -fits-mask, -auto-mask, -local-rms.

Runs in this process (``sync``) on the two point sources of ``msfactory.point_sources_ms``
(1 Jy at FITS (y, x) = (40, 20), 0.5 Jy at (10, 50); 64 x 64 pixels of 20 arcsec in tiles
of 32), with the shipped RIM.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from msfactory import CELL_RAD, NPIX, SOURCES, new_run_store, point_sources_ms

from skarim.config import (
    ClusterConfig,
    DeconvConfig,
    GridConfig,
    OutputConfig,
    ReadConfig,
    RunConfig,
    RunFlags,
)
from skarim.deconv.noise import local_sigma
from skarim.deconv.tiles import tile_windows
from skarim.io.ms_meta import open_ms
from skarim.io.store import RunStore
from skarim.run.pipeline import image_wcs, run_imaging

(YA, XA, FA), (YB, XB, FB) = SOURCES


@pytest.fixture(scope="module")
def ms(tmp_path_factory):
    return point_sources_ms(tmp_path_factory.mktemp("masks"))


def _config(ms, name, **deconv):
    return RunConfig(
        read=ReadConfig(ms=ms),
        grid=GridConfig(npix_x=NPIX, npix_y=NPIX, cell_rad=CELL_RAD, tile=32, channels_out=1),
        deconv=DeconvConfig(device="cpu", **deconv),
        cluster=ClusterConfig(kind="sync"),
        output=OutputConfig(name=str(name)),
    )


def _box(image, y, x, r=3):
    return image[..., y - r : y + r + 1, x - r : x + r + 1]


def test_a_fits_mask_that_excludes_a_source_leaves_it_in_the_residual(ms, tmp_path):
    cfg = _config(ms, tmp_path / "fits")
    mask = np.zeros((NPIX, NPIX), dtype=np.float32)
    mask[YA - 8 : YA + 9, XA - 8 : XA + 9] = 1  # around source A only
    header = image_wcs(cfg, open_ms(cfg.read)).celestial().to_header()
    fits.PrimaryHDU(mask, header).writeto(tmp_path / "mask.fits")
    masked = cfg.model_copy(
        update={"deconv": cfg.deconv.model_copy(update={"fits_mask": tmp_path / "mask.fits"})}
    )
    products = run_imaging(masked).products
    model = fits.getdata(products["model"])[0, 0]  # (y, x) Jy/pixel
    residual = fits.getdata(products["residual"])[0, 0]  # (y, x) Jy/beam
    assert np.all(model[mask == 0] == 0)  # no flux outside the mask
    assert _box(model, YA, XA).sum() == pytest.approx(FA, rel=0.05)
    assert residual[YB, XB] == pytest.approx(FB, rel=0.05)  # B is still all in the residual
    assert abs(residual[YA, XA]) < 0.05 * FA


@pytest.mark.parametrize("local_rms", [False, True])
def test_the_auto_mask_keeps_the_polish_where_the_pruning_kept_flux(ms, tmp_path, local_rms):
    cfg = _config(ms, tmp_path / "auto", auto_mask=True, prune_sigma=5.0, local_rms=local_rms)
    run_imaging(cfg)
    store = RunStore.open(cfg.output.store_path)
    mask = store.array("mask")[0].astype(bool)  # (y, x)
    model = store.array("model")[0]
    assert mask[YA, XA] and mask[YB, XB]
    assert mask.mean() < 0.2  # the sources' surroundings, not the sky
    assert not np.any(model[~mask])  # the RIM's pruned model and the polish: inside
    assert _box(model, YA, XA).sum() == pytest.approx(FA, rel=0.05)
    assert _box(model, YB, XB).sum() == pytest.approx(FB, rel=0.05)


def test_wsclean_threshold_flags_map_onto_the_deconvolution_settings(ms):
    flags = RunFlags(ms=ms, size="64", auto_mask=4.0, auto_threshold=1.5, local_rms=True)
    deconv = RunConfig.from_flags(flags, None).deconv
    assert (deconv.prune_sigma, deconv.auto_mask, deconv.polish_sigma) == (4.0, True, 1.5)
    assert deconv.local_rms and deconv.local_rms_window == 25.0
    plain = RunConfig.from_flags(RunFlags(ms=ms, size="64"), None).deconv
    assert (plain.prune_sigma, plain.auto_mask, plain.polish_sigma) == (5.0, False, 3.0)


def test_the_local_noise_of_a_tile_is_that_of_the_sky_around_it(ms, tmp_path):
    cfg = _config(ms, tmp_path / "local")
    cfg = cfg.model_copy(update={"grid": cfg.grid.model_copy(update={"npix_x": 128})})
    store, _ = new_run_store(cfg)
    rng = np.random.default_rng(1)
    noise = rng.normal(size=(NPIX, 128))
    noise[:, 64:] *= 4.0  # the right half is four times as noisy
    store.array("residual")[0] = noise.astype(np.float32)
    wins = {(w.ty, w.tx): w for w in tile_windows(cfg)}
    assert local_sigma(store, 0, "residual", wins[0, 0], 32) == pytest.approx(1.0, rel=0.15)
    assert local_sigma(store, 0, "residual", wins[1, 3], 32) == pytest.approx(4.0, rel=0.15)
