"""Earth-rotation uv coverage of an array tracking a source (numpy only).

Used by ``skarim simulate`` to fill the UVW column and by the training problem generator,
which must run with torch and numpy alone.
"""

from __future__ import annotations

import numpy as np

from skarim.sim.layouts import Layout

__all__ = ["baseline_pairs", "hour_angles_rad", "uvw_tracks_m"]

SIDEREAL_RATE_RAD_S = 2 * np.pi / 86164.0905


def baseline_pairs(nant: int) -> tuple[np.ndarray, np.ndarray]:
    """Antenna index pairs ``(ant1, ant2)`` with ``ant1 < ant2`` (no autocorrelations)."""
    a1, a2 = np.triu_indices(nant, k=1)
    return a1.astype(np.int32), a2.astype(np.int32)


def hour_angles_rad(duration_s: float, integration_s: float) -> np.ndarray:
    """Hour angles of the integrations of a track centred on transit.

    Parameters
    ----------
    duration_s : float
        Track length in seconds.
    integration_s : float
        Integration time in seconds.

    Returns
    -------
    numpy.ndarray
        ``(ntime,)`` hour angles in radians.
    """
    ntime = max(1, int(round(duration_s / integration_s)))
    t = (np.arange(ntime) - (ntime - 1) / 2) * integration_s
    return t * SIDEREAL_RATE_RAD_S


def uvw_tracks_m(layout: Layout, dec_rad: float, hour_angle_rad: np.ndarray) -> np.ndarray:
    """UVW coordinates of every baseline at every hour angle.

    The convention is the Measurement Set's: ``uvw = xyz(ant2) - xyz(ant1)`` projected onto
    the (u east, v north, w towards the source) frame (Thompson, Moran & Swenson eq. 4.1).

    Parameters
    ----------
    layout : Layout
        Antenna positions.
    dec_rad : float
        Declination of the phase centre, radians.
    hour_angle_rad : numpy.ndarray
        ``(ntime,)`` hour angles of the phase centre at the array's longitude, radians.

    Returns
    -------
    numpy.ndarray
        ``(ntime, nbaseline, 3)`` UVW in metres, baselines ordered as :func:`baseline_pairs`.
    """
    lon, _ = layout.lon_lat_rad
    x, y, z = layout.itrf_m.T
    # rotate ITRF to the local meridian: X towards (H=0, dec=0), Y towards H=-6h, Z north pole
    xl = x * np.cos(lon) + y * np.sin(lon)
    yl = -x * np.sin(lon) + y * np.cos(lon)
    a1, a2 = baseline_pairs(len(x))
    bx, by, bz = xl[a2] - xl[a1], yl[a2] - yl[a1], z[a2] - z[a1]  # (nbl,)
    h = np.asarray(hour_angle_rad)[:, None]  # (ntime, 1)
    sd, cd = np.sin(dec_rad), np.cos(dec_rad)
    u = np.sin(h) * bx + np.cos(h) * by
    v = -sd * np.cos(h) * bx + sd * np.sin(h) * by + cd * bz
    w = cd * np.cos(h) * bx - cd * np.sin(h) * by + sd * bz
    return np.stack([u, v, w], axis=-1)  # (ntime, nbl, 3)
