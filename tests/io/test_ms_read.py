"""Tests of skarim.io.ms_read: Stokes I and its weight from small Measurement Sets written here.

Each test writes its own set with :func:`skarim.io.ms_write.write_ms` into ``tmp_path``;
the EVLA set in ``../shared/data`` is copied into ``tmp_path`` before it is read.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import Angle
from casacore import tables

from skarim.config import ReadConfig
from skarim.errors import InputError
from skarim.io.ms_meta import MSMeta, open_ms
from skarim.io.ms_read import (
    VisChunk,
    check_weights,
    gather_chunks,
    gathers,
    iter_chunks,
    rows_per_chunk,
)
from skarim.io.ms_write import SpectralWindow, write_ms

NANT = 5
NCHAN = 4
FREQ_HZ = np.array([1.0e9, 1.1e9, 1.2e9, 1.3e9])
PHASE_DIRS_RAD = np.array([[1.2, -0.5], [2.0, 0.3]])


def baselines(ntime: int, autos: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``ntime`` integrations over all baselines (and autocorrelations if asked)."""
    a1, a2 = np.triu_indices(NANT, k=0 if autos else 1)
    return np.tile(a1, ntime), np.tile(a2, ntime)


def row_uvw_m(nrow: int) -> np.ndarray:
    """``(nrow, 3)`` distinct UVW of each row, so that rows can be recognised after selection."""
    return np.column_stack([np.arange(nrow) * 10.0 + 1, -np.arange(nrow) - 1.0, np.ones(nrow)])


