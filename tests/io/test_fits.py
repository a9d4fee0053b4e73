"""Tests of skarim.io.fits: FITS cubes read back by astropy and by casacore.

casacore's Python binding lists axes in numpy order: ``image.shape()`` and ``getdata()`` are
``[stokes, freq, y, x]``, as astropy's ``hdu.data``; world coordinates come back as
``[stokes, freq_hz, dec_rad, ra_rad]`` and the direction coordinate's reference value and
increment as ``[dec, ra]`` in radians.
"""

from __future__ import annotations

import math
import tracemalloc
from datetime import UTC, datetime, timedelta

import casacore.images as cim
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

import skarim
from skarim.beam import Beam
from skarim.errors import InputError
from skarim.io.fits import read_cube, write_cube
from skarim.io.wcs import ImageWCS

NX, NY, NCHAN = 32, 24, 3
CELL_RAD = math.radians(2.0 / 3600)
BEAM = Beam(major_deg=12.0 / 3600, minor_deg=7.5 / 3600, pa_deg=-35.0)
CHANNEL_BEAMS = [
    Beam(14.0 / 3600, 9.0 / 3600, 10.0),
    Beam(12.0 / 3600, 8.0 / 3600, 20.0),
    Beam(10.0 / 3600, 7.0 / 3600, -30.0),
]


@pytest.fixture
def wcs() -> ImageWCS:
    return ImageWCS(
        npix_x=NX,
        npix_y=NY,
        cell_rad=CELL_RAD,
        ra_rad=math.radians(150.0),
        dec_rad=math.radians(-30.0),
        freq_hz=np.array([9.0e8, 9.5e8, 1.0e9]),
        chan_width_hz=np.full(NCHAN, 5.0e7),
        telescope="MeerKAT",
        date_obs="2024-05-01T12:00:00",
    )


@pytest.fixture
def cube() -> np.ndarray:
    return np.random.default_rng(7).standard_normal((NCHAN, NY, NX))  # (nchan, ny, nx)


def temp_files(directory) -> list:
    return sorted(p.name for p in directory.iterdir() if ".tmp-" in p.name)


def test_round_trip_through_astropy(tmp_path, wcs, cube):
    history = ["skarim dirty image", "x" * 150]
    path = write_cube(
        tmp_path / "dirty.fits", cube, wcs, bunit="JY/BEAM", beam=BEAM, history=history
    )
    assert path == tmp_path / "dirty.fits"
    with fits.open(path) as hdul:
        assert len(hdul) == 1
        assert hdul[0].data.shape == (1, NCHAN, NY, NX)
        h = hdul[0].header
    assert h["BITPIX"] == -32
    assert [h[f"NAXIS{i}"] for i in range(1, 5)] == [NX, NY, NCHAN, 1]
    assert (h["BUNIT"], h["BTYPE"]) == ("JY/BEAM", "Intensity")
    assert h["ORIGIN"] == f"skarim {skarim.__version__}"
    written = datetime.fromisoformat(h["DATE"]).replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - written) < timedelta(minutes=5)
    # FITS cards hold about 16 significant digits
    assert h["BMAJ"] == pytest.approx(BEAM.major_deg, rel=1e-15)
    assert h["BMIN"] == pytest.approx(BEAM.minor_deg, rel=1e-15)
    assert h["BPA"] == -35.0
    assert "CASAMBM" not in h
    assert "".join(h["HISTORY"]) == "skarim dirty image" + "x" * 150
    assert h["CDELT1"] == pytest.approx(-math.degrees(CELL_RAD), rel=1e-15)

    data, header = read_cube(path)
    assert data.dtype == np.float32 and data.dtype.isnative
    np.testing.assert_array_equal(data, cube.astype(np.float32))
    assert header["CRVAL3"] == 9.0e8
    assert temp_files(tmp_path) == []


