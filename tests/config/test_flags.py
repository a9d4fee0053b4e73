"""Tests of skarim.config's flags and run config: WSClean's spellings, units and defaults."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from skarim.config import RunConfig, RunFlags, Weighting
from skarim.config.run import load_run_config
from skarim.errors import InputError

ARCSEC_RAD = math.pi / 180 / 3600


def _grid(**flags):
    return RunConfig.from_flags(RunFlags(ms=Path("x.ms"), size="64", **flags)).grid


@pytest.mark.parametrize(
    ("text", "arcsec"), [("20", 20.0), ("20asec", 20.0), ("0.5amin", 30.0), ("0.01deg", 36.0)]
)
def test_taper_gaussian_is_arcsec_unless_a_unit_is_given(text, arcsec):
    assert _grid(taper_gaussian=text).taper_gaussian_rad == pytest.approx(arcsec * ARCSEC_RAD)


def test_uv_limits_are_wavelengths_and_zero_is_none():
    grid = _grid(minuv_l=100.0, maxuv_l=5000.0)
    assert (grid.min_uv_lambda, grid.max_uv_lambda, grid.taper_gaussian_rad) == (100, 5000, 0)
    assert (_grid().min_uv_lambda, _grid().max_uv_lambda) == (0.0, 0.0)


def test_yaml_taper_takes_wsclean_units_and_flags_win(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("read: {ms: x.ms}\ngrid: {npix_x: 64, npix_y: 64, taper_gaussian: 30}\n")
    assert load_run_config(path, {}).grid.taper_gaussian_rad == pytest.approx(30 * ARCSEC_RAD)
    flags = RunFlags(ms=Path("x.ms"), taper_gaussian="10asec")
    from_both = RunConfig.from_flags(flags, path).grid.taper_gaussian_rad
    assert from_both == pytest.approx(10 * ARCSEC_RAD)


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        ({"taper_gaussian": "-5asec"}, "taper"),
        ({"minuv_l": -1.0}, "uv limits"),
        ({"minuv_l": 500.0, "maxuv_l": 400.0}, "maxuv-l 400.0 must exceed minuv-l 500.0"),
        ({"taper_gaussian": "wide"}, "cannot parse angle"),
    ],
)
def test_bad_taper_or_uv_limits_are_refused_in_one_line(flags, match):
    with pytest.raises(InputError, match=match):
        _grid(**flags)


def test_defaults_are_wscleans():
    # -weight uniform, -scale 0.01deg; -data-column is resolved against the MS (io tests)
    cfg = RunConfig.from_flags(RunFlags(ms=Path("x.ms"), size="64"))
    assert cfg.grid.weighting is Weighting.uniform
    assert cfg.grid.cell_rad == pytest.approx(math.radians(0.01))
    assert cfg.read.data_column is None and cfg.read.field == "0" and cfg.grid.channels_out == 1


@pytest.mark.parametrize(
    ("flags", "reorders"),
    [
        ({}, False),  # one output channel
        ({"channels_out": 4}, True),  # WSClean's channel imaging mode
        ({"channels_out": 4, "dirty_only": True}, False),  # no major cycle to serve
        ({"channels_out": 4, "reorder": False}, False),
        ({"reorder": True}, True),
    ],
)
def test_reordering_is_on_in_channel_imaging_mode_as_wsclean(flags, reorders):
    cfg = RunConfig.from_flags(RunFlags(ms=Path("x.ms"), size="64", **flags))
    assert cfg.reorders is reorders
    assert "reorder" not in cfg.fingerprint_dict()["read"]  # the same store either way
