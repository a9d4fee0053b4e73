"""A Measurement Set's tables: the main table, checked, and its subtables, read whole.

:func:`open_ms_table` opens the main table after checking that it is a Measurement Set, and
:func:`data_columns` names its visibility columns;
:func:`read_antennas`, :func:`read_spectral_windows`, :func:`read_polarizations`,
:func:`read_data_descriptions`, :func:`read_fields` and :func:`telescope_name` read its
subtables, whose rows are few, whole.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from casacore import tables

from skarim.errors import InputError
from skarim.io.correlations import CORR_TYPE_NAMES

__all__ = [
    "data_columns",
    "open_ms_table",
    "read_antennas",
    "read_data_descriptions",
    "read_fields",
    "read_polarizations",
    "read_spectral_windows",
    "telescope_name",
]

_REQUIRED_COLUMNS = ("UVW", "ANTENNA1", "ANTENNA2", "DATA_DESC_ID", "FIELD_ID", "FLAG", "TIME")
_REQUIRED_SUBTABLES = ("ANTENNA", "DATA_DESCRIPTION", "FIELD", "POLARIZATION", "SPECTRAL_WINDOW")


def open_ms_table(path: Path) -> tables.table:
    """Open the main table of a Measurement Set read-only, after checking it is one.

    Parameters
    ----------
    path : Path
        The Measurement Set directory.

    Returns
    -------
    casacore.tables.table
        The open main table; use it as a context manager so that it is closed.

    Raises
    ------
    InputError
        If the path does not exist, is not a casacore table, or lacks the main-table columns
        or the subtables of a Measurement Set.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"Measurement Set {path} does not exist")
    if not tables.tableexists(str(path)):
        raise InputError(f"{path} is not a Measurement Set: not a casacore table")
    ms = tables.table(str(path), readonly=True, ack=False)
    missing = [c for c in _REQUIRED_COLUMNS if c not in ms.colnames()]
    if missing:
        ms.close()
        raise InputError(f"{path} is not a Measurement Set: no {', '.join(missing)} column")
    missing = [s for s in _REQUIRED_SUBTABLES if not tables.tableexists(str(path / s))]
    if missing:
        ms.close()
        raise InputError(f"{path} is not a Measurement Set: no {', '.join(missing)} table")
    return ms


def data_columns(ms: tables.table) -> list[str]:
    """The main table's visibility columns: its complex array columns, in table order.

    Parameters
    ----------
    ms : casacore.tables.table
        The open main table (:func:`open_ms_table`).

    Returns
    -------
    list of str
        ``DATA``, ``CORRECTED_DATA``, ``MODEL_DATA``... as the table has them.
    """
    return [
        c
        for c in ms.colnames()
        if ms.getcoldesc(c).get("valueType") in ("complex", "dcomplex")
        and ms.getcoldesc(c).get("ndim", 0) != 0
    ]


def read_antennas(path: Path) -> tuple[tuple[str, ...], np.ndarray]:
    """NAME and DISH_DIAMETER of every ANTENNA row.

    Parameters
    ----------
    path : Path
        The Measurement Set directory.

    Returns
    -------
    names : tuple of str
        Antenna names, in table order.
    dish_diameter_m : numpy.ndarray
        ``(nant,)`` dish diameters, metres.
    """
    with _subtable(path, "ANTENNA") as ant:
        if ant.nrows() == 0:
            return (), np.zeros(0)
        return tuple(str(n) for n in ant.getcol("NAME")), ant.getcol("DISH_DIAMETER")


def read_spectral_windows(path: Path) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """CHAN_FREQ and CHAN_WIDTH of every SPECTRAL_WINDOW row.

    Parameters
    ----------
    path : Path
        The Measurement Set directory.

    Returns
    -------
    tuple of (numpy.ndarray, numpy.ndarray)
        Per spectral window, ``(nchan,)`` float64 channel centres and widths, Hz.
    """
    with _subtable(path, "SPECTRAL_WINDOW") as spw:
        return tuple(
            (
                np.asarray(spw.getcell("CHAN_FREQ", i), dtype=np.float64),
                np.asarray(spw.getcell("CHAN_WIDTH", i), dtype=np.float64),
            )
            for i in range(spw.nrows())
        )


def read_polarizations(path: Path) -> tuple[tuple[str, ...], ...]:
    """Correlation names of every POLARIZATION row, from its CORR_TYPE.

    Parameters
    ----------
    path : Path
        The Measurement Set directory.

    Returns
    -------
    tuple of tuple of str
        Per row, the correlations in stored order, e.g. ``("XX", "XY", "YX", "YY")``; a code
        that is not in :data:`~skarim.io.correlations.CORR_TYPE_NAMES` as its number.
    """
    with _subtable(path, "POLARIZATION") as pol:
        return tuple(
            tuple(CORR_TYPE_NAMES.get(int(c), str(c)) for c in pol.getcell("CORR_TYPE", i))
            for i in range(pol.nrows())
        )


def read_data_descriptions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """SPECTRAL_WINDOW_ID and POLARIZATION_ID of every DATA_DESCRIPTION row.

    Parameters
    ----------
    path : Path
        The Measurement Set directory.

    Returns
    -------
    spw_ids, pol_ids : numpy.ndarray
        ``(ndd,)`` int32 rows of SPECTRAL_WINDOW and POLARIZATION of each description.
    """
    with _subtable(path, "DATA_DESCRIPTION") as dd:
        return dd.getcol("SPECTRAL_WINDOW_ID"), dd.getcol("POLARIZATION_ID")


def read_fields(path: Path) -> tuple[tuple[str, tuple[float, float]], ...]:
    """NAME and phase centre of every FIELD row.

    Parameters
    ----------
    path : Path
        The Measurement Set directory.

    Returns
    -------
    tuple of (str, (float, float))
        Per field, its name and ``(ra, dec)`` in radians (first polynomial term of
        PHASE_DIR).
    """
    with _subtable(path, "FIELD") as field:
        out = []
        for i in range(field.nrows()):
            phase_dir = field.getcell("PHASE_DIR", i)  # (npoly + 1, 2)
            centre = (float(phase_dir[0, 0]), float(phase_dir[0, 1]))
            out.append((str(field.getcell("NAME", i)), centre))
    return tuple(out)


def telescope_name(path: Path) -> str:
    """TELESCOPE_NAME of the first OBSERVATION row of a Measurement Set.

    Parameters
    ----------
    path : Path
        The Measurement Set directory.

    Returns
    -------
    str
        The name, or "" when there is no OBSERVATION table or it has no rows.
    """
    path = Path(path)
    if not tables.tableexists(str(path / "OBSERVATION")):
        return ""
    with _subtable(path, "OBSERVATION") as obs:
        return str(obs.getcell("TELESCOPE_NAME", 0)) if obs.nrows() else ""


def _subtable(path: Path, name: str) -> tables.table:
    """A subtable of the Measurement Set, opened read-only."""
    return tables.table(str(Path(path) / name), readonly=True, ack=False)
