"""Restoration: ``model (*) clean beam + residual``, whole or band by band."""

from __future__ import annotations

import numpy as np
import pytest

from skarim.beam import Beam, beam_kernel
from skarim.restore.restore import RESTORE_SPAN, restore_bands, restore_channel, restore_halo

CELL = np.deg2rad(1.0 / 3600)


def _whole_plane(model: np.ndarray, residual: np.ndarray, beam: Beam) -> np.ndarray:
    """The reference: one FFT of the whole plane zero-padded to twice its size."""
    ny, nx = model.shape
    kernel = beam_kernel(beam, CELL, (2 * ny, 2 * nx))  # peak 1 at (ny, nx)
    spec = np.fft.rfft2(np.fft.ifftshift(kernel)) * np.fft.rfft2(model, s=(2 * ny, 2 * nx))
    return np.fft.irfft2(spec, s=(2 * ny, 2 * nx))[:ny, :nx] + residual


def test_restored_point_source_peak_equals_its_flux():
    beam = Beam(major_deg=6.0 / 3600, minor_deg=4.0 / 3600, pa_deg=40.0)
    model = np.zeros((96, 96))
    model[40, 50] = 3.2
    image = restore_channel(model, np.zeros_like(model), beam, CELL)
    assert image.max() == pytest.approx(3.2, rel=1e-4)
    assert np.unravel_index(np.argmax(image), image.shape) == (40, 50)


@pytest.mark.parametrize("major_arcsec", [3.0, 6.0, 40.0])
def test_the_halo_is_the_reach_of_the_beam_kernel(major_arcsec):
    beam = Beam(major_arcsec / 3600, 0.5 * major_arcsec / 3600, 30.0)
    halo = restore_halo(beam, CELL)
    side = 4 * halo + 8
    kernel = beam_kernel(beam, CELL, (side, side))  # centre (side/2, side/2), not truncated
    rows = np.flatnonzero(kernel.any(axis=1)) - side // 2
    cols = np.flatnonzero(kernel.any(axis=0)) - side // 2
    assert (rows.min(), rows.max()) == (-halo, halo)
    assert (cols.min(), cols.max()) == (-halo, halo)


@pytest.mark.parametrize(
    ("ny", "nx", "band", "major_arcsec"),
    [
        (100, 72, 32, 6.0),  # the last band partial
        (100, 72, 8, 6.0),  # bands narrower than the halo (16 rows)
        (40, 36, 16, 30.0),  # a halo (77 rows) beyond the image
        (64, 96, 64, 4.0),  # one band
        (40, 2 * RESTORE_SPAN + 100, 32, 6.0),  # column blocks, the last one narrow
    ],
)
def test_bands_give_the_whole_plane_to_float32_round_off(ny, nx, band, major_arcsec):
    rng = np.random.default_rng(ny + band)
    beam = Beam(major_arcsec / 3600, 0.6 * major_arcsec / 3600, 35.0)
    model = (rng.random((ny, nx)) < 0.05) * rng.random((ny, nx))  # Jy/pixel
    model[0, 0] = model[-1, -1] = 1.0  # sources in the corners reach the far bands
    residual = 0.01 * rng.standard_normal((ny, nx))
    expected = _whole_plane(model, residual, beam)
    read = []  # rows of the model asked for: the band and its halo only

    def model_rows(y0: int, y1: int) -> np.ndarray:
        read.append((y0, y1))
        return model[y0:y1].astype(np.float32)

    def residual_rows(y0: int, y1: int) -> np.ndarray:
        return residual[y0:y1].astype(np.float32)

    bands = list(restore_bands(model_rows, residual_rows, beam, CELL, (ny, nx), band))
    assert [b.shape for b in bands] == [(min(band, ny - y0), nx) for y0 in range(0, ny, band)]
    assert all(b.dtype == np.float32 for b in bands)
    halo = restore_halo(beam, CELL)
    assert read == [(max(0, y0 - halo), min(ny, y0 + band + halo)) for y0 in range(0, ny, band)]
    error = np.abs(np.concatenate(bands) - expected).max() / np.abs(expected).max()
    assert error < 3e-7  # float32 round-off: 2**-24 = 6e-8 of the peak, a few times
    whole = restore_channel(model, residual, beam, CELL)
    np.testing.assert_allclose(np.concatenate(bands), whole, rtol=0, atol=3e-7 * whole.max())