def test_casacore_reads_data_axes_and_coordinates(tmp_path, wcs, cube):
    path = write_cube(tmp_path / "restored.fits", cube, wcs, bunit="JY/BEAM", beam=BEAM)
    im = cim.image(str(path))
    assert im.shape() == [1, NCHAN, NY, NX]  # numpy order [stokes, freq, y, x]
    np.testing.assert_array_equal(im.getdata(), cube.astype(np.float32)[np.newaxis])
    assert im.unit() == "Jy/beam"

    coords = im.coordinates()
    assert coords.get_names() == ["spectral", "stokes", "direction"]
    direction = coords.get_coordinate("direction")
    assert direction.get_frame() == "J2000"
    assert direction.get_projection() == "SIN"
    np.testing.assert_allclose(
        direction.get_referencevalue(), [wcs.dec_rad, wcs.ra_rad], rtol=1e-14
    )
    np.testing.assert_allclose(direction.get_increment(), [CELL_RAD, -CELL_RAD], rtol=1e-13)
    np.testing.assert_array_equal(direction.get_referencepixel(), [NY / 2, NX / 2])
    spectral = coords.get_coordinate("spectral")
    assert spectral.get_referencevalue() == 9.0e8
    assert spectral.get_increment() == pytest.approx(5.0e7)
    assert spectral.get_frame() == "TOPO"
    assert coords.get_coordinate("stokes").get_stokes() == ["I"]
    assert coords.dict()["telescope"] == "MeerKAT"
    assert coords.dict()["obsdate"]["m0"]["value"] == pytest.approx(60431.5)

    beam = im.imageinfo()["restoringbeam"]
    assert beam["major"] == {"value": pytest.approx(12.0), "unit": "arcsec"}
    assert beam["minor"] == {"value": pytest.approx(7.5), "unit": "arcsec"}
    assert beam["positionangle"] == {"value": pytest.approx(-35.0), "unit": "deg"}


@pytest.mark.parametrize(("x", "y", "chan"), [(16, 12, 0), (0, 0, 1), (31, 5, 2), (3, 23, 2)])
def test_astropy_and_casacore_agree_on_world_coordinates(tmp_path, wcs, cube, x, y, chan):
    path = write_cube(tmp_path / "residual.fits", cube, wcs, bunit="JY/BEAM")
    ra_deg, dec_deg, freq_hz, stokes = WCS(fits.getheader(path)).all_pix2world(x, y, chan, 0, 0)
    stokes_cc, freq_cc, dec_cc, ra_cc = cim.image(str(path)).toworld([0, chan, y, x])
    assert math.remainder(ra_cc - math.radians(float(ra_deg)), 2 * math.pi) == pytest.approx(
        0.0, abs=1e-12
    )
    assert dec_cc == pytest.approx(math.radians(float(dec_deg)), abs=1e-12)
    assert freq_cc == pytest.approx(float(freq_hz), rel=1e-15) == wcs.freq_hz[chan]
    assert stokes_cc == float(stokes) == 1.0


def test_model_unit_reaches_casacore(tmp_path, wcs, cube):
    path = write_cube(tmp_path / "model.fits", cube, wcs, bunit="JY/PIXEL")
    im = cim.image(str(path))
    assert im.unit() == "Jy/pixel"
    assert "restoringbeam" not in im.imageinfo()


def test_channel_beams_table_read_by_casacore(tmp_path, wcs, cube):
    path = write_cube(
        tmp_path / "cube.fits", cube, wcs, bunit="JY/BEAM", beam=BEAM, channel_beams=CHANNEL_BEAMS
    )
    with fits.open(path) as hdul:
        assert hdul[0].header["CASAMBM"] is True
        assert hdul[0].header["BMAJ"] == pytest.approx(BEAM.major_deg, rel=1e-15)
        table = hdul["BEAMS"]
        assert (table.header["NCHAN"], table.header["NPOL"], table.header["EXTVER"]) == (3, 1, 1)
        assert table.columns.names == ["BMAJ", "BMIN", "BPA", "CHAN", "POL"]
        assert table.columns.units[:3] == ["arcsec", "arcsec", "deg"]
        np.testing.assert_allclose(table.data["BMAJ"], [14.0, 12.0, 10.0], rtol=1e-7)
        np.testing.assert_allclose(table.data["BMIN"], [9.0, 8.0, 7.0], rtol=1e-7)
        np.testing.assert_allclose(table.data["BPA"], [10.0, 20.0, -30.0], rtol=1e-7)
        assert table.data["CHAN"].tolist() == [0, 1, 2]
        assert table.data["POL"].tolist() == [0, 0, 0]
        assert table.data["CHAN"].dtype.kind == "i" and table.data["CHAN"].dtype.itemsize == 4

    # casacore takes the per-plane beams (they win over BMAJ/BMIN/BPA)
    info = cim.image(str(path)).imageinfo()
    assert "restoringbeam" not in info
    planes = info["perplanebeams"]
    assert (planes["nChannels"], planes["nStokes"]) == (NCHAN, 1)
    for chan, beam in enumerate(CHANNEL_BEAMS):
        got = planes[f"*{chan}"]
        assert got["major"]["value"] == pytest.approx(beam.major_deg * 3600, rel=1e-6)
        assert got["minor"]["value"] == pytest.approx(beam.minor_deg * 3600, rel=1e-6)
        assert got["positionangle"]["value"] == pytest.approx(beam.pa_deg, rel=1e-6)
        assert (got["major"]["unit"], got["positionangle"]["unit"]) == ("arcsec", "deg")


