"""FITS cubes with Astropy: one file per product, written atomically.

A cube is written with FITS axes ``RA---SIN, DEC--SIN, FREQ, STOKES`` (numpy order
``[stokes, freq, y, x]``, see :mod:`skarim.io.wcs`), as float32. A restoring beam goes into
``BMAJ/BMIN/BPA`` (degrees); per-channel beams go into a CASA-style ``BEAMS`` binary table
extension, as CASA's ``exportfits`` writes it (casacore's ``ImageFITSConverter``):

- columns ``BMAJ``, ``BMIN`` (float32, arcsec), ``BPA`` (float32, deg), ``CHAN``, ``POL``
  (int32, 0-based), one row per (channel, polarisation), channel fastest;
- table keywords ``EXTNAME = 'BEAMS'``, ``EXTVER = 1``, ``NCHAN``, ``NPOL``;
- ``CASAMBM = T`` in the primary header.

casacore (``casacore.images.image``) reads that table into the image's per-plane beams,
which take precedence over ``BMAJ/BMIN/BPA``; CARTA reads it too; DS9 reads only the
primary-header beam, so writing both is allowed.

Every file is written to a temporary name beside its destination, flushed to disk and renamed
into place (:func:`skarim.io.atomic.atomic_path`), so a reader never sees a half-written file
and a failed write leaves the previous file intact.

The pixels are streamed (:func:`write_cube`): the header is made and checked by Astropy from
the cube's shape alone (no pixel in memory), then blocks of whole rows are appended in FITS
order (channel after channel, rows from ``y = 0`` up) through
:class:`astropy.io.fits.StreamingHDU`, and the ``BEAMS`` table last. Memory follows the largest
block, never the cube; an array held whole is written one plane per block.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from astropy.io import fits

from skarim import __version__
from skarim.beam import Beam
from skarim.errors import InputError
from skarim.io.atomic import atomic_path
from skarim.io.wcs import ImageWCS

__all__ = ["BUNITS", "write_cube", "read_cube"]

BUNITS = ("JY/BEAM", "JY/PIXEL", "")
"""Brightness units of skarim's products: dirty, residual, restored, PSF; model; primary beam
(dimensionless, ``BUNIT = ''``)."""

_ARCSEC_PER_DEG = 3600.0


def write_cube(
    path: Path,
    data: np.ndarray | Iterable[np.ndarray],
    wcs: ImageWCS,
    *,
    bunit: str,
    beam: Beam | None = None,
    channel_beams: Sequence[Beam] | None = None,
    btype: str = "Intensity",
    history: Sequence[str] = (),
) -> Path:
    """Write an image cube to a FITS file, atomically, from an array or from blocks of rows.

    Parameters
    ----------
    path : pathlib.Path
        Destination; an existing file there is replaced (renamed over, never truncated).
    data : numpy.ndarray or iterable of numpy.ndarray
        The ``(nchan, ny, nx)`` image in FITS pixel order, ``ny = wcs.npix_y``,
        ``nx = wcs.npix_x``; or, streamed, ``(rows, nx)`` blocks of whole rows in that order
        (channel 0's rows from ``y = 0`` up, then channel 1's...; ``nchan * ny`` rows in all; a
        block may span two channels), consumed one at a time. Written as float32, the file's
        array of shape ``(1, nchan, ny, nx)``.
    wcs : ImageWCS
        Coordinates of the cube.
    bunit : str
        Brightness unit, one of :data:`BUNITS`.
    beam : Beam, optional
        Restoring beam, written as ``BMAJ/BMIN/BPA`` in degrees.
    channel_beams : sequence of Beam, optional
        One beam per channel, written as a CASA ``BEAMS`` table with ``CASAMBM = T``.
    btype : str
        ``BTYPE`` card, e.g. ``"Intensity"``.
    history : sequence of str
        ``HISTORY`` lines (printable ASCII; long lines are continued on further cards).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    InputError
        If the data, unit, beams or history do not fit the cube, or the file cannot be
        written (the previous file, if any, is then left as it was, and no temporary file).
    """
    path = Path(path)
    header, table = _cube_header(
        wcs, bunit=bunit, beam=beam, channel_beams=channel_beams, btype=btype, history=history
    )
    if isinstance(data, np.ndarray):
        cube = _as_float32(data)  # (nchan, ny, nx), checked before any file is touched
        expected = (wcs.nchan, wcs.npix_y, wcs.npix_x)
        if cube.shape != expected:
            raise InputError(f"image data has shape {cube.shape}, the WCS needs {expected}")
        data = iter(cube)  # one (ny, nx) plane per block
    with atomic_path(path, "FITS file") as tmp:
        _stream_rows(tmp, header, data, rows=wcs.nchan * wcs.npix_y, width=wcs.npix_x)
        if table is not None:
            with fits.open(tmp, mode="append") as hdus:
                hdus.append(table)
    return path


def read_cube(path: Path) -> tuple[np.ndarray, fits.Header]:
    """Read a cube written by :func:`write_cube`.

    Parameters
    ----------
    path : pathlib.Path
        FITS file with a 4-D primary array of one Stokes plane.

    Returns
    -------
    data : numpy.ndarray
        ``(nchan, ny, nx)`` float32 in native byte order.
    header : astropy.io.fits.Header
        The primary header.

    Raises
    ------
    InputError
        If the primary array is not ``(1, nchan, ny, nx)``.
    """
    with fits.open(path, memmap=False) as hdul:
        header = hdul[0].header.copy()
        raw = hdul[0].data
        if raw is None or raw.ndim != 4 or raw.shape[0] != 1:
            shape = None if raw is None else raw.shape
            raise InputError(f"{path}: expected a (1, nchan, ny, nx) cube, found {shape}")
        data = np.asarray(raw[0], dtype=np.float32)  # (nchan, ny, nx)
    return data, header


def _cube_header(
    wcs: ImageWCS,
    *,
    bunit: str,
    beam: Beam | None,
    channel_beams: Sequence[Beam] | None,
    btype: str,
    history: Sequence[str],
) -> tuple[fits.Header, fits.BinTableHDU | None]:
    """Check the inputs and make the primary header and ``BEAMS`` table, touching no file.

    Astropy makes and verifies the header from a zero-stride stand-in of the cube's shape,
    so the cards (``SIMPLE``, ``BITPIX``, ``NAXISn``, ``EXTEND`` before a table) are those
    it writes for the whole array, and no pixel is allocated.
    """
    if bunit not in BUNITS:
        units = ", ".join(u or "''" for u in BUNITS)
        raise InputError(f"bunit {bunit!r} is not one of {units}")
    if channel_beams is not None and len(channel_beams) != wcs.nchan:
        raise InputError(f"{len(channel_beams)} channel beams for {wcs.nchan} channels")

    header = wcs.header()
    header["BUNIT"] = (bunit, "brightness unit")
    header["BTYPE"] = btype
    if beam is not None:
        header["BMAJ"] = (beam.major_deg, "restoring beam major axis FWHM (deg)")
        header["BMIN"] = (beam.minor_deg, "restoring beam minor axis FWHM (deg)")
        header["BPA"] = (beam.pa_deg, "beam position angle, east of north (deg)")
    if channel_beams is not None:
        header["CASAMBM"] = (True, "CASA multiple BEAMS table present")
    header["ORIGIN"] = f"skarim {__version__}"
    header["DATE"] = (datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "file written (UTC)")
    try:
        for line in history:
            header.add_history(line)
    except ValueError as exc:
        raise InputError(f"history line cannot go into a FITS header: {exc}") from exc

    shape = (1, wcs.nchan, wcs.npix_y, wcs.npix_x)  # numpy order of the FITS array
    primary = fits.PrimaryHDU(np.broadcast_to(np.float32(0), shape), header=header)
    table = None if channel_beams is None else _beams_table(channel_beams)
    hdus = fits.HDUList([primary] if table is None else [primary, table])
    hdus.update_extend()
    hdus.verify("exception")
    return primary.header, table


def _stream_rows(
    tmp: Path, header: fits.Header, bands: Iterable[np.ndarray], *, rows: int, width: int
) -> None:
    """Write the primary HDU to a new file ``tmp``: its header, then ``rows`` rows of pixels."""
    done = 0
    stream = fits.StreamingHDU(tmp, header)
    try:
        for band in bands:
            block = _as_float32(band)  # (k, width)
            if block.ndim != 2 or block.shape[1] != width:
                raise InputError(f"a block of shape {block.shape}; the cube's rows: {width} wide")
            if done + block.shape[0] > rows:
                raise InputError(f"more than the cube's {rows} rows (nchan x ny) were given")
            if block.shape[0]:
                stream.write(np.ascontiguousarray(block))
            done += block.shape[0]
    finally:
        stream.close()
    if done != rows:
        raise InputError(f"{done} rows were given, the cube needs {rows} (nchan x ny)")


def _as_float32(data: np.ndarray) -> np.ndarray:
    try:
        return np.asarray(data, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InputError(f"image data cannot be converted to float32: {exc}") from exc


def _beams_table(channel_beams: Sequence[Beam]) -> fits.BinTableHDU:
    """CASA's per-plane beam table for one polarisation: arcsec, deg, 0-based indices."""
    nchan = len(channel_beams)
    columns = [
        fits.Column(
            name="BMAJ",
            format="1E",
            unit="arcsec",
            array=np.array([b.major_deg for b in channel_beams]) * _ARCSEC_PER_DEG,
        ),
        fits.Column(
            name="BMIN",
            format="1E",
            unit="arcsec",
            array=np.array([b.minor_deg for b in channel_beams]) * _ARCSEC_PER_DEG,
        ),
        fits.Column(
            name="BPA", format="1E", unit="deg", array=np.array([b.pa_deg for b in channel_beams])
        ),
        fits.Column(name="CHAN", format="1J", array=np.arange(nchan, dtype=np.int32)),
        fits.Column(name="POL", format="1J", array=np.zeros(nchan, dtype=np.int32)),
    ]
    table = fits.BinTableHDU(name="BEAMS")
    # the columns as a FITS_rec: BinTableHDU.from_columns would import astropy.table (0.1 s)
    table.data = fits.FITS_rec.from_columns(columns)
    table.header["EXTVER"] = 1
    table.header["NCHAN"] = (nchan, "number of channels")
    table.header["NPOL"] = (1, "number of polarisations")
    return table