def write_test_ms(
    path: Path,
    *,
    hands: tuple[np.ndarray, np.ndarray],
    hand_weights: tuple[np.ndarray, np.ndarray],
    corr_types: tuple[str, ...] = ("XX", "XY", "YX", "YY"),
    ant: tuple[np.ndarray, np.ndarray] | None = None,
    **kwargs,
) -> Path:
    """Write a set whose two parallel hands hold ``hands``; cross hands hold other values.

    ``hands`` are ``(nrow, nchan)`` complex, first XX/RR then YY/LL; ``hand_weights`` are
    ``(nrow,)`` WEIGHT of the same two hands (cross hands get weight 1).
    """
    nrow = hands[0].shape[0]
    ant1, ant2 = ant if ant is not None else baselines(nrow // 10)
    ncorr = len(corr_types)
    data = np.full((nrow, NCHAN, ncorr), 1e3 + 1e3j, dtype=np.complex64)
    weight = np.ones((nrow, ncorr), dtype=np.float32)
    for k, corr in enumerate(corr_types):
        if corr in ("XX", "RR"):
            data[..., k], weight[:, k] = hands[0], hand_weights[0]
        elif corr in ("YY", "LL"):
            data[..., k], weight[:, k] = hands[1], hand_weights[1]
    rng = np.random.default_rng(1)
    write_ms(
        path,
        antenna_itrf_m=np.array([5.1e6, 2.0e6, -3.0e6]) + rng.normal(size=(NANT, 3)) * 100,
        antenna_names=[f"A{i}" for i in range(NANT)],
        antenna_diameter_m=np.full(NANT, 13.5),
        telescope="TESTSCOPE",
        time_s=5.0e9 + np.arange(nrow) * 2.0,
        ant1=ant1,
        ant2=ant2,
        uvw_m=row_uvw_m(nrow),
        spectral_windows=kwargs.pop("spectral_windows", [SpectralWindow(FREQ_HZ, 1e8)]),
        data=data,
        corr_types=corr_types,
        weight=weight,
        **kwargs,
    )
    return path


def random_hands(nrow: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (nrow, NCHAN)
    return tuple(
        (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)
        for _ in range(2)
    )


def random_weights(nrow: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + 100)
    return tuple(rng.uniform(0.5, 4.0, size=nrow).astype(np.float32) for _ in range(2))


def read_all(cfg: ReadConfig, precision: str = "single") -> tuple[MSMeta, list[VisChunk]]:
    meta = open_ms(cfg)
    return meta, list(iter_chunks(meta, cfg, precision=precision))


def concat(chunks: list[VisChunk], name: str) -> np.ndarray:
    return np.concatenate([getattr(c, name) for c in chunks])


def expected_weight(w_a: np.ndarray, w_b: np.ndarray) -> np.ndarray:
    w_a, w_b = np.asarray(w_a, np.float64), np.asarray(w_b, np.float64)
    return 4.0 / (1.0 / w_a + 1.0 / w_b)


@pytest.mark.parametrize(
    "corr_types",
    [
        ("XX", "XY", "YX", "YY"),
        ("XX", "YY", "XY", "YX"),
        ("YY", "XX"),
        ("RR", "RL", "LR", "LL"),
        ("LL", "RR", "LR", "RL"),
        ("RR", "LL"),
    ],
)
@pytest.mark.parametrize("precision", ["single", "double"])
def test_stokes_i_for_every_feed_and_correlation_order(tmp_path, corr_types, precision):
    hands, weights = random_hands(30), random_weights(30)
    ms = write_test_ms(tmp_path / "t.ms", hands=hands, hand_weights=weights, corr_types=corr_types)
    meta, chunks = read_all(ReadConfig(ms=ms), precision)
    assert meta.feed == ("linear" if "XX" in corr_types else "circular")
    assert meta.corr_types == corr_types
    vis, weight = concat(chunks, "vis"), concat(chunks, "weight")
    assert vis.dtype == (np.complex64 if precision == "single" else np.complex128)
    assert weight.dtype == (np.float32 if precision == "single" else np.float64)
    expected_vis = (hands[0].astype(np.complex128) + hands[1]) / 2
    expected_w = np.repeat(expected_weight(*weights)[:, None], NCHAN, axis=1)
    rtol = 1e-6 if precision == "single" else 1e-12
    np.testing.assert_allclose(vis, expected_vis, rtol=rtol, atol=0)
    np.testing.assert_allclose(weight, expected_w, rtol=rtol, atol=0)
    assert sum(c.n_nonfinite for c in chunks) == 0


def test_weight_spectrum_wins_over_weight(tmp_path):
    hands, weights = random_hands(20), random_weights(20)
    rng = np.random.default_rng(5)
    spectrum = rng.uniform(0.1, 9.0, size=(20, NCHAN, 4)).astype(np.float32)
    ms = write_test_ms(
        tmp_path / "t.ms", hands=hands, hand_weights=weights, weight_spectrum=spectrum
    )
    _, chunks = read_all(ReadConfig(ms=ms))
    expected = expected_weight(spectrum[..., 0], spectrum[..., 3])  # XX and YY
    np.testing.assert_allclose(concat(chunks, "weight"), expected, rtol=1e-6)
    from_weight = expected_weight(*weights)[:, None]
    assert not np.allclose(concat(chunks, "weight"), from_weight, rtol=1e-2)


def test_empty_weight_spectrum_column_falls_back_to_weight(tmp_path):
    hands, weights = random_hands(20), random_weights(20)
    ms = write_test_ms(tmp_path / "t.ms", hands=hands, hand_weights=weights)
    with tables.table(str(ms), readonly=False, ack=False) as t:
        t.addcols(tables.makearrcoldesc("WEIGHT_SPECTRUM", 0.0, ndim=2, valuetype="float"))
        assert "WEIGHT_SPECTRUM" in t.colnames() and not t.iscelldefined("WEIGHT_SPECTRUM", 0)
    _, chunks = read_all(ReadConfig(ms=ms))
    expected = np.repeat(expected_weight(*weights)[:, None], NCHAN, axis=1)
    np.testing.assert_allclose(concat(chunks, "weight"), expected, rtol=1e-6)


def test_flags_weights_and_nonfinite_drop_exactly_those_visibilities(tmp_path):
    nrow = 30
    hands, weights = random_hands(nrow), random_weights(nrow)
    expected = (hands[0].astype(np.complex128) + hands[1]) / 2  # before NaN/inf are put in
    flag = np.zeros((nrow, NCHAN, 4), dtype=bool)  # XX XY YX YY
    flag[2, 1, 0] = True  # XX flagged: dropped
    flag[3, 3, 3] = True  # YY flagged: dropped
    flag[4, :, 1] = True  # XY flagged: a cross hand, kept
    flag_row = np.zeros(nrow, dtype=bool)
    flag_row[5] = True  # whole row dropped
    weights[1][6] = 0.0  # YY weight 0 in row 6: whole row dropped
    hands[0][7, 0] = np.nan  # counted
    hands[1][8, 2] = np.inf  # counted
    hands[0][9, 1] = complex(0, -np.inf)  # counted
    hands[0][2, 1] = np.nan  # already flagged: dropped, not counted
    write_test_ms(
        tmp_path / "t.ms", hands=hands, hand_weights=weights, flag=flag, flag_row=flag_row
    )
    with tables.table(str(tmp_path / "t.ms"), readonly=False, ack=False) as t:
        t.putcell("WEIGHT", 10, np.array([-1.0, 1.0, 1.0, 1.0], dtype=np.float32))  # XX < 0
        row_11 = np.ones((NCHAN, 4), dtype=np.complex64)
        row_11[:, 1] = np.nan  # XY NaN, parallel hands 1: kept, not counted
        t.putcell("DATA", 11, row_11)
    dropped = np.zeros((nrow, NCHAN), dtype=bool)
    for row, chan in [(2, 1), (3, 3), (7, 0), (8, 2), (9, 1)]:
        dropped[row, chan] = True
    dropped[[5, 6, 10]] = True
    _, chunks = read_all(ReadConfig(ms=tmp_path / "t.ms", chunk_rows=4))
    vis, weight = concat(chunks, "vis"), concat(chunks, "weight")
    np.testing.assert_array_equal(weight == 0, dropped)
    np.testing.assert_array_equal(vis[dropped], 0)
    assert np.all(np.isfinite(vis))
    assert sum(c.n_nonfinite for c in chunks) == 3
    kept = ~dropped
    kept[11] = False  # row 11 was rewritten
    np.testing.assert_allclose(vis[kept], expected[kept], rtol=1e-6)
    np.testing.assert_allclose(vis[11], 1.0)


def test_chunks_concatenate_to_a_single_read(tmp_path):
    nrow = 50
    hands, weights = random_hands(nrow), random_weights(nrow)
    hands[0][13, 2] = np.nan
    hands[1][44, 0] = np.nan
    ms = write_test_ms(tmp_path / "t.ms", hands=hands, hand_weights=weights)
    _, small = read_all(ReadConfig(ms=ms, chunk_rows=7))
    _, whole = read_all(ReadConfig(ms=ms, chunk_rows=10**6))
    assert [c.row_start for c in small] == list(range(0, nrow, 7))
    assert [c.vis.shape[0] for c in small] == [7] * 7 + [1]
    assert len(whole) == 1
    for name in ("uvw_m", "vis", "weight"):
        np.testing.assert_array_equal(concat(small, name), concat(whole, name))
    assert [c.n_nonfinite for c in small] == [0, 1, 0, 0, 0, 0, 1, 0]
    assert whole[0].n_nonfinite == 2
    np.testing.assert_array_equal(whole[0].nonfinite_per_chan, [1, 0, 1, 0])
    _, by_bytes = read_all(ReadConfig(ms=ms))  # 256 MiB hold every row
    assert len(by_bytes) == 1
    np.testing.assert_array_equal(by_bytes[0].vis, whole[0].vis)


def test_rows_per_chunk_follows_the_byte_budget():
    # a row of 4 channels x 4 correlations: 16 x (8 + 1) data and flags, 16 WEIGHT, 24 UVW,
    # 1 FLAG_ROW; WEIGHT_SPECTRUM makes the weights 16 x 4
    assert rows_per_chunk(1, nchan=4, ncorr=4, data_bytes=8, weight_spectrum=False) == (
        2**20 // 185
    )
    assert rows_per_chunk(3, nchan=4, ncorr=4, data_bytes=16, weight_spectrum=True) == (
        3 * 2**20 // (16 * 17 + 64 + 25)
    )
    assert rows_per_chunk(1, nchan=2**16, ncorr=4, data_bytes=16, weight_spectrum=True) == 1
    assert ReadConfig(ms="x.ms").chunk_rows is None
    for bad in ({"chunk_mb": 0}, {"chunk_rows": 0}):
        with pytest.raises(ValueError, match="chunk sizes must be >= 1"):
            ReadConfig(ms="x.ms", **bad)


def test_stokes_i_is_the_same_in_any_block_of_rows(tmp_path, monkeypatch):
    nrow = 50
    hands, weights = random_hands(nrow), random_weights(nrow)
    hands[0][13, 2] = np.nan
    flag = np.zeros((nrow, NCHAN, 4), dtype=bool)
    flag[20, 1, 0] = True
    ms = write_test_ms(tmp_path / "t.ms", hands=hands, hand_weights=weights, flag=flag)
    _, whole = read_all(ReadConfig(ms=ms))
    monkeypatch.setattr("skarim.io.ms_read._STOKES_BLOCK_ROWS", 3)
    _, blocked = read_all(ReadConfig(ms=ms))
    for name in ("vis", "weight", "nonfinite_per_chan"):
        np.testing.assert_array_equal(getattr(blocked[0], name), getattr(whole[0], name))
    assert blocked[0].weight[20, 1] == 0 and blocked[0].weight[13, 2] == 0


def test_field_and_spw_selection_pick_exactly_their_rows(tmp_path):
    nrow = 40
    hands, weights = random_hands(nrow), random_weights(nrow)
    field_id = np.arange(nrow) % 2
    data_desc_id = (np.arange(nrow) // 4) % 3
    spws = [SpectralWindow(FREQ_HZ * (1 + k), 1e8 * (1 + k)) for k in range(3)]
    ms = write_test_ms(
        tmp_path / "t.ms",
        hands=hands,
        hand_weights=weights,
        spectral_windows=spws,
        field_names=("ALPHA", "BETA"),
        phase_dirs_rad=PHASE_DIRS_RAD,
        field_id=field_id,
        data_desc_id=data_desc_id,
    )
    uvw_m = row_uvw_m(nrow)
    expected_i = (hands[0] + hands[1]) / 2
    for field in ("BETA", "1"):
        meta, chunks = read_all(ReadConfig(ms=ms, field=field, spw=2, chunk_rows=3))
        rows = (field_id == 1) & (data_desc_id == 2)
        assert (meta.field_id, meta.field_name, meta.spw) == (1, "BETA", 2)
        assert meta.phase_centre_rad == tuple(PHASE_DIRS_RAD[1])
        np.testing.assert_array_equal(meta.freq_hz, FREQ_HZ * 3)
        np.testing.assert_array_equal(meta.chan_width_hz, np.full(NCHAN, 3e8))
        assert meta.nrow == rows.sum() == 6
        np.testing.assert_array_equal(concat(chunks, "uvw_m"), uvw_m[rows])
        np.testing.assert_allclose(concat(chunks, "vis"), expected_i[rows], rtol=1e-6)
    meta, chunks = read_all(ReadConfig(ms=ms, field="ALPHA", spw=0))
    rows = (field_id == 0) & (data_desc_id == 0)
    assert meta.nrow == rows.sum() == 8
    np.testing.assert_array_equal(concat(chunks, "uvw_m"), uvw_m[rows])


def test_autocorrelations_are_excluded(tmp_path):
    ant1, ant2 = baselines(2, autos=True)  # 15 rows per time: 5 autocorrelations
    nrow = ant1.size
    hands, weights = random_hands(nrow), random_weights(nrow)
    ms = write_test_ms(tmp_path / "t.ms", hands=hands, hand_weights=weights, ant=(ant1, ant2))
    meta, chunks = read_all(ReadConfig(ms=ms))
    cross = ant1 != ant2
    assert (nrow, meta.nrow) == (30, 20)
    assert meta.fingerprint["nrow"] == 30
    uvw_m = row_uvw_m(nrow)
    np.testing.assert_array_equal(concat(chunks, "uvw_m"), uvw_m[cross])


def test_channel_range_and_data_column(tmp_path):
    hands, weights = random_hands(20), random_weights(20)
    corrected = np.full((20, NCHAN, 4), 2 - 4j, dtype=np.complex64)
    ms = write_test_ms(
        tmp_path / "t.ms",
        hands=hands,
        hand_weights=weights,
        extra_columns={"CORRECTED_DATA": corrected},
    )
    meta, chunks = read_all(ReadConfig(ms=ms, data_column="DATA", chan_start=1, chan_stop=3))
    np.testing.assert_array_equal(meta.freq_hz, FREQ_HZ[1:3])
    expected = (hands[0].astype(np.complex128) + hands[1]) / 2
    np.testing.assert_allclose(concat(chunks, "vis"), expected[:, 1:3], rtol=1e-6)
    meta, chunks = read_all(ReadConfig(ms=ms, data_column="CORRECTED_DATA", chan_start=2))
    assert meta.data_column == "CORRECTED_DATA"
    assert concat(chunks, "vis").shape == (20, 2)
    np.testing.assert_array_equal(concat(chunks, "vis"), 2 - 4j)


def test_meta_describes_the_selection(tmp_path):
    hands, weights = random_hands(20), random_weights(20)
    ms = write_test_ms(tmp_path / "t.ms", hands=hands, hand_weights=weights)
    meta = open_ms(ReadConfig(ms=ms))
    assert meta.telescope == "TESTSCOPE"
    assert meta.time_range_s == (5.0e9, 5.0e9 + 38.0)
    assert json.loads(json.dumps(meta.fingerprint)) == meta.fingerprint
    assert meta.fingerprint["path"] == str(ms.resolve())
    assert meta.fingerprint["data_shape"] == [NCHAN, 4]
    assert abs(meta.fingerprint["mtime"] - time.time()) < 600
    with pytest.raises(ValueError, match="precision must be one of"):
        next(iter_chunks(meta, ReadConfig(ms=ms), precision="half"))


@pytest.fixture
def small_ms(tmp_path) -> Path:
    hands, weights = random_hands(20), random_weights(20)
    return write_test_ms(
        tmp_path / "t.ms",
        hands=hands,
        hand_weights=weights,
        field_names=("ALPHA", "BETA"),
        phase_dirs_rad=PHASE_DIRS_RAD,
    )


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        (
            {"data_column": "CORRECTED_DATA"},
            r"column CORRECTED_DATA not in .*t\.ms; available: DATA$",
        ),
        ({"data_column": "UVW"}, r"column UVW not in .*available: DATA$"),
        ({"field": "7"}, r"field 7 out of range in .*t\.ms; fields: 0=ALPHA, 1=BETA$"),
        ({"field": "GAMMA"}, r"field 'GAMMA' not in .*; fields: 0=ALPHA, 1=BETA$"),
        ({"spw": 1}, r"spw 1 out of range: .* has 1 spectral window\(s\), 0..0$"),
        ({"chan_start": 4}, r"channel range \[4, 4\) is empty or outside spw 0"),
        ({"chan_start": 0, "chan_stop": 5}, r"channel range \[0, 5\) is empty or outside"),
        ({"chan_start": 2, "chan_stop": 2}, r"channel range \[2, 2\) is empty"),
        ({"field": "BETA"}, r"no cross-correlation rows in .* for field 1 \(BETA\) and spw 0$"),
    ],
)
def test_bad_selection_is_one_clear_input_error(small_ms, changes, match):
    with pytest.raises(InputError, match=match):
        open_ms(ReadConfig(ms=small_ms, **changes))


def test_missing_or_foreign_paths_are_input_errors(tmp_path, small_ms):
    with pytest.raises(InputError, match=r"Measurement Set .*nowhere\.ms does not exist$"):
        open_ms(ReadConfig(ms=tmp_path / "nowhere.ms"))
    (tmp_path / "plain").mkdir()
    (tmp_path / "file.fits").write_bytes(b"SIMPLE  = T")
    for path in (tmp_path / "plain", tmp_path / "file.fits"):
        with pytest.raises(InputError, match=r"is not a Measurement Set: not a casacore table$"):
            open_ms(ReadConfig(ms=path))
    with pytest.raises(InputError, match=r"FIELD is not a Measurement Set: no UVW, ANTENNA1, "):
        open_ms(ReadConfig(ms=small_ms / "FIELD"))


def test_no_parallel_hands_or_only_autocorrelations_are_input_errors(tmp_path):
    hands, weights = random_hands(10), random_weights(10)
    ms = write_test_ms(
        tmp_path / "x.ms", hands=hands, hand_weights=weights, corr_types=("XY", "YX")
    )
    with pytest.raises(InputError, match=r"no parallel-hand correlations .* CORR_TYPE is XY YX$"):
        open_ms(ReadConfig(ms=ms))
    autos = (np.arange(10) % NANT, np.arange(10) % NANT)
    ms = write_test_ms(tmp_path / "a.ms", hands=hands, hand_weights=weights, ant=autos)
    with pytest.raises(InputError, match=r"no cross-correlation rows in .*a\.ms for field 0"):
        open_ms(ReadConfig(ms=ms))


def test_evla_selection_matches_its_subtables(evla_ms):
    meta = open_ms(ReadConfig(ms=evla_ms))
    with tables.table(str(evla_ms / "SPECTRAL_WINDOW"), ack=False) as spw:
        np.testing.assert_array_equal(meta.freq_hz, spw.getcell("CHAN_FREQ", 0))
        np.testing.assert_array_equal(meta.chan_width_hz, spw.getcell("CHAN_WIDTH", 0))
    with tables.table(str(evla_ms / "FIELD"), ack=False) as field:
        assert meta.phase_centre_rad == tuple(field.getcell("PHASE_DIR", 0)[0])
    assert meta.freq_hz.size == 64
    assert 36.30e9 < meta.freq_hz.min() < meta.freq_hz.max() < 36.32e9
    assert (meta.field_id, meta.field_name, meta.telescope) == (0, "J1008+0730", "EVLA")
    ra, dec = (Angle(a * u.rad) for a in meta.phase_centre_rad)
    assert abs(ra - Angle("10h08m00s")) < Angle("1s")
    assert abs(dec - Angle("7d30m16s")) < Angle("1arcsec")
    assert (meta.feed, meta.corr_types, meta.nrow) == ("circular", ("RR", "RL", "LR", "LL"), 1360)


def test_evla_stokes_i_uses_weight_spectrum(evla_ms):
    cfg = ReadConfig(ms=evla_ms, chunk_rows=500)
    _, chunks = read_all(cfg, "double")
    with tables.table(str(evla_ms), ack=False) as t:
        data = t.getcol("DATA")  # (nrow, nchan, ncorr): small enough to read whole here
        spectrum = t.getcol("WEIGHT_SPECTRUM")
        weight = t.getcol("WEIGHT")
    np.testing.assert_allclose(concat(chunks, "vis"), (data[..., 0] + data[..., 3]) / 2)
    expected = expected_weight(spectrum[..., 0], spectrum[..., 3])
    np.testing.assert_allclose(concat(chunks, "weight"), expected, rtol=1e-12)
    # this set's WEIGHT is the channel sum of WEIGHT_SPECTRUM, 64 times larger
    np.testing.assert_allclose(weight, spectrum.sum(axis=1), rtol=1e-6)


def _weights_ms(tmp_path, hand_a, hand_b=None, spectrum=None):
    """30 rows whose XX and YY weights are ``hand_a`` and ``hand_b`` (default: ``hand_a``)."""
    hand_b = hand_a if hand_b is None else hand_b
    ms = write_test_ms(tmp_path / "w.ms", hands=random_hands(30), hand_weights=(np.ones(30),) * 2)
    with tables.table(str(ms), readonly=False, ack=False) as t:  # the writer refuses them
        weight = t.getcol("WEIGHT")  # (30, 4): XX XY YX YY
        weight[:, 0], weight[:, 3] = hand_a, hand_b
        t.putcol("WEIGHT", weight)
        if spectrum is not None:
            t.addcols(tables.makearrcoldesc("WEIGHT_SPECTRUM", 0.0, ndim=2, valuetype="float"))
            t.putcol("WEIGHT_SPECTRUM", np.broadcast_to(spectrum, (30, NCHAN, 4)).copy())
    cfg = ReadConfig(ms=ms, chunk_rows=7)
    return open_ms(cfg), cfg


@pytest.mark.parametrize(
    ("hand_a", "hand_b", "spectrum", "message"),
    [
        (0.0, None, None, r"WEIGHT, .*120 visibilities are zero \(120\);"),
        (-1.0, None, None, r"are negative \(120\);"),
        (np.nan, None, None, r"are NaN or infinite \(120\);"),
        (1.0, np.inf, None, r"are NaN or infinite \(120\);"),  # one hand is enough
        (  # zero in 10 rows, negative in 10, NaN beside a negative in 10: NaN wins
            np.r_[np.zeros(10), np.ones(10), np.full(10, np.nan)],
            np.r_[np.ones(10), -np.ones(20)],
            None,
            r"zero \(40\), negative \(40\), NaN or infinite \(40\);",
        ),
        (1.0, None, np.float32(-2.0), r"\(WEIGHT_SPECTRUM, .*are negative \(120\)"),
    ],
)
def test_weights_none_of_which_is_usable_are_named_with_counts(
    tmp_path, hand_a, hand_b, spectrum, message
):
    meta, cfg = _weights_ms(tmp_path, hand_a, hand_b, spectrum)
    with pytest.raises(InputError, match=message):
        check_weights(meta, cfg)


def test_one_usable_weight_is_enough(tmp_path):
    usable = np.r_[np.zeros(29), 3.0]  # in the last chunk only
    meta, cfg = _weights_ms(tmp_path, usable)
    check_weights(meta, cfg)
    spectrum = np.ones((NCHAN, 4), np.float32)
    (tmp_path / "s").mkdir()
    meta, cfg = _weights_ms(tmp_path / "s", np.zeros(30), spectrum=spectrum)
    check_weights(meta, cfg)  # WEIGHT_SPECTRUM holds data: it is what the read uses


def test_rows_of_nan_or_infinite_uvw_are_dropped_and_counted(tmp_path):
    nrow = 30
    hands, weights = random_hands(nrow), random_weights(nrow)
    flag_row = np.zeros(nrow, dtype=bool)
    flag_row[4] = True  # flagged already: dropped, not counted
    ms = write_test_ms(tmp_path / "t.ms", hands=hands, hand_weights=weights, flag_row=flag_row)
    with tables.table(str(ms), readonly=False, ack=False) as t:
        uvw = t.getcol("UVW")
        uvw[3, 0], uvw[4, 1], uvw[7, 2] = np.nan, np.inf, -np.inf
        t.putcol("UVW", uvw)
    _, chunks = read_all(ReadConfig(ms=ms, chunk_rows=4))
    weight, uvw_m = concat(chunks, "weight"), concat(chunks, "uvw_m")
    np.testing.assert_array_equal(np.flatnonzero(np.all(weight == 0, axis=1)), [3, 4, 7])
    assert np.all(weight[[0, 1, 2, 5, 6, 8]] > 0)
    np.testing.assert_array_equal(uvw_m[[3, 4, 7]], 0.0)  # nothing NaN reaches the gridder
    np.testing.assert_array_equal(uvw_m[0], row_uvw_m(nrow)[0])
    assert sum(c.n_nonfinite for c in chunks) == 2 * NCHAN  # rows 3 and 7


def test_a_selection_whose_stokes_i_fits_a_chunk_is_gathered_whole(tmp_path):
    # 12,000 rows of 4 channels: 1 MiB chunks of 5,667 rows; Stokes I 72 bytes a row fits
    nrow = 12_000
    hands, weights = random_hands(nrow), random_weights(nrow)
    hands[0][5, 1] = np.nan  # counted once, gathered or not
    hands[1][11_000, 3] = np.inf
    ms = write_test_ms(tmp_path / "g.ms", hands=hands, hand_weights=weights)
    cfg = ReadConfig(ms=ms, chunk_mb=1)
    meta = open_ms(cfg)
    streamed = list(iter_chunks(meta, cfg))
    (gathered,) = iter_chunks(meta, cfg, gather=True)
    assert len(streamed) == 3 and gathered.row_start == 0
    for name in ("uvw_m", "vis", "weight"):
        np.testing.assert_array_equal(getattr(gathered, name), concat(streamed, name))
    np.testing.assert_array_equal(gathered.nonfinite_per_chan, [0, 1, 0, 1])
    given = ReadConfig(ms=ms, chunk_rows=5_000)  # rows given are read as given
    assert len(list(iter_chunks(meta, given, gather=True))) == 3
    assert not gathers(cfg, 15_000, 5_667, NCHAN, "single")  # 1.08 MB: over the budget
    with pytest.raises(ValueError, match="cover 5667 of 12000 rows"):
        gather_chunks(iter(streamed[:1]), nrow, NCHAN, "single")
