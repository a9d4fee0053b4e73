"""The primary beam of an array's dishes, and images corrected for it (``--apply-primary-beam``).

The beam is the Stokes I power pattern of one dish, 1 at the pointing centre, which is taken to
be the phase centre (one pointing, no mosaic). Its model follows the telescope
(``OBSERVATION::TELESCOPE_NAME``):

- MeerKAT: katbeam's ``JimBeam`` Stokes I (SARAO's cosine-taper model fitted to holography),
  the L-band model (900-1650 MHz) when the imaged band's centre lies at or above 900 MHz, the
  UHF model (550-1050 MHz) below; a channel beyond its model's table (the S band included)
  takes the pattern of the table's nearest frequency scaled as ``1/freq`` (diffraction). The
  model's ``x, y`` axes are laid along ``l`` (east) and ``m`` (north): the pattern at
  parallactic angle 0, without its rotation over a track.
- any other array: the Airy pattern of a uniformly illuminated dish of the ANTENNA table's
  ``DISH_DIAMETER`` ``D`` (as CASA's simulator models a dish it has no model of),
  ``P = (2 J1(x) / x)^2`` with ``x = pi D sin(theta) / lambda``, half power at
  ``1.029 lambda / D`` full width. For the VLA's 25 m dishes that is 42.4 arcmin at 1 GHz,
  against the 42 arcmin of the VLA's observational status summary; tapered dishes have wider
  beams (MeerKAT's is 1.13 lambda / D), which only a telescope's own model gives. An array of
  mixed diameters takes their median, with a warning.

EveryBeam (the library WSClean uses) is not used: its Python bindings 0.9.1 load only AARTFAAC,
LOFAR, OSKAR, SKA-MID and MWA Measurement Sets, and refuse MeerKAT's and the VLA's.

The corrected image is ``image / pb`` where ``pb >= --primary-beam-limit`` and NaN elsewhere,
as WSClean's ``-primary-beam-limit`` trims it; a cube plane takes the beam at its channel's
frequency, an MFS plane the beams of the channels averaged with the MFS weights
(:func:`skarim.restore.products.mfs_weights`). Pixels are evaluated exactly, band by band of
rows, from their direction cosines ``l = -(x - npix_x/2) cell``, ``m = (y - npix_y/2) cell``
(:mod:`skarim.io.wcs`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path

import numpy as np
from katbeam import JimBeam

from skarim.constants import SPEED_OF_LIGHT_M_S
from skarim.errors import InputError
from skarim.io.ms_tables import read_antennas
from skarim.io.wcs import ImageWCS

__all__ = [
    "AIRY",
    "PlaneRows",
    "PrimaryBeam",
    "beam_rows",
    "corrected_bands",
    "load_primary_beam",
    "primary_beam_of",
]

log = logging.getLogger("skarim")

AIRY = "Airy"
"""Model name of the analytic beam of a uniformly illuminated dish."""

_KATBEAM_L, _KATBEAM_UHF = "MKAT-AA-L-JIM-2020", "MKAT-AA-UHF-JIM-2020"
_L_TABLE_START_HZ = 900e6  # the first frequency of katbeam's L-band table

PlaneRows = Callable[[int, int, int], np.ndarray]
"""``rows(plane, y0, y1)``: rows ``y0 .. y1 - 1`` of a plane of the beam, ``(y1 - y0, nx)``."""


@dataclass(frozen=True)
class PrimaryBeam:
    """The Stokes I power pattern of one dish of an array.

    Attributes
    ----------
    telescope : str
        ``TELESCOPE_NAME`` of the Measurement Set ("" when absent).
    model : str
        A katbeam model (``MKAT-AA-L-JIM-2020``, ``MKAT-AA-UHF-JIM-2020``) or :data:`AIRY`.
    dish_diameter_m : float
        Dish diameter, metres (that of the Airy pattern; recorded for katbeam).
    """

    telescope: str
    model: str
    dish_diameter_m: float

    def power(self, l: np.ndarray, m: np.ndarray, freq_hz: float) -> np.ndarray:  # noqa: E741
        """The beam at direction cosines ``(l, m)`` from the pointing centre.

        Parameters
        ----------
        l, m : numpy.ndarray
            Direction cosines (east, north), same shape; ``l^2 + m^2 < 1`` on the sky.
        freq_hz : float
            Frequency, Hz.

        Returns
        -------
        numpy.ndarray
            float64 power pattern, 1 at the pointing centre, same shape as ``l``.
        """
        sin_theta = np.minimum(np.hypot(l, m), 1.0)
        if self.model == AIRY:
            from scipy.special import j1  # the Bessel function; scipy loads only here

            x = np.pi * self.dish_diameter_m * freq_hz / SPEED_OF_LIGHT_M_S * sin_theta
            safe = np.where(x > 0, x, 1.0)
            return np.where(x > 0, (2 * j1(safe) / safe) ** 2, 1.0)
        beam = _jim_beam(self.model)
        table_mhz = beam.freqMHzlist
        freq_mhz = freq_hz / 1e6
        model_mhz = float(np.clip(freq_mhz, table_mhz[0], table_mhz[-1]))
        scale = freq_mhz / model_mhz  # beyond the table: the edge's pattern, as 1 / freq
        theta_deg = np.degrees(np.arcsin(sin_theta))
        per_sin = np.divide(theta_deg, sin_theta, out=np.full_like(theta_deg, 180 / np.pi),
                            where=sin_theta > 0)  # fmt: skip
        return beam.I(l * per_sin * scale, m * per_sin * scale, model_mhz)

    def describe(self) -> str:
        """One line naming the model, for the log and the FITS ``HISTORY``."""
        where = f"{self.telescope or 'unnamed telescope'}, {self.dish_diameter_m:g} m dishes"
        if self.model == AIRY:
            return f"Airy pattern of a uniformly illuminated dish ({where})"
        return f"katbeam {version('katbeam')} JimBeam {self.model} Stokes I ({where})"


def primary_beam_of(
    telescope: str, dish_diameter_m: np.ndarray, freq_hz: np.ndarray, source: str = "the MS"
) -> PrimaryBeam:
    """The beam model of an array: katbeam for MeerKAT, otherwise the Airy pattern.

    Parameters
    ----------
    telescope : str
        ``TELESCOPE_NAME``.
    dish_diameter_m : numpy.ndarray
        ``(nant,)`` ``DISH_DIAMETER`` of the ANTENNA table, metres.
    freq_hz : numpy.ndarray
        ``(nchan,)`` channel frequencies of the image, Hz: MeerKAT's band is chosen by
        their centre.
    source : str
        The Measurement Set, named in errors.

    Returns
    -------
    PrimaryBeam

    Raises
    ------
    InputError
        If the array needs the Airy pattern and no antenna has a positive diameter.
    """
    positive = np.asarray(dish_diameter_m, dtype=np.float64)
    positive = positive[np.isfinite(positive) & (positive > 0)]
    diameter = float(np.median(positive)) if positive.size else 0.0
    if telescope.strip().upper().startswith("MEERKAT"):
        centre_hz = (float(np.min(freq_hz)) + float(np.max(freq_hz))) / 2
        model = _KATBEAM_L if centre_hz >= _L_TABLE_START_HZ else _KATBEAM_UHF
        return PrimaryBeam(telescope, model, diameter or 13.5)
    if not positive.size:
        raise InputError(
            f"--apply-primary-beam: no beam model for telescope {telescope!r} and no positive "
            f"DISH_DIAMETER in the ANTENNA table of {source} to make an Airy pattern from"
        )
    if np.ptp(positive) > 0:
        log.warning(
            "dish diameters %g-%g m in %s: the primary beam is the Airy pattern of their "
            "median, %g m",
            positive.min(), positive.max(), source, diameter,
        )  # fmt: skip
    return PrimaryBeam(telescope, AIRY, diameter)


def load_primary_beam(ms: Path, wcs: ImageWCS) -> PrimaryBeam:
    """:func:`primary_beam_of` the Measurement Set's dishes at the image's frequencies.

    Raises
    ------
    InputError
        As :func:`primary_beam_of`.
    """
    _, dish_diameter_m = read_antennas(Path(ms))
    return primary_beam_of(wcs.telescope or "", dish_diameter_m, wcs.freq_hz, str(ms))


def beam_rows(beam: PrimaryBeam, wcs: ImageWCS, weights: np.ndarray) -> PlaneRows:
    """Rows of beam planes, each a weighted sum of the channels' beams.

    Parameters
    ----------
    beam : PrimaryBeam
        The model.
    wcs : ImageWCS
        The image's geometry and its channels' frequencies.
    weights : numpy.ndarray
        ``(nplane, nchan)``: the identity for the cube, the MFS weights (one row) for its
        MFS plane.

    Returns
    -------
    PlaneRows
        ``rows(plane, y0, y1)``, float32 ``(y1 - y0, npix_x)``.
    """

    def rows(plane: int, y0: int, y1: int) -> np.ndarray:
        l = -(np.arange(wcs.npix_x) - wcs.npix_x / 2) * wcs.cell_rad  # noqa: E741  (nx,)
        m = (np.arange(y0, y1) - wcs.npix_y / 2) * wcs.cell_rad  # (rows,)
        l_grid, m_grid = np.broadcast_arrays(l[None, :], m[:, None])  # (rows, nx)
        out = np.zeros(l_grid.shape)  # (rows, nx) float64
        for c in np.flatnonzero(weights[plane]):
            out += weights[plane, c] * beam.power(l_grid, m_grid, float(wcs.freq_hz[c]))
        return out.astype(np.float32)

    return rows


def corrected_bands(
    bands: Iterator[np.ndarray], rows: PlaneRows, npix_y: int, limit: float
) -> Iterator[np.ndarray]:
    """``bands / pb`` where ``pb >= limit``, NaN elsewhere.

    Parameters
    ----------
    bands : iterator of numpy.ndarray
        ``(rows, nx)`` bands of an image in FITS order, each within one plane.
    rows : PlaneRows
        The beam (:func:`beam_rows`), one plane per plane of the image.
    npix_y : int
        Rows per plane.
    limit : float
        The lowest beam value corrected (``--primary-beam-limit``).

    Yields
    ------
    numpy.ndarray
        ``(rows, nx)`` float32 corrected bands.
    """
    row = 0
    for band in bands:
        plane, y0 = divmod(row, npix_y)
        pb = rows(plane, y0, y0 + band.shape[0])  # (rows, nx)
        out = np.full(band.shape, np.nan, dtype=np.float32)
        np.divide(band, pb, out=out, where=pb >= limit)
        row += band.shape[0]
        yield out


@lru_cache(maxsize=2)
def _jim_beam(model: str) -> JimBeam:
    """katbeam's model, its table parsed once per process."""
    return JimBeam(model)
