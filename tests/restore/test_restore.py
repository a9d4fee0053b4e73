"""Restoration: ``model (*) clean beam + residual``."""

from __future__ import annotations

import numpy as np
import pytest

from skarim.beam import Beam
from skarim.restore.restore import restore_channel

CELL = np.deg2rad(1.0 / 3600)


def test_restored_point_source_peak_equals_its_flux():
    beam = Beam(major_deg=6.0 / 3600, minor_deg=4.0 / 3600, pa_deg=40.0)
    model = np.zeros((96, 96))
    model[40, 50] = 3.2
    image = restore_channel(model, np.zeros_like(model), beam, CELL)
    assert image.max() == pytest.approx(3.2, rel=1e-4)
    assert np.unravel_index(np.argmax(image), image.shape) == (40, 50)