def test_overwrite_replaces_the_file_instead_of_truncating_it(tmp_path, wcs, cube):
    path = tmp_path / "dirty.fits"
    write_cube(path, cube, wcs, bunit="JY/BEAM")
    with open(path, "rb") as old:
        old_bytes = old.read()
        old.seek(0)
        write_cube(path, 2 * cube, wcs, bunit="JY/BEAM")
        assert old.read() == old_bytes  # the open handle still sees the old, whole file
    np.testing.assert_array_equal(read_cube(path)[0], (2 * cube).astype(np.float32))
    assert temp_files(tmp_path) == []


def test_failed_rename_leaves_no_temporary_file(tmp_path, wcs, cube):
    blocker = tmp_path / "dirty.fits"  # a non-empty directory cannot be renamed over
    blocker.mkdir()
    (blocker / "keep.txt").write_text("precious")
    with pytest.raises(InputError, match="cannot write FITS file"):
        write_cube(blocker, cube, wcs, bunit="JY/BEAM")
    assert (blocker / "keep.txt").read_text() == "precious"
    assert temp_files(tmp_path) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bunit": "JY/BEAM", "channel_beams": CHANNEL_BEAMS[:2]}, "2 channel beams for 3"),
        ({"bunit": "Jy"}, "bunit 'Jy' is not one of JY/BEAM, JY/PIXEL"),
        ({"bunit": "JY/BEAM", "history": ["r\u00e9sidu"]}, "history line cannot go"),
    ],
)
def test_rejected_write_leaves_existing_file_untouched(tmp_path, wcs, cube, kwargs, match):
    path = write_cube(tmp_path / "dirty.fits", cube, wcs, bunit="JY/BEAM")
    before = path.read_bytes()
    with pytest.raises(InputError, match=match):
        write_cube(path, 3 * cube, wcs, **kwargs)
    assert path.read_bytes() == before
    assert temp_files(tmp_path) == []


def test_rejects_data_of_the_wrong_shape_or_type(tmp_path, wcs, cube):
    with pytest.raises(InputError, match=r"shape \(3, 32, 24\), the WCS needs \(3, 24, 32\)"):
        write_cube(tmp_path / "t.fits", cube.transpose(0, 2, 1), wcs, bunit="JY/BEAM")
    with pytest.raises(InputError, match="cannot be converted to float32"):
        write_cube(tmp_path / "o.fits", np.full((NCHAN, NY, NX), "a"), wcs, bunit="JY/BEAM")
    assert list(tmp_path.iterdir()) == []


def test_read_cube_rejects_a_plain_image(tmp_path):
    path = tmp_path / "plain.fits"
    fits.PrimaryHDU(np.zeros((4, 4), np.float32)).writeto(path)
    with pytest.raises(InputError, match=r"expected a \(1, nchan, ny, nx\) cube"):
        read_cube(path)


def _blocks(cube: np.ndarray, rows: int):
    """The cube's rows in FITS order, ``rows`` at a time (a block may span two channels)."""
    flat = cube.reshape(-1, cube.shape[-1])  # (nchan * ny, nx)
    for start in range(0, len(flat), rows):
        yield flat[start : start + rows]


