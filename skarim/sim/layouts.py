"""Antenna layouts shipped with skarim (CASA simulator ``.cfg`` files).

Header lines name the observatory and the coordinate system: ``XYZ`` (ITRF metres) or
``LOC`` (local east-north-up metres about the observatory). Needs numpy only, so the
training path can use it without casacore.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from skarim.errors import InputError

__all__ = ["Layout", "available_layouts", "load_layout"]

# Geodetic longitude, latitude (degrees) and height (m) of observatories whose layouts are
# given in local coordinates.
_OBSERVATORY_LLH = {"meerkat": (21.44389, -30.71317, 1038.0)}

_WGS84_A = 6378137.0
_WGS84_F = 1.0 / 298.257223563


@dataclass(frozen=True)
class Layout:
    """An array layout.

    Attributes
    ----------
    name : str
        File stem, e.g. ``meerkat`` or ``vla.a``.
    observatory : str
        Observatory name from the header.
    itrf_m : numpy.ndarray
        ``(nant, 3)`` ITRF positions in metres.
    diameter_m : numpy.ndarray
        ``(nant,)`` dish diameters in metres.
    names : tuple of str
        Station names.
    """

    name: str
    observatory: str
    itrf_m: np.ndarray
    diameter_m: np.ndarray
    names: tuple[str, ...]

    @property
    def lon_lat_rad(self) -> tuple[float, float]:
        """Geocentric longitude and latitude of the array centre, radians."""
        x, y, z = self.itrf_m.mean(axis=0)
        return float(np.arctan2(y, x)), float(np.arctan2(z, np.hypot(x, y)))

    @property
    def max_baseline_m(self) -> float:
        """Longest baseline in metres."""
        d = self.itrf_m[:, None, :] - self.itrf_m[None, :, :]
        return float(np.sqrt((d**2).sum(-1)).max())


def _geodetic_to_itrf(lon_rad: float, lat_rad: float, h_m: float) -> np.ndarray:
    e2 = _WGS84_F * (2 - _WGS84_F)
    n = _WGS84_A / np.sqrt(1 - e2 * np.sin(lat_rad) ** 2)
    return np.array(
        [
            (n + h_m) * np.cos(lat_rad) * np.cos(lon_rad),
            (n + h_m) * np.cos(lat_rad) * np.sin(lon_rad),
            (n * (1 - e2) + h_m) * np.sin(lat_rad),
        ]
    )


def _enu_to_itrf(enu_m: np.ndarray, lon_rad: float, lat_rad: float, h_m: float) -> np.ndarray:
    sl, cl = np.sin(lon_rad), np.cos(lon_rad)
    sp, cp = np.sin(lat_rad), np.cos(lat_rad)
    # columns: unit east, north, up in ITRF
    rot = np.array([[-sl, -sp * cl, cp * cl], [cl, -sp * sl, cp * sl], [0.0, cp, sp]])
    return _geodetic_to_itrf(lon_rad, lat_rad, h_m)[None, :] + enu_m @ rot.T


def available_layouts() -> list[str]:
    """Names of the layouts shipped in the package."""
    files = resources.files("skarim").joinpath("layouts").iterdir()
    return sorted(f.name.removesuffix(".cfg") for f in files if f.name.endswith(".cfg"))


def load_layout(name_or_path: str | Path) -> Layout:
    """Load a shipped layout by name (``meerkat``, ``vla.a``...) or a ``.cfg`` file by path.

    Raises
    ------
    InputError
        If the layout is unknown or the file cannot be parsed.
    """
    path = Path(name_or_path)
    if path.suffix == ".cfg" and path.exists():
        text, stem = path.read_text(), path.stem
    else:
        res = resources.files("skarim").joinpath("layouts", f"{name_or_path}.cfg")
        if not res.is_file():
            raise InputError(
                f"unknown layout {name_or_path!r}; shipped: {', '.join(available_layouts())}"
            )
        text, stem = res.read_text(), str(name_or_path)
    header: dict[str, str] = {}
    rows: list[list[str]] = []
    for line in text.splitlines():
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            if "=" in s:
                key, _, val = s.lstrip("#").partition("=")
                header[key.strip().lower()] = val.strip().split()[0] if val.strip() else ""
            continue
        rows.append(s.split())
    if not rows:
        raise InputError(f"layout {stem!r} has no antennas")
    xyz = np.array([[float(v) for v in r[:3]] for r in rows])
    diam = np.array([float(r[3]) if len(r) > 3 else 12.0 for r in rows])
    names = tuple(r[4] if len(r) > 4 else f"A{i:03d}" for i, r in enumerate(rows))
    observatory = header.get("observatory", stem)
    if header.get("coordsys", "XYZ").upper().startswith("LOC"):
        key = observatory.lower()
        if key not in _OBSERVATORY_LLH:
            raise InputError(f"layout {stem!r} is local but observatory {observatory!r} is unknown")
        lon, lat, h = _OBSERVATORY_LLH[key]
        xyz = _enu_to_itrf(xyz, np.deg2rad(lon), np.deg2rad(lat), h)
    return Layout(stem, observatory, xyz, diam, names)
