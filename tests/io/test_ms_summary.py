"""Tests of skarim.io.ms_summary: a Measurement Set's summary and suggested image geometry."""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import Angle
from casacore import tables
from msfactory import three_antenna_ms

from skarim.constants import SPEED_OF_LIGHT_M_S
from skarim.errors import InputError
from skarim.io.ms_summary import format_summary, summarise_ms
from skarim.io.ms_write import SpectralWindow, write_ms

RA_RAD = Angle("10h08m00s").rad
DEC_RAD = Angle("-30d00m00s").rad


@pytest.fixture
def two_field_ms(tmp_path) -> Path:
    """Four antennas (the last one only in autocorrelations), two spws, two fields."""
    # per time: baselines 0-1, 0-2, 1-2 and autocorrelations 0-0, 3-3
    ant1 = np.tile([0, 0, 1, 0, 3], 3)
    ant2 = np.tile([1, 2, 2, 0, 3], 3)
    nrow = ant1.size
    uvw_m = np.zeros((nrow, 3))
    cross_uvw_m = [[1800.0, 2400.0, 50.0], [-900.0, 100.0, -2999.0], [10.0, 20.0, 30.0]]
    uvw_m[ant1 != ant2] = np.tile(cross_uvw_m, (3, 1))
    uvw_m[ant1 == ant2] = [5000.0, 0.0, 0.0]  # ignored: autocorrelations
    freq_hz = np.array([1.0e9, 1.1e9, 1.2e9, 1.3e9])
    data = np.ones((nrow, 4, 2), dtype=np.complex64)
    flag = np.zeros((nrow, 4, 2), dtype=bool)
    flag_row = np.zeros(nrow, dtype=bool)
    flag[0, :2, 0] = True  # 2 of the 9 * 8 cross-correlation cells
    flag_row[2] = True  # 8 more
    flag[5, 0, 0] = flag_row[5] = True  # 8 more: FLAG_ROW counts the row once
    flag[3] = True  # an autocorrelation: not counted
    write_ms(
        tmp_path / "t.ms",
        antenna_itrf_m=np.array([5.1e6, 2.0e6, -3.0e6]) + np.arange(12).reshape(4, 3) * 100.0,
        antenna_names=["W1", "W2", "W3", "W4"],
        antenna_diameter_m=np.array([13.5, 12.0, 0.0, 25.0]),
        telescope="TESTSCOPE",
        time_s=5.0e9 + np.repeat([0.0, 8.0, 16.0], 5),
        ant1=ant1,
        ant2=ant2,
        uvw_m=uvw_m,
        spectral_windows=[SpectralWindow(freq_hz, 1e8), SpectralWindow(freq_hz + 1e9, 1e8)],
        data=data,
        corr_types=("XX", "YY"),
        weight=np.ones((nrow, 2)),
        field_names=("NORTH", "SOUTH"),
        phase_dirs_rad=np.array([[0.5, 0.2], [RA_RAD, DEC_RAD]]),
        field_id=np.repeat([0, 1, 1], 5),
        data_desc_id=np.arange(nrow) % 2,
        flag=flag,
        flag_row=flag_row,
        extra_columns={"MODEL_DATA": data},
    )
    return tmp_path / "t.ms"


def test_summary_of_a_written_set(two_field_ms):
    s = summarise_ms(two_field_ms)
    assert (s.nrow, s.n_autocorr_rows) == (15, 6)
    assert (s.nant, s.nant_with_data) == (4, 3)
    assert s.antenna_names == ("W1", "W2", "W3", "W4")
    assert s.telescope == "TESTSCOPE"
    assert [(w.spw, w.nchan, w.freq_min_hz, w.freq_max_hz) for w in s.spws] == [
        (0, 4, 1.0e9, 1.3e9),
        (1, 4, 2.0e9, 2.3e9),
    ]
    assert (s.feeds, s.corr_types) == (("linear",), (("XX", "YY"),))
    assert [(f.field_id, f.name, f.nrow) for f in s.fields] == [(0, "NORTH", 5), (1, "SOUTH", 10)]
    assert s.data_columns == ("DATA", "MODEL_DATA")
    assert s.flagged_fraction == pytest.approx(18 / 72)
    assert (s.fields[1].ra_rad, s.fields[1].dec_rad) == (RA_RAD, DEC_RAD)
    assert (s.time_start_s, s.time_end_s, s.time_span_s) == (5.0e9, 5.0e9 + 16.0, 16.0)
    assert s.max_baseline_m == pytest.approx(np.sqrt(900.0**2 + 100.0**2 + 2999.0**2))
    # longest projected baseline sqrt(1800^2 + 2400^2) = 3000 m at 2.3 GHz
    assert s.max_uv_wavelengths == pytest.approx(3000.0 * 2.3e9 / SPEED_OF_LIGHT_M_S)
    assert s.suggested_cell_rad == pytest.approx(SPEED_OF_LIGHT_M_S / (4 * 3000.0 * 2.3e9))
    # 1.5 * 1.22 * (c / 1 GHz) / 12 m = 0.04572 rad over 1.0862e-5 rad = 4209 pixels
    assert s.suggested_npix == 4352


