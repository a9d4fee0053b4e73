"""Real run stores holding a chosen model, for the spectral products' tests.

:func:`spectral_store` makes a :class:`skarim.io.store.RunStore` on disk (Zarr) whose model
cube is given, each channel's PSF a Gaussian whose width goes as 1/freq (so every channel has
its own clean beam and the common beam is the lowest channel's), Gaussian noise of a given
level in the residual, and the channels' sums of weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from skarim.beam import Beam, beam_kernel
from skarim.config import DeconvConfig, GridConfig, OutputConfig, ReadConfig, RunConfig
from skarim.io.store import RunStore
from skarim.io.wcs import ImageWCS

#: Clean beam's major axis at 1 GHz, in pixels of the store.
BEAM_PIX_1GHZ = 5.0

SpectralStore = Callable[..., tuple[RunStore, RunConfig]]


@pytest.fixture
def spectral_store(tmp_path: Path) -> SpectralStore:
    """Factory: ``make(model, freq_hz, sumwt, noise_jy, ...)`` -> ``(store, cfg)``."""

    def make(
        model: np.ndarray,
        freq_hz: np.ndarray,
        sumwt: np.ndarray,
        noise_jy: float,
        *,
        cell_rad: float = math.radians(1.0 / 3600),
        tile: int = 32,
        ra_rad: float = 1.0,
        dec_rad: float = -0.5,
        deconv: DeconvConfig | None = None,
        name: str = "run",
    ) -> tuple[RunStore, RunConfig]:
        nchan, ny, nx = model.shape
        wcs = ImageWCS(
            npix_x=nx,
            npix_y=ny,
            cell_rad=cell_rad,
            ra_rad=ra_rad,
            dec_rad=dec_rad,
            freq_hz=np.asarray(freq_hz, dtype=float),
            chan_width_hz=np.full(nchan, float(np.min(np.diff(freq_hz))) if nchan > 1 else 1e6),
        )
        cfg = RunConfig(
            read=ReadConfig(ms=tmp_path / "unused.ms"),
            grid=GridConfig(npix_x=nx, npix_y=ny, cell_rad=cell_rad, channels_out=nchan, tile=tile),
            deconv=deconv or DeconvConfig(),
            output=OutputConfig(name=str(tmp_path / name), save_source_list=True),
        )
        store = RunStore.open_or_create(
            cfg.output.store_path,
            config={"test": name},
            ms_fingerprint={},
            wcs=wcs,
            tile=tile,
            gridder_conventions={},
        )
        rng = np.random.default_rng(7)
        cell_deg = math.degrees(cell_rad)
        for c, freq in enumerate(freq_hz):
            width = BEAM_PIX_1GHZ * cell_deg * 1e9 / freq
            beam = Beam(width, 0.8 * width, 30.0)
            store.array("psf")[c] = beam_kernel(beam, cell_rad, (2 * tile, 2 * tile))
            store.array("model")[c] = model[c]
            store.array("residual")[c] = noise_jy * rng.standard_normal((ny, nx))
        store.array("sumwt")[...] = np.asarray(sumwt, dtype=float)
        return store, cfg

    return make
