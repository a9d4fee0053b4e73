"""Physical constants, in SI units."""

from __future__ import annotations

__all__ = ["SPEED_OF_LIGHT_M_S"]

SPEED_OF_LIGHT_M_S = 299_792_458.0
"""Speed of light in vacuum, m/s (exact by the SI definition of the metre)."""