def test_format_summary_shows_units_and_sexagesimal_positions(two_field_ms):
    text = format_summary(summarise_ms(two_field_ms))
    lines = text.splitlines()
    assert "Telescope         TESTSCOPE" in lines
    assert "Rows              15 (6 autocorrelation)" in lines
    assert "Antennas          4 in ANTENNA table, 3 with data" in lines
    assert "  0: 4 channels, 1.000000-1.300000 GHz, width 100 MHz" in lines
    assert "  0: linear XX YY" in lines
    assert "  1: SOUTH  10h08m00.000s -30d00m00.00s  10 rows" in lines
    assert "Data columns      DATA MODEL_DATA" in lines
    assert "Flagged           25% of the cross-correlation visibilities (FLAG or FLAG_ROW)" in lines
    assert "Suggested cell    2.24 arcsec (4 pixels across the synthesised beam)" in lines
    assert "Suggested size    4352 pixels (163 arcmin; 1.5 primary-beam FWHM)" in lines
    assert "(16.0 s)" in text


def test_bad_paths_are_input_errors(tmp_path):
    with pytest.raises(InputError, match=r"missing\.ms does not exist$"):
        summarise_ms(tmp_path / "missing.ms")
    (tmp_path / "plain").mkdir()
    with pytest.raises(InputError, match=r"plain is not a Measurement Set: not a casacore table"):
        summarise_ms(tmp_path / "plain")


def test_evla_summary(evla_ms):
    s = summarise_ms(evla_ms)
    with tables.table(str(evla_ms), ack=False) as t:
        uvw_m = t.getcol("UVW")  # (1360, 3): small enough to read whole here
    assert (s.nant, s.nant_with_data, s.nrow, s.n_autocorr_rows) == (28, 18, 1360, 0)
    assert s.telescope == "EVLA"
    assert [(w.nchan, w.chan_width_hz) for w in s.spws] == [(64, 125e3)]
    assert 36.30e9 < s.spws[0].freq_min_hz < s.spws[0].freq_max_hz < 36.32e9
    assert s.feeds == ("circular",)
    assert s.max_baseline_m == pytest.approx(np.sqrt((uvw_m**2).sum(1)).max())
    assert s.time_span_s == pytest.approx(80.0, abs=0.1)
    assert (s.suggested_cell_rad * u.rad).to_value(u.arcsec) == pytest.approx(0.418, abs=1e-3)
    assert s.suggested_npix == 512
    text = format_summary(s)
    assert "  0: J1008+0730  10h08m00.016s +07d30m16.55s  1360 rows" in text.splitlines()
    assert (s.data_columns, s.flagged_fraction) == (("DATA",), 0.0)
    assert "Time              2010-04-26 03:21:56.001 to 2010-04-26 03:23:15.998 UTC" in text


def test_suggested_size_stops_at_the_horizon(tmp_path):
    """An all-sky array (2 m dipoles, baselines to 100 m at 50 MHz): 1.5 primary-beam FWHM
    would be 512 pixels of 0.86 deg, 440 deg; the suggestion stops where |l| reaches 1."""
    uvw_m = np.array([[100.0, 0.0, 0.0], [0.0, 60.0, 0.0], [30.0, 30.0, 0.0]])
    three_antenna_ms(tmp_path / "lwa.ms", uvw_m, 5.0e7, diameter_m=2.0)
    s = summarise_ms(tmp_path / "lwa.ms")
    cell_rad = SPEED_OF_LIGHT_M_S / (4 * 100.0 * 5.0e7)  # 0.015 rad
    assert s.suggested_cell_rad == pytest.approx(cell_rad)
    assert s.suggested_npix == 132 and 66 * cell_rad < 1 <= 67 * cell_rad  # |l| to 0.99
    assert "Suggested size    132 pixels" in format_summary(s)
    assert "to the horizon" in format_summary(s)