@pytest.mark.parametrize("channel_beams", [CHANNEL_BEAMS, None])
def test_streamed_blocks_are_the_file_astropy_writes_for_the_whole_cube(
    tmp_path, wcs, cube, channel_beams
):
    # 5-row blocks cross the channel boundaries (NY = 24 rows per channel)
    path = write_cube(
        tmp_path / "image.fits",
        _blocks(cube, 5),
        wcs,
        bunit="JY/BEAM",
        beam=BEAM,
        channel_beams=channel_beams,
        history=["streamed"],
    )
    with fits.open(path) as hdul:  # astropy rewrites what it reads, the data held whole
        hdul.writeto(tmp_path / "rewritten.fits")
        header = hdul[0].header
        np.testing.assert_array_equal(hdul[0].data, cube.astype(np.float32)[np.newaxis])
        assert len(hdul) == (1 if channel_beams is None else 2)
    assert (tmp_path / "rewritten.fits").read_bytes() == path.read_bytes()
    assert [header[f"NAXIS{i}"] for i in range(1, 5)] == [NX, NY, NCHAN, 1]
    assert header.get("EXTEND") is (None if channel_beams is None else True)
    im = cim.image(str(path))
    np.testing.assert_array_equal(im.getdata(), cube.astype(np.float32)[np.newaxis])
    if channel_beams is not None:
        assert im.imageinfo()["perplanebeams"]["nChannels"] == NCHAN
    assert temp_files(tmp_path) == []


@pytest.mark.parametrize(
    ("rows", "cut", "match"),
    [
        (8, 1, r"71 rows were given, the cube needs 72"),
        (8, -1, r"more than the cube's 72 rows"),
        (8, 0, r"a block of shape \(8, 31\); the cube's rows: 32 wide"),
    ],
)
def test_wrong_blocks_leave_the_existing_file_untouched(tmp_path, wcs, cube, rows, cut, match):
    path = write_cube(tmp_path / "dirty.fits", cube, wcs, bunit="JY/BEAM")
    before = path.read_bytes()
    flat = cube.reshape(-1, NX)
    if cut > 0:  # one row short
        blocks = _blocks(flat[:-cut][np.newaxis], rows)
    elif cut < 0:  # one row too many
        blocks = _blocks(np.concatenate([flat, flat[:1]])[np.newaxis], rows)
    else:  # one column short
        blocks = _blocks(flat[np.newaxis, :, :-1], rows)
    with pytest.raises(InputError, match=match):
        write_cube(path, blocks, wcs, bunit="JY/BEAM")
    assert path.read_bytes() == before
    assert temp_files(tmp_path) == []


def test_a_failing_source_of_blocks_leaves_no_file(tmp_path, wcs, cube):
    def failing():
        yield from _blocks(cube[:1], 4)
        raise RuntimeError("store unreadable")

    with pytest.raises(RuntimeError, match="store unreadable"):
        write_cube(tmp_path / "dirty.fits", failing(), wcs, bunit="JY/BEAM")
    assert list(tmp_path.iterdir()) == []


def _streaming_peak(tmp_path, nchan: int, ny: int, rows: int) -> int:
    """Peak of traced allocations while writing ``nchan`` planes made one block at a time."""
    wcs = ImageWCS(
        npix_x=256, npix_y=ny, cell_rad=CELL_RAD, ra_rad=1.0, dec_rad=-0.5,
        freq_hz=np.linspace(1e9, 2e9, nchan), chan_width_hz=np.full(nchan, 1e8),
    )  # fmt: skip
    blocks = (np.full((rows, 256), k, dtype=np.float32) for k in range(nchan * ny // rows))
    tracemalloc.start()
    try:
        write_cube(tmp_path / f"c{nchan}x{ny}.fits", blocks, wcs, bunit="JY/BEAM")
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_streaming_holds_one_block_whatever_the_cube(tmp_path):
    # 2 x 64 rows against 8 x 512 rows: the cube is 32 times larger, the block the same
    small = _streaming_peak(tmp_path, nchan=2, ny=64, rows=32)
    large = _streaming_peak(tmp_path, nchan=8, ny=512, rows=32)
    block = 32 * 256 * 4  # bytes of one float32 block
    assert large < 1.3 * small
    assert large < 8 * block  # the block, its big-endian copy and Astropy's header
