"""A small real Measurement Set corrupted at random: ``skarim image`` either writes finite
products or ends with one line and exit status 2, never a traceback.

Hypothesis draws one to three corruptions (flags, weights, NaN/inf or huge data, UVW, no rows,
autocorrelations only, subtables) applied with python-casacore to a copy of the set; the
command runs in this process (:func:`skarim.cli.app.main`, the console script's entry point),
deconvolution included, so that an unexpected exception fails the test with its traceback.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from casacore import tables
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msfactory import point_source_vis, random_uvw_m, write_stokes_i_ms

from skarim.cli.app import main

_NROW = 168  # 6 integrations of the 28 baselines of 8 antennas


def _rows(t: tables.table, rng: np.random.Generator, fraction: float) -> np.ndarray:
    """A random subset of the main table's rows, at least one (none of an empty table)."""
    n = t.nrows()
    size = min(n, max(1, round(fraction * n)))
    return np.sort(rng.choice(n, size=size, replace=False)) if n else np.arange(0)


def _set_rows(t, column, rows, value) -> None:
    cells = t.getcol(column)
    cells[rows] = value
    t.putcol(column, cells)


def _main_table(kind: str, value: float, fraction: float, rng: np.random.Generator):
    """A corruption of the main table: ``kind`` set to ``value`` in a random ``fraction``."""

    def apply(ms: Path) -> None:
        if kind == "rows_removed":  # the main table's storage managers remove no rows: copied
            with tables.table(str(ms), ack=False) as t:
                keep = np.setdiff1d(np.arange(t.nrows()), _rows(t, rng, fraction))
                t.selectrows(keep).copy(f"{ms}.kept", deep=True).close()
            shutil.rmtree(ms)
            Path(f"{ms}.kept").rename(ms)
            return
        with tables.table(str(ms), readonly=False, ack=False) as t:
            rows = _rows(t, rng, fraction)
            if kind == "flag":
                _set_rows(t, "FLAG", rows, True)
            elif kind == "flag_row":
                _set_rows(t, "FLAG_ROW", rows, True)
            elif kind == "weight":
                _set_rows(t, "WEIGHT", rows, value)
            elif kind == "data":
                _set_rows(t, "DATA", rows, value)
            elif kind == "uvw":
                _set_rows(t, "UVW", rows, value)
            elif kind == "autocorrelations":
                _set_rows(t, "ANTENNA2", rows, t.getcol("ANTENNA1")[rows])

    return apply


#: Subtable corruptions: (subtable, column, value); no column: every row removed.
_SUBTABLES = {
    "chan_freq_nan": ("SPECTRAL_WINDOW", "CHAN_FREQ", np.nan),
    "chan_freq_zero": ("SPECTRAL_WINDOW", "CHAN_FREQ", 0.0),
    "chan_freq_negative": ("SPECTRAL_WINDOW", "CHAN_FREQ", -1.3e9),
    "chan_width_zero": ("SPECTRAL_WINDOW", "CHAN_WIDTH", 0.0),
    "phase_dir_nan": ("FIELD", "PHASE_DIR", np.nan),
    "corr_type_stokes": ("POLARIZATION", "CORR_TYPE", 1),  # I, I, I, I: no parallel hands
    "spw_id_missing": ("DATA_DESCRIPTION", "SPECTRAL_WINDOW_ID", 5),
    "no_field": ("FIELD", None, None),
    "no_antenna": ("ANTENNA", None, None),
}


def _subtable(kind: str):
    """A corruption of a subtable, one of :data:`_SUBTABLES`."""
    name, column, value = _SUBTABLES[kind]

    def apply(ms: Path) -> None:
        with tables.table(str(ms / name), readonly=False, ack=False) as t:
            if column is None:
                t.removerows(np.arange(t.nrows()))
                return
            cells = t.getcol(column)
            cells[...] = value
            t.putcol(column, cells)

    return apply


_KINDS = ["flag", "flag_row", "weight", "data", "uvw", "autocorrelations", "rows_removed"]
_VALUES = {
    "weight": [0.0, -1.0, np.nan, np.inf, 1e30],
    "data": [np.nan, np.inf, 1e30, 0.0],
    "uvw": [np.nan, np.inf, 0.0, 1e9, -1e7],
}


@st.composite
def _corruptions(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    out = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from([*_KINDS, "subtable"]))
        if kind == "subtable":
            sub = draw(st.sampled_from(sorted(_SUBTABLES)))
            out.append((sub, _subtable(sub)))
            continue
        value = draw(st.sampled_from(_VALUES.get(kind, [0.0])))
        fraction = draw(st.sampled_from([0.1, 0.5, 1.0]))
        out.append((f"{kind}={value}@{fraction}", _main_table(kind, value, fraction, rng)))
    return out


@pytest.fixture(scope="module")
def base_ms(tmp_path_factory) -> Path:
    rng = np.random.default_rng(11)
    freq = np.array([1.3e9, 1.31e9, 1.32e9])
    uvw = random_uvw_m(rng, _NROW, max_m=1000.0, w_frac=0.2)
    vis = point_source_vis(uvw, freq, 0.0, 0.0) + 0.3 * point_source_vis(uvw, freq, 4e-4, 2e-4)
    return write_stokes_i_ms(tmp_path_factory.mktemp("base") / "base.ms", uvw, freq, vis)


@pytest.fixture
def quiet_log():
    """Log records of the in-process runs go nowhere (the error line goes to stderr)."""
    log = logging.getLogger("skarim")
    handlers = log.handlers[:]
    log.handlers = [logging.NullHandler()]
    yield
    log.handlers = handlers


@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(corruptions=_corruptions())
def test_a_corrupted_set_gives_finite_products_or_one_line_and_exit_2(
    base_ms, quiet_log, capsys, corruptions
):
    capsys.readouterr()
    with tempfile.TemporaryDirectory() as tmp:
        ms = Path(shutil.copytree(base_ms, Path(tmp) / "c.ms"))
        for _, corrupt in corruptions:
            corrupt(ms)
        name = Path(tmp) / "run"
        args = ["image", str(ms), "--size", "64", "--scale", "6asec", "--tile", "32"]
        args += ["--channels-out", "2", "--name", str(name), "--scheduler", "sync"]
        args += ["--major-cycles", "1", "--polish-cycles", "0"]
        try:
            main(args)
            status = 0
        except SystemExit as exc:
            status = exc.code
        err = capsys.readouterr().err
        what = f"{[c for c, _ in corruptions]}: {err}"
        if status == 0:
            products = sorted(Path(tmp).glob("run-*.fits"))  # the cubes and the MFS planes
            products = [p for p in products if p.name != "run-alpha.fits"]  # NaN off sources
            assert len(products) == 10, what
            for path in products:
                assert np.all(np.isfinite(fits.getdata(path))), f"{path.name} {what}"
        else:
            assert status == 2, what
            errors = [ln for ln in err.splitlines() if ln.startswith("skarim: error: ")]
            assert len(errors) == 1 and "Traceback" not in err, what
