"""The world coordinates of a skarim image: one object, one FITS header, one astropy WCS.

Conventions (docs/design.md section 1, as in WSClean):

- SIN projection about the phase centre, square pixels of ``cell_rad``; the phase centre sits
  at 0-based pixel ``(npix_x/2, npix_y/2)``, i.e. FITS ``CRPIX = npix/2 + 1``.
- ``CDELT1 = -cell_deg``: RA grows to the left (x grows to the west, with ``-l``);
  ``CDELT2 = +cell_deg``.
- FITS axes ``RA---SIN, DEC--SIN, FREQ, STOKES`` (numpy order ``[stokes, freq, y, x]``); the
  frequency axis has ``CRPIX3 = 1``, ``CRVAL3`` the first channel's centre and ``CDELT3`` the
  channel spacing when the channels are evenly spaced (otherwise the first channel's width,
  an approximation recorded in a ``COMMENT`` card); one Stokes plane, I (``CRVAL4 = 1``).
- Celestial frame FK5, equinox J2000.0: the frame of a Measurement Set's ``PHASE_DIR``
  in practice, written as CASA's ``exportfits`` writes it; casacore reads it as J2000, DS9
  and astropy as FK5 J2000 (ICRS differs by about 20 mas).
- Spectral frame ``TOPOCENT``: channel frequencies are taken as they are in the
  Measurement Set, without a Doppler correction.
- The horizon: FITS pixel ``(x, y)`` has direction cosines ``l = -(x - npix_x/2) cell``,
  ``m = (y - npix_y/2) cell``; where ``l^2 + m^2 >= 1`` the SIN projection has no sky
  (astropy's WCS gives NaN there). :func:`beyond_horizon` finds those pixels: skarim's
  images hold 0 there and its FITS products NaN, as CASA writes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.io import fits
from astropy.time import Time

from skarim.errors import InputError

if TYPE_CHECKING:
    from astropy.wcs import WCS

__all__ = ["ImageWCS", "beyond_horizon", "horizon_npix"]

_RELATIVE_SPACING_TOLERANCE = 1e-6  # channels count as evenly spaced within this fraction


@dataclass(frozen=True, eq=False)
class ImageWCS:
    """Geometry and spectral axis of an image cube.

    Attributes
    ----------
    npix_x, npix_y : int
        Image size in pixels (positive and even).
    cell_rad : float
        Pixel size, radians (positive; square pixels).
    ra_rad, dec_rad : float
        Phase centre (FK5 J2000), radians.
    freq_hz : numpy.ndarray
        ``(nchan,)`` channel centres in Hz; for an output channel made of several input
        channels, the mean frequency of the group. Stored as a read-only float64 copy.
    chan_width_hz : numpy.ndarray
        ``(nchan,)`` channel widths in Hz, read-only float64 copy.
    telescope : str or None
        ``TELESCOP`` card, e.g. ``"MeerKAT"``.
    date_obs : str or None
        Start of the observation, an ISO UTC date-time (``"2024-05-01T12:00:00.000"``).
    """

    npix_x: int
    npix_y: int
    cell_rad: float
    ra_rad: float
    dec_rad: float
    freq_hz: np.ndarray = field(repr=False)
    chan_width_hz: np.ndarray = field(repr=False)
    telescope: str | None = None
    date_obs: str | None = None

    def __post_init__(self) -> None:
        for name in ("npix_x", "npix_y"):
            n = getattr(self, name)
            if int(n) != n or n <= 0 or n % 2:
                raise InputError(f"{name} must be a positive even integer, got {n!r}")
            object.__setattr__(self, name, int(n))
        for name in ("cell_rad", "ra_rad", "dec_rad"):
            value = float(getattr(self, name))
            if not math.isfinite(value):
                raise InputError(f"{name} must be finite, got {value!r}")
            object.__setattr__(self, name, value)
        if self.cell_rad <= 0:
            raise InputError(f"cell_rad must be positive, got {self.cell_rad!r}")
        if abs(self.dec_rad) > math.pi / 2:
            raise InputError(f"dec_rad must lie in [-pi/2, pi/2], got {self.dec_rad!r}")
        freq_hz = np.array(self.freq_hz, dtype=np.float64).reshape(-1)  # (nchan,)
        width_hz = np.array(self.chan_width_hz, dtype=np.float64).reshape(-1)  # (nchan,)
        if freq_hz.size == 0 or not np.all(np.isfinite(freq_hz)) or np.any(freq_hz <= 0):
            raise InputError("freq_hz must hold at least one positive, finite frequency")
        if width_hz.shape != freq_hz.shape:
            raise InputError(
                f"chan_width_hz has {width_hz.size} values for {freq_hz.size} channels"
            )
        if not np.all(np.isfinite(width_hz)) or np.any(width_hz == 0):
            raise InputError("chan_width_hz must be finite and non-zero")
        freq_hz.flags.writeable = False
        width_hz.flags.writeable = False
        object.__setattr__(self, "freq_hz", freq_hz)
        object.__setattr__(self, "chan_width_hz", width_hz)
        if self.date_obs is not None:
            try:
                Time(self.date_obs, scale="utc")
            except ValueError as exc:
                raise InputError(f"date_obs {self.date_obs!r} is not an ISO date") from exc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ImageWCS):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(
            tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in self.to_dict().items())
        )

    @property
    def nchan(self) -> int:
        """Number of channels."""
        return int(self.freq_hz.size)

    @property
    def cell_deg(self) -> float:
        """Pixel size, degrees."""
        return math.degrees(self.cell_rad)

    def evenly_spaced(self) -> bool:
        """Whether ``CRVAL3 + i * CDELT3`` gives every channel centre exactly.

        True for one channel, and for several channels whose spacing is constant and
        non-zero to a relative ``1e-6``.
        """
        if self.nchan == 1:
            return True
        step_hz = np.diff(self.freq_hz)  # (nchan - 1,)
        return bool(
            step_hz[0] != 0
            and np.all(
                np.abs(step_hz - step_hz[0]) <= _RELATIVE_SPACING_TOLERANCE * abs(step_hz[0])
            )
        )

    def freq_step_hz(self) -> float:
        """``CDELT3`` in Hz: the channel spacing, or the first channel's width.

        The spacing when the channels are evenly spaced and more than one; otherwise
        ``chan_width_hz[0]`` (for unevenly spaced channels the frequency axis of the FITS
        header is then an approximation; :attr:`freq_hz` holds the true centres).
        """
        if self.nchan > 1 and self.evenly_spaced():
            return float(self.freq_hz[1] - self.freq_hz[0])
        return float(self.chan_width_hz[0])

    def header(self) -> fits.Header:
        """The 4-D FITS header of the cube: celestial, spectral and Stokes axes.

        Returns
        -------
        astropy.io.fits.Header
            ``NAXIS1 = npix_x`` (``RA---SIN``), ``NAXIS2 = npix_y`` (``DEC--SIN``),
            ``NAXIS3 = nchan`` (``FREQ``), ``NAXIS4 = 1`` (``STOKES``, I), with the frame,
            ``SPECSYS``, and ``TELESCOP``, ``DATE-OBS``/``MJD-OBS``, ``OBSRA``/``OBSDEC``
            where known. Angles in degrees, frequencies in Hz.
        """
        ra_deg = math.degrees(self.ra_rad)
        dec_deg = math.degrees(self.dec_rad)
        h = fits.Header()
        h["NAXIS"] = 4
        h["NAXIS1"] = self.npix_x
        h["NAXIS2"] = self.npix_y
        h["NAXIS3"] = self.nchan
        h["NAXIS4"] = 1
        h["CTYPE1"] = ("RA---SIN", "right ascension, orthographic projection")
        h["CRPIX1"] = (self.npix_x / 2 + 1, "phase centre at 0-based pixel npix_x/2")
        h["CRVAL1"] = (ra_deg, "phase centre RA (deg)")
        h["CDELT1"] = (-self.cell_deg, "RA grows to the left (deg)")
        h["CUNIT1"] = "deg"
        h["CTYPE2"] = ("DEC--SIN", "declination, orthographic projection")
        h["CRPIX2"] = (self.npix_y / 2 + 1, "phase centre at 0-based pixel npix_y/2")
        h["CRVAL2"] = (dec_deg, "phase centre Dec (deg)")
        h["CDELT2"] = (self.cell_deg, "(deg)")
        h["CUNIT2"] = "deg"
        h["CTYPE3"] = "FREQ"
        h["CRPIX3"] = 1.0
        h["CRVAL3"] = (float(self.freq_hz[0]), "centre of the first channel (Hz)")
        h["CDELT3"] = (self.freq_step_hz(), "channel spacing (Hz)")
        h["CUNIT3"] = "Hz"
        h["CTYPE4"] = "STOKES"
        h["CRPIX4"] = 1.0
        h["CRVAL4"] = (1.0, "Stokes I")
        h["CDELT4"] = 1.0
        h["CUNIT4"] = ""
        h["RADESYS"] = "FK5"
        h["EQUINOX"] = 2000.0
        h["SPECSYS"] = ("TOPOCENT", "frequencies as observed, no Doppler correction")
        h["OBSRA"] = (ra_deg, "pointing centre RA (deg)")
        h["OBSDEC"] = (dec_deg, "pointing centre Dec (deg)")
        if self.telescope is not None:
            h["TELESCOP"] = self.telescope
        if self.date_obs is not None:
            start = Time(self.date_obs, scale="utc")
            h["TIMESYS"] = "UTC"
            h["DATE-OBS"] = (start.isot, "start of the observation (UTC)")
            h["MJD-OBS"] = (start.mjd, "start of the observation (MJD, UTC)")
        if not self.evenly_spaced():
            h["COMMENT"] = (
                "Channels are unevenly spaced: CRVAL3 + (i - CRPIX3 + 1) * CDELT3 only "
                "approximates the centre of channel i, and CDELT3 is the first channel's width."
            )
        return h

    def celestial(self) -> WCS:
        """The 2-D celestial WCS (RA, Dec) of the image, from :meth:`header`."""
        from astropy.wcs import WCS  # a third of a second to import; a dirty image needs none

        return WCS(self.header()).celestial

    def pixel_of(self, ra_rad: float, dec_rad: float) -> tuple[float, float]:
        """0-based pixel ``(x, y)`` of a sky position, through :mod:`astropy.wcs`.

        Parameters
        ----------
        ra_rad, dec_rad : float
            Sky position (FK5 J2000), radians.

        Returns
        -------
        tuple of float
            ``(x, y)``: column and row of the FITS-order ``[y, x]`` image.
        """
        x, y = self.celestial().wcs_world2pix(math.degrees(ra_rad), math.degrees(dec_rad), 0)
        return float(x), float(y)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dictionary (plain ``int``, ``float``, ``str``, lists) of every field."""
        return {
            "npix_x": self.npix_x,
            "npix_y": self.npix_y,
            "cell_rad": self.cell_rad,
            "ra_rad": self.ra_rad,
            "dec_rad": self.dec_rad,
            "freq_hz": [float(f) for f in self.freq_hz],
            "chan_width_hz": [float(w) for w in self.chan_width_hz],
            "telescope": self.telescope,
            "date_obs": self.date_obs,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImageWCS:
        """Rebuild from :meth:`to_dict`'s dictionary (e.g. a Zarr store's attributes).

        Raises
        ------
        InputError
            If a field is missing or unknown, or a value is out of range.
        """
        required = {"npix_x", "npix_y", "cell_rad", "ra_rad", "dec_rad", "freq_hz", "chan_width_hz"}
        optional = {"telescope", "date_obs"}
        missing = required - d.keys()
        unknown = d.keys() - required - optional
        if missing or unknown:
            raise InputError(
                f"not an ImageWCS dictionary: missing {sorted(missing)}, unknown {sorted(unknown)}"
            )
        return cls(
            npix_x=d["npix_x"],
            npix_y=d["npix_y"],
            cell_rad=d["cell_rad"],
            ra_rad=d["ra_rad"],
            dec_rad=d["dec_rad"],
            freq_hz=np.asarray(d["freq_hz"], dtype=np.float64),
            chan_width_hz=np.asarray(d["chan_width_hz"], dtype=np.float64),
            telescope=d.get("telescope"),
            date_obs=d.get("date_obs"),
        )


def beyond_horizon(
    npix_x: int, npix_y: int, cell_rad: float, rows: tuple[int, int], cols: tuple[int, int]
) -> np.ndarray | None:
    """The pixels of a block of an image that lie beyond the horizon, ``l^2 + m^2 >= 1``.

    Parameters
    ----------
    npix_x, npix_y : int
        Size of the full image; its phase centre is at 0-based pixel ``(npix_x/2, npix_y/2)``.
    cell_rad : float
        Pixel size, radians.
    rows, cols : tuple of int
        The block: FITS-order rows ``[y0, y1)`` and columns ``[x0, x1)`` of the full image.

    Returns
    -------
    numpy.ndarray or None
        ``(y1 - y0, x1 - x0)`` bool, True beyond the horizon; None when no pixel of the
        block is (found from its corners, without building the mask).

    Examples
    --------
    >>> beyond_horizon(64, 64, 1e-4, (0, 64), (0, 64)) is None
    True
    >>> beyond_horizon(4, 4, 0.6, (0, 4), (0, 4)).astype(int)
    array([[1, 1, 1, 1],
           [1, 0, 0, 0],
           [1, 0, 0, 0],
           [1, 0, 0, 0]])
    """
    (y0, y1), (x0, x1) = rows, cols
    far_x = max(abs(x0 - npix_x / 2), abs(x1 - 1 - npix_x / 2)) * cell_rad  # largest |l|
    far_y = max(abs(y0 - npix_y / 2), abs(y1 - 1 - npix_y / 2)) * cell_rad  # largest |m|
    if far_x * far_x + far_y * far_y < 1.0:
        return None
    l_sq = ((np.arange(x0, x1) - npix_x / 2) * cell_rad) ** 2  # (nx,)
    m_sq = ((np.arange(y0, y1) - npix_y / 2) * cell_rad) ** 2  # (ny,)
    return l_sq[None, :] >= 1.0 - m_sq[:, None]  # (ny, nx) bool, no float temporary


def horizon_npix(cell_rad: float) -> int:
    """The largest even image side whose axes stay inside the horizon: ``n/2 cell < 1``.

    Examples
    --------
    >>> horizon_npix(0.01), horizon_npix(0.0272)
    (198, 72)
    """
    half = int(1.0 / cell_rad)
    return 2 * (half - 1 if half * cell_rad >= 1.0 else half)
