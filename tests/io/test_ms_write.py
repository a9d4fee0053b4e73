"""The Measurement Set writer: contents read back with casacore, shapes, refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import casacore.tables as pt
import numpy as np
import pytest

from skarim.errors import InputError
from skarim.io import ms_write_columns
from skarim.io.correlations import CORR_PRODUCT_CODES
from skarim.io.ms_write import SpectralWindow, write_ms

NANT, NTIME, NCHAN = 4, 3, 5
LINEAR = ("XX", "XY", "YX", "YY")


def _ms_args(
    seed: int = 0, corr_types: tuple[str, ...] = LINEAR, nspw: int = 1, nfield: int = 1
) -> dict[str, Any]:
    """Keyword arguments of :func:`write_ms` for a small random observation."""
    rng = np.random.default_rng(seed)
    a1, a2 = np.triu_indices(NANT, k=1)
    nbl = len(a1)
    nrow = NTIME * nbl
    ncorr = len(corr_types)
    shape = (nrow, NCHAN, ncorr)
    weight = rng.uniform(0.5, 2.0, (nrow, ncorr)).astype(np.float32)
    weight[1, 0] = 0.0
    return {
        "antenna_itrf_m": np.array([5109e3, 2006e3, -3238e3]) + rng.normal(0, 500, (NANT, 3)),
        "antenna_names": [f"m{i:03d}" for i in range(NANT)],
        "antenna_diameter_m": np.linspace(12.0, 15.0, NANT),
        "telescope": "MeerKAT",
        "time_s": 5.2e9 + np.repeat(8.0 * np.arange(NTIME), nbl),
        "ant1": np.tile(a1, NTIME),
        "ant2": np.tile(a2, NTIME),
        "uvw_m": rng.normal(0, 300, (nrow, 3)),
        "spectral_windows": [
            SpectralWindow(1.0e9 + 0.3e9 * s + 2e6 * np.arange(NCHAN), 2e6) for s in range(nspw)
        ],
        "data": (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64),
        "corr_types": corr_types,
        "weight": weight,
        "flag": rng.random(shape) < 0.2,
        "flag_row": np.arange(nrow) % 7 == 3,
        "field_names": [f"F{i}" for i in range(nfield)],
        "phase_dirs_rad": np.column_stack([np.linspace(2.6, 2.7, nfield), -0.5 * np.ones(nfield)]),
        "field_id": np.arange(nrow) % nfield,
        "data_desc_id": np.arange(nrow) % nspw,
    }


def _col(ms: Path, column: str, subtable: str = "") -> np.ndarray:
    name = f"{ms}::{subtable}" if subtable else str(ms)
    with pt.table(name, ack=False) as t:
        return t.getcol(column)


def test_main_table_round_trips(tmp_path: Path) -> None:
    args = _ms_args()
    ms = tmp_path / "a.ms"
    write_ms(ms, **args)
    with pt.table(str(ms), ack=False) as t:
        assert t.nrows() == NTIME * 6
        np.testing.assert_array_equal(t.getcol("DATA"), args["data"])
        np.testing.assert_array_equal(t.getcol("FLAG"), args["flag"])
        np.testing.assert_array_equal(t.getcol("FLAG_ROW"), args["flag_row"])
        np.testing.assert_array_equal(t.getcol("UVW"), args["uvw_m"])
        np.testing.assert_array_equal(t.getcol("TIME"), args["time_s"])
        np.testing.assert_array_equal(t.getcol("TIME_CENTROID"), args["time_s"])
        np.testing.assert_array_equal(t.getcol("ANTENNA1"), args["ant1"])
        np.testing.assert_array_equal(t.getcol("ANTENNA2"), args["ant2"])
        np.testing.assert_array_equal(t.getcol("WEIGHT"), args["weight"])
        sigma = t.getcol("SIGMA")
        assert sigma[1, 0] == np.inf  # weight 0
        keep = args["weight"] > 0
        np.testing.assert_allclose(sigma[keep], args["weight"][keep] ** -0.5, rtol=1e-6)
        np.testing.assert_array_equal(t.getcol("INTERVAL"), 8.0)  # the time step
        np.testing.assert_array_equal(t.getcol("EXPOSURE"), 8.0)
        assert set(t.getcol("STATE_ID")) == {-1}
        assert "WEIGHT_SPECTRUM" not in t.colnames()
        assert t.getkeyword("MS_VERSION") == 2.0
        # fixed-shape, tiled visibility column
        desc = t.getcoldesc("DATA")
        assert desc["valueType"] == "complex" and list(desc["shape"]) == [NCHAN, 4]
        assert t.getdminfo("DATA")["TYPE"] == "TiledColumnStMan"
    assert not ms.with_name("a.ms.tmp").exists()


@pytest.mark.parametrize(
    ("corr_types", "codes", "receptors"),
    [
        (LINEAR, [9, 10, 11, 12], ["X", "Y"]),
        (("RR", "RL", "LR", "LL"), [5, 6, 7, 8], ["R", "L"]),
        (("YY", "XY", "XX", "YX"), [12, 10, 9, 11], ["X", "Y"]),
        (("XX", "YY"), [9, 12], ["X", "Y"]),
        (("LL", "RR"), [8, 5], ["R", "L"]),
    ],
)
def test_polarization_and_feed(
    tmp_path: Path, corr_types: tuple[str, ...], codes: list[int], receptors: list[str]
) -> None:
    ms = tmp_path / "p.ms"
    write_ms(ms, **_ms_args(corr_types=corr_types))
    np.testing.assert_array_equal(_col(ms, "CORR_TYPE", "POLARIZATION"), [codes])
    np.testing.assert_array_equal(_col(ms, "NUM_CORR", "POLARIZATION"), [len(codes)])
    index = {"X": 0, "Y": 1, "R": 0, "L": 1}
    product = [[index[c[0]], index[c[1]]] for c in corr_types]
    np.testing.assert_array_equal(_col(ms, "CORR_PRODUCT", "POLARIZATION"), [product])
    np.testing.assert_array_equal(_col(ms, "ANTENNA_ID", "FEED"), np.arange(NANT))
    with pt.table(f"{ms}::FEED", ack=False) as t:
        for row in range(NANT):
            assert list(t.getcell("POLARIZATION_TYPE", row)) == receptors
    assert CORR_PRODUCT_CODES[corr_types[0]] == codes[0]


def test_subtables(tmp_path: Path) -> None:
    args = _ms_args(nspw=2, nfield=3)
    ms = tmp_path / "s.ms"
    write_ms(ms, **args)
    np.testing.assert_array_equal(_col(ms, "POSITION", "ANTENNA"), args["antenna_itrf_m"])
    np.testing.assert_array_equal(_col(ms, "DISH_DIAMETER", "ANTENNA"), args["antenna_diameter_m"])
    assert _col(ms, "NAME", "ANTENNA") == args["antenna_names"]
    assert _col(ms, "STATION", "ANTENNA") == args["antenna_names"]
    assert set(_col(ms, "MOUNT", "ANTENNA")) == {"ALT-AZ"}
    assert set(_col(ms, "TYPE", "ANTENNA")) == {"GROUND-BASED"}

    freqs = np.stack([w.freq_hz for w in args["spectral_windows"]])
    np.testing.assert_array_equal(_col(ms, "CHAN_FREQ", "SPECTRAL_WINDOW"), freqs)
    np.testing.assert_array_equal(_col(ms, "CHAN_WIDTH", "SPECTRAL_WINDOW"), 2e6)
    np.testing.assert_array_equal(_col(ms, "EFFECTIVE_BW", "SPECTRAL_WINDOW"), 2e6)
    np.testing.assert_array_equal(_col(ms, "RESOLUTION", "SPECTRAL_WINDOW"), 2e6)
    np.testing.assert_array_equal(_col(ms, "REF_FREQUENCY", "SPECTRAL_WINDOW"), freqs[:, 0])
    np.testing.assert_array_equal(_col(ms, "TOTAL_BANDWIDTH", "SPECTRAL_WINDOW"), NCHAN * 2e6)
    np.testing.assert_array_equal(_col(ms, "NUM_CHAN", "SPECTRAL_WINDOW"), [NCHAN, NCHAN])
    np.testing.assert_array_equal(_col(ms, "MEAS_FREQ_REF", "SPECTRAL_WINDOW"), [5, 5])
    np.testing.assert_array_equal(_col(ms, "SPECTRAL_WINDOW_ID", "DATA_DESCRIPTION"), [0, 1])
    np.testing.assert_array_equal(_col(ms, "POLARIZATION_ID", "DATA_DESCRIPTION"), [0, 0])

    dirs = args["phase_dirs_rad"][:, None, :]  # (nfield, NUM_POLY + 1, 2)
    for column in ("PHASE_DIR", "DELAY_DIR", "REFERENCE_DIR"):
        np.testing.assert_array_equal(_col(ms, column, "FIELD"), dirs)
    assert _col(ms, "NAME", "FIELD") == ["F0", "F1", "F2"]
    np.testing.assert_array_equal(_col(ms, "NUM_POLY", "FIELD"), [0, 0, 0])
    np.testing.assert_array_equal(_col(ms, "FIELD_ID"), args["field_id"])
    np.testing.assert_array_equal(_col(ms, "DATA_DESC_ID"), args["data_desc_id"])

    assert _col(ms, "TELESCOPE_NAME", "OBSERVATION") == ["MeerKAT"]
    t0, t1 = args["time_s"].min(), args["time_s"].max()
    np.testing.assert_array_equal(_col(ms, "TIME_RANGE", "OBSERVATION"), [[t0 - 4.0, t1 + 4.0]])
    with pt.table(str(ms), ack=False) as t:
        # the set is a proper MS: TaQL's MS functions join the subtables
        query = "select mscal.ant1name() as A1, mscal.spwcol('NUM_CHAN') as NC from $1"
        sel = pt.taql(query, tables=[t])
        assert sel.getcol("A1") == [args["antenna_names"][a] for a in args["ant1"]]
        assert set(sel.getcol("NC")) == {NCHAN}


def test_weight_spectrum_and_extra_columns(tmp_path: Path) -> None:
    args = _ms_args()
    rng = np.random.default_rng(1)
    nrow = len(args["time_s"])
    spectrum = rng.uniform(0, 3, (nrow, NCHAN, 4)).astype(np.float32)
    corrected = (2 * args["data"]).astype(np.complex128)
    ms = tmp_path / "w.ms"
    write_ms(
        ms,
        **args,
        weight_spectrum=spectrum,
        extra_columns={"CORRECTED_DATA": corrected, "MODEL_DATA": args["data"] * 0},
        exposure_s=2.0,
    )
    np.testing.assert_array_equal(_col(ms, "WEIGHT_SPECTRUM"), spectrum)
    np.testing.assert_array_equal(_col(ms, "CORRECTED_DATA"), corrected)
    np.testing.assert_array_equal(_col(ms, "MODEL_DATA"), 0)
    np.testing.assert_array_equal(_col(ms, "INTERVAL"), 2.0)


def test_rows_written_in_many_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = _ms_args(seed=4)
    row_bytes = NCHAN * 4 * (8 + 1)  # DATA complex64 + FLAG bool
    monkeypatch.setattr(ms_write_columns, "_CHUNK_BYTES", 5 * row_bytes)  # 5 rows per putcol
    ms = tmp_path / "c.ms"
    write_ms(ms, **args)
    np.testing.assert_array_equal(_col(ms, "DATA"), args["data"])
    np.testing.assert_array_equal(_col(ms, "FLAG"), args["flag"])
    np.testing.assert_array_equal(_col(ms, "WEIGHT"), args["weight"])


def test_existing_path_and_stale_tmp(tmp_path: Path) -> None:
    ms = tmp_path / "e.ms"
    stale = tmp_path / "e.ms.tmp"
    stale.mkdir()
    (stale / "junk").write_text("left by a crash")
    write_ms(ms, **_ms_args(seed=0))
    assert not stale.exists()
    with pytest.raises(InputError, match="exists"):
        write_ms(ms, **_ms_args(seed=1))
    np.testing.assert_array_equal(_col(ms, "DATA"), _ms_args(seed=0)["data"])
    write_ms(ms, **_ms_args(seed=1), overwrite=True)
    np.testing.assert_array_equal(_col(ms, "DATA"), _ms_args(seed=1)["data"])
    not_a_table = tmp_path / "dir.ms"
    not_a_table.mkdir()
    with pytest.raises(InputError, match="not a casacore table"):
        write_ms(not_a_table, **_ms_args(), overwrite=True)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"corr_types": ("XX", "XY", "YX", "QQ")}, "corr_types"),
        ({"corr_types": ("XX", "RL", "LR", "YY")}, "mix linear and circular"),
        ({"corr_types": ("XX", "YY")}, "4 correlations"),
        ({"ant2": np.full(18, NANT)}, "ant2"),
        ({"weight": -np.ones((18, 4))}, "non-negative"),
        ({"uvw_m": np.zeros((18, 2))}, "uvw_m"),
        ({"spectral_windows": [SpectralWindow(np.arange(1.0, 4.0) * 1e9, 1e6)]}, "window 0"),
        ({"data_desc_id": np.ones(18)}, "data_desc_id"),
        ({"field_id": np.full(18, 2)}, "field_id"),
        ({"phase_dirs_rad": np.zeros((2, 2))}, "phase_dirs_rad"),
        ({"extra_columns": {"UVW": np.zeros((18, 3))}}, "UVW"),
        ({"extra_columns": {"MODEL_DATA": np.zeros((17, NCHAN, 4))}}, "18 rows"),
        ({"flag": np.zeros((18, NCHAN, 2), bool)}, "FLAG"),
        ({"exposure_s": 0.0}, "exposure_s"),
    ],
)
def test_bad_input_is_refused(tmp_path: Path, change: dict[str, Any], match: str) -> None:
    args = _ms_args()
    args.update(change)
    ms = tmp_path / "bad.ms"
    with pytest.raises(InputError, match=match):
        write_ms(ms, **args)
    assert not ms.exists() and not ms.with_name("bad.ms.tmp").exists()
