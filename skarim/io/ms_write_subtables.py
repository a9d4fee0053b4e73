"""The subtables of a new Measurement Set: what imagers read about its observation.

:func:`fill_subtables` fills ANTENNA, SPECTRAL_WINDOW, DATA_DESCRIPTION (description ``i`` is
spectral window ``i`` with polarisation setup 0), POLARIZATION, FEED, FIELD, OBSERVATION and
PROCESSOR of a Measurement Set whose main table is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import casacore.tables as pt
import numpy as np

from skarim.io.correlations import CORR_PRODUCT_CODES, FEED_RECEPTORS, product_feed

__all__ = ["fill_subtables"]

_RECEPTOR_INDEX = {r: i for receptors in FEED_RECEPTORS.values() for i, r in enumerate(receptors)}
_RECEPTOR_ANGLE_RAD = {"linear": (0.0, np.pi / 2), "circular": (0.0, 0.0)}


def fill_subtables(
    ms_path: Path,
    *,
    antenna_itrf_m: np.ndarray,
    antenna_names: Sequence[str],
    antenna_diameter_m: np.ndarray,
    freq_hz: np.ndarray,
    width_hz: np.ndarray,
    corr_types: Sequence[str],
    field_names: Sequence[str],
    phase_dirs_rad: np.ndarray,
    telescope: str,
    time_range_s: tuple[float, float],
    exposure_s: float,
) -> None:
    """Fill the subtables of a Measurement Set.

    Parameters
    ----------
    ms_path : Path
        The Measurement Set directory, with empty subtables.
    antenna_itrf_m : numpy.ndarray
        ``(nant, 3)`` float64 antenna positions, ITRF metres.
    antenna_names : sequence of str
        ``nant`` antenna names (ANTENNA ``NAME`` and ``STATION``).
    antenna_diameter_m : numpy.ndarray
        ``(nant,)`` float64 dish diameters, metres.
    freq_hz : numpy.ndarray
        ``(nspw, nchan)`` float64 channel centres of each spectral window, Hz.
    width_hz : numpy.ndarray
        ``(nspw,)`` channel width of each spectral window, Hz.
    corr_types : sequence of str
        Correlation products, keys of :data:`~skarim.io.correlations.CORR_PRODUCT_CODES` of
        one feed type.
    field_names : sequence of str
        ``nfield`` FIELD names.
    phase_dirs_rad : numpy.ndarray
        ``(nfield, 2)`` RA, Dec (J2000) of each field's phase centre, radians.
    telescope : str
        OBSERVATION ``TELESCOPE_NAME``.
    time_range_s : tuple of float
        First and last TIME of the main table, MJD seconds (UTC).
    exposure_s : float
        Integration time, s: the observation spans half of it more on either side.
    """
    t0, t1 = time_range_s
    nant = len(antenna_names)
    _fill_antenna(ms_path, antenna_itrf_m, antenna_names, antenna_diameter_m)
    _fill_spectral_windows(ms_path, freq_hz, width_hz)
    _fill_polarization(ms_path, corr_types)
    _fill_feed(ms_path, nant, product_feed(corr_types[0]), (t0 + t1) / 2)
    _fill_field(ms_path, field_names, phase_dirs_rad, t0)
    _fill_observation(ms_path, telescope, [t0 - exposure_s / 2, t1 + exposure_s / 2])
    _fill_processor(ms_path)


def _subtable(ms_path: Path, name: str, nrow: int) -> pt.table:
    table = pt.table(str(ms_path / name), readonly=False, ack=False)
    table.addrows(nrow)
    return table


def _fill_antenna(
    ms_path: Path, itrf_m: np.ndarray, names: Sequence[str], diameter_m: np.ndarray
) -> None:
    nant = len(names)
    with _subtable(ms_path, "ANTENNA", nant) as t:
        t.putcol("NAME", list(names))
        t.putcol("STATION", list(names))
        t.putcol("POSITION", itrf_m)
        t.putcol("OFFSET", np.zeros((nant, 3)))
        t.putcol("DISH_DIAMETER", diameter_m)
        t.putcol("TYPE", ["GROUND-BASED"] * nant)
        t.putcol("MOUNT", ["ALT-AZ"] * nant)
        t.putcol("FLAG_ROW", np.zeros(nant, dtype=bool))


def _fill_spectral_windows(ms_path: Path, freq: np.ndarray, width: np.ndarray) -> None:
    nspw, nchan = freq.shape
    with _subtable(ms_path, "SPECTRAL_WINDOW", nspw) as t:
        t.putcol("CHAN_FREQ", freq)
        t.putcol("CHAN_WIDTH", np.repeat(width[:, None], nchan, axis=1))
        t.putcol("EFFECTIVE_BW", np.repeat(np.abs(width)[:, None], nchan, axis=1))
        t.putcol("RESOLUTION", np.repeat(np.abs(width)[:, None], nchan, axis=1))
        t.putcol("REF_FREQUENCY", freq[:, 0])
        t.putcol("TOTAL_BANDWIDTH", nchan * np.abs(width))
        t.putcol("NUM_CHAN", np.full(nspw, nchan, dtype=np.int32))
        t.putcol("NAME", [f"SPW{i}" for i in range(nspw)])
        t.putcol("MEAS_FREQ_REF", np.full(nspw, 5, dtype=np.int32))  # TOPO
        t.putcol("NET_SIDEBAND", np.ones(nspw, dtype=np.int32))
        t.putcol("FREQ_GROUP", np.zeros(nspw, dtype=np.int32))
        t.putcol("FREQ_GROUP_NAME", [""] * nspw)
        t.putcol("IF_CONV_CHAIN", np.zeros(nspw, dtype=np.int32))
        t.putcol("FLAG_ROW", np.zeros(nspw, dtype=bool))
    with _subtable(ms_path, "DATA_DESCRIPTION", nspw) as t:
        t.putcol("SPECTRAL_WINDOW_ID", np.arange(nspw, dtype=np.int32))
        t.putcol("POLARIZATION_ID", np.zeros(nspw, dtype=np.int32))
        t.putcol("FLAG_ROW", np.zeros(nspw, dtype=bool))


def _fill_polarization(ms_path: Path, corr_types: Sequence[str]) -> None:
    codes = np.array([[CORR_PRODUCT_CODES[c] for c in corr_types]], dtype=np.int32)  # (1, ncorr)
    product = np.array([[[_RECEPTOR_INDEX[r] for r in c] for c in corr_types]], dtype=np.int32)
    with _subtable(ms_path, "POLARIZATION", 1) as t:
        t.putcol("CORR_TYPE", codes)
        t.putcol("CORR_PRODUCT", product)  # (1, ncorr, 2)
        t.putcol("NUM_CORR", np.array([len(corr_types)], dtype=np.int32))
        t.putcol("FLAG_ROW", np.zeros(1, dtype=bool))


def _fill_feed(ms_path: Path, nant: int, feed: str, time_s: float) -> None:
    with _subtable(ms_path, "FEED", nant) as t:
        t.putcol("ANTENNA_ID", np.arange(nant, dtype=np.int32))
        t.putcol("FEED_ID", np.zeros(nant, dtype=np.int32))
        t.putcol("SPECTRAL_WINDOW_ID", np.full(nant, -1, dtype=np.int32))  # all windows
        t.putcol("BEAM_ID", np.full(nant, -1, dtype=np.int32))
        t.putcol("TIME", np.full(nant, time_s))
        t.putcol("INTERVAL", np.zeros(nant))  # valid at all times
        t.putcol("NUM_RECEPTORS", np.full(nant, 2, dtype=np.int32))
        t.putcol("POLARIZATION_TYPE", np.array([FEED_RECEPTORS[feed]] * nant))
        t.putcol("RECEPTOR_ANGLE", np.tile(_RECEPTOR_ANGLE_RAD[feed], (nant, 1)))
        t.putcol("POL_RESPONSE", np.tile(np.eye(2, dtype=np.complex64), (nant, 1, 1)))
        t.putcol("BEAM_OFFSET", np.zeros((nant, 2, 2)))
        t.putcol("POSITION", np.zeros((nant, 3)))


def _fill_field(ms_path: Path, names: Sequence[str], dirs_rad: np.ndarray, time_s: float) -> None:
    nfield = len(names)
    dirs = dirs_rad[:, None, :]  # (nfield, 1, 2): NUM_POLY + 1 = 1 polynomial term
    with _subtable(ms_path, "FIELD", nfield) as t:
        t.putcol("NAME", list(names))
        t.putcol("CODE", [""] * nfield)
        for column in ("PHASE_DIR", "DELAY_DIR", "REFERENCE_DIR"):
            t.putcol(column, dirs)
        t.putcol("TIME", np.full(nfield, time_s))
        t.putcol("NUM_POLY", np.zeros(nfield, dtype=np.int32))
        t.putcol("SOURCE_ID", np.full(nfield, -1, dtype=np.int32))
        t.putcol("FLAG_ROW", np.zeros(nfield, dtype=bool))


def _fill_observation(ms_path: Path, telescope: str, time_range_s: list[float]) -> None:
    with _subtable(ms_path, "OBSERVATION", 1) as t:
        t.putcol("TELESCOPE_NAME", [telescope])
        t.putcol("TIME_RANGE", np.array([time_range_s]))
        t.putcol("OBSERVER", ["skarim"])
        t.putcol("PROJECT", ["skarim"])
        t.putcol("SCHEDULE_TYPE", [""])
        t.putcol("RELEASE_DATE", np.zeros(1))
        t.putcol("FLAG_ROW", np.zeros(1, dtype=bool))
        t.putcell("LOG", 0, np.array(["written by skarim"]))
        t.putcell("SCHEDULE", 0, np.array([""]))


def _fill_processor(ms_path: Path) -> None:
    with _subtable(ms_path, "PROCESSOR", 1) as t:
        t.putcol("TYPE", ["CORRELATOR"])
        t.putcol("SUB_TYPE", ["SIMULATOR"])
        t.putcol("TYPE_ID", np.array([-1], dtype=np.int32))
        t.putcol("MODE_ID", np.array([-1], dtype=np.int32))
        t.putcol("FLAG_ROW", np.zeros(1, dtype=bool))
