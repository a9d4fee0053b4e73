"""Angles typed by users (``1.5asec``, ``0.2arcmin``, WSClean's spellings) parsed at the edge.

Inside skarim angles are plain floats in radians; :mod:`astropy.units` parses the text.
"""

from __future__ import annotations

import re

import astropy.units as u

from skarim.errors import InputError

__all__ = ["parse_angle_rad"]

_WSCLEAN_UNITS = {"asec": "arcsec", "amin": "arcmin"}


def parse_angle_rad(text: str | float, bare_unit: str = "deg") -> float:
    """Parse an angle with units into radians.

    Parameters
    ----------
    text : str or float
        ``"1.5asec"``, ``"1.5 arcsec"``, ``"0.01deg"``, ``"2amin"`` (WSClean spellings are
        accepted), or a bare number, in ``bare_unit``.
    bare_unit : str
        Unit of a bare number: degrees as WSClean's ``-scale``; ``"arcsec"`` as its
        ``-taper-gaussian``.

    Returns
    -------
    float
        The angle in radians.

    Raises
    ------
    InputError
        If the text is not an angle.
    """
    if isinstance(text, int | float):
        return float(u.Quantity(float(text), u.Unit(bare_unit)).to_value(u.rad))
    s = str(text).strip()
    match = re.fullmatch(r"([-+0-9.eE]+)\s*([A-Za-z]*)", s)
    if match is None:
        raise InputError(f"cannot parse angle {text!r}: give a number and a unit, e.g. 1.5asec")
    value, unit = match.groups()
    unit = _WSCLEAN_UNITS.get(unit, unit) or bare_unit
    try:
        q = u.Quantity(float(value), u.Unit(unit))
        return float(q.to_value(u.rad))
    except (ValueError, u.UnitsError, TypeError) as exc:
        raise InputError(f"cannot parse angle {text!r}: {exc}") from None
