"""Tests of skarim.io.ms_meta: the data column a run reads when none is named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from casacore import tables
from msfactory import three_antenna_ms

from skarim.config import ReadConfig
from skarim.errors import InputError
from skarim.io.ms_meta import open_ms, selected_rows
from skarim.io.ms_read import iter_chunks


def _ms(path: Path, corrected: bool) -> Path:
    """Three baselines, one channel: DATA holds 1 Jy, CORRECTED_DATA (if written) 2 Jy."""
    corrected_data = np.full((3, 1, 2), 2.0, dtype=np.complex64)
    uvw_m = np.array([[100.0, 0, 0], [0, 100.0, 0], [50.0, 50.0, 0]])
    extra = {"CORRECTED_DATA": corrected_data} if corrected else None
    return three_antenna_ms(path, uvw_m, 1.4e9, extra_columns=extra)


@pytest.mark.parametrize(
    ("corrected", "column", "flux"), [(True, "CORRECTED_DATA", 2.0), (False, "DATA", 1.0)]
)
def test_default_column_is_corrected_data_when_present_as_in_wsclean(
    tmp_path, corrected, column, flux
):
    read = ReadConfig(ms=_ms(tmp_path / "t.ms", corrected))
    meta = open_ms(read)
    assert meta.data_column == column
    (chunk,) = list(iter_chunks(meta, read))
    np.testing.assert_allclose(chunk.vis.real, flux)


def test_a_named_column_is_read_and_a_missing_one_refused(tmp_path):
    ms = _ms(tmp_path / "t.ms", corrected=True)
    assert open_ms(ReadConfig(ms=ms, data_column="DATA")).data_column == "DATA"
    with pytest.raises(InputError, match="MODEL_DATA not in .*available: DATA, CORRECTED_DATA"):
        open_ms(ReadConfig(ms=ms, data_column="MODEL_DATA"))


def test_a_selection_is_described_once_until_a_table_changes(tmp_path):
    ms = _ms(tmp_path / "t.ms", corrected=False)
    read = ReadConfig(ms=ms)
    first = open_ms(read)
    assert open_ms(read) is first
    with pytest.raises(ValueError, match="read-only"):
        first.freq_hz[0] = 1.0
    with tables.table(str(ms / "FIELD"), readonly=False, ack=False) as field:
        field.putcell("NAME", 0, "RENAMED")
    renamed = open_ms(read)
    assert renamed is not first and renamed.field_name == "RENAMED"
    with tables.table(str(ms), readonly=False, ack=False) as main:
        main.putcell("FIELD_ID", 0, 1)  # one row leaves the selection
    assert open_ms(read).nrow == renamed.nrow - 1


def test_selected_rows_are_the_table_when_whole_and_the_query_otherwise(tmp_path):
    ms = _ms(tmp_path / "t.ms", corrected=False)
    meta = open_ms(ReadConfig(ms=ms))
    assert meta.whole_table and meta.nrow == 3
    with selected_rows(meta) as sel:
        assert sel.nrows() == 3
    with tables.table(str(ms), readonly=False, ack=False) as main:
        main.putcell("ANTENNA2", 1, main.getcell("ANTENNA1", 1))  # an autocorrelation now
    meta = open_ms(ReadConfig(ms=ms))
    assert not meta.whole_table and meta.nrow == 2
    with selected_rows(meta) as sel:
        assert list(sel.rownumbers(tables.table(str(ms), ack=False))) == [0, 2]
