"""The WSClean-format source list (skarim.restore.source_list): written from real run stores on
disk, read back, and WSClean's own list read.

``tests/data/wsclean_sources.txt`` is WSClean 3.1's list of a 4-channel (1.0-1.6 GHz) point
source of spectral index -0.7 (1 Jy at 1.3 GHz, 10 pixels east and 6 north of the phase
centre RA 1.2 rad, Dec -0.5 rad) and a flat 0.5 Jy one, written by tests/msfactory.py
(``random_uvw_m(default_rng(5), 3000, max_m=1500.0, w_frac=0.1)``) and imaged with
``wsclean -size 64 64 -scale 2asec -channels-out 2 -join-channels -fit-spectral-pol 2
-save-source-list -niter 100 -mgain 0.8 -weight natural``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from skarim.config import DeconvConfig
from skarim.errors import InputError
from skarim.io.wcs import ImageWCS
from skarim.restore.products import mfs_wcs, mfs_weights, write_products
from skarim.restore.source_list import read_source_list, write_source_list
from skarim.restore.spectral_index import SpectralChannels

WSCLEAN_LIST = Path(__file__).parents[1] / "data" / "wsclean_sources.txt"
NPIX = 96
FREQ_HZ = np.array([1.0e9, 1.15e9, 1.3e9, 1.45e9, 1.5e9, 1.6e9])
SUMWT = np.array([1.0, 2.0, 1.5, 0.0, 3.0, 2.5])  # channel 3 holds no data
REF_HZ = 1.3e9  # the band's centre: channels 0.05 GHz wide (conftest) from 0.975 to 1.625 GHz
DATA = SUMWT > 0
LINE = re.compile(
    r"s0c\d+,POINT,\d\d:\d\d:\d\d\.\d{3},[+-]\d\d\.\d\d\.\d\d\.\d{3},[^,]+,\[[^\]]*\],false,"
    r"1300000000,,,"
)


def _model(rng: np.random.Generator, spectrum) -> tuple[np.ndarray, np.ndarray]:
    """``(nchan, ny, nx)`` with 40 components of random spectra ``spectrum(coef, t)`` in
    ``t = freq / REF_HZ - 1``, and one pixel non-zero in the channel without data only."""
    model = np.zeros((len(FREQ_HZ), NPIX, NPIX), dtype=np.float32)
    pixels = rng.choice(NPIX * NPIX, size=41, replace=False)
    t = FREQ_HZ / REF_HZ - 1.0
    for p in pixels[:40]:
        model[:, p // NPIX, p % NPIX] = spectrum(rng.uniform(-1.0, 1.0, 3), t)
    model[3, pixels[40] // NPIX, pixels[40] % NPIX] = 1.0  # no data: no component
    return model, np.sort(pixels[:40])


def _line(coef: np.ndarray, t: np.ndarray) -> np.ndarray:
    return coef[0] + coef[1] * t


def _quadratic(coef: np.ndarray, t: np.ndarray) -> np.ndarray:
    return coef[0] + coef[1] * t + coef[2] * t**2


def test_straight_lines_come_back_with_their_fluxes_and_positions(spectral_store):
    # phase centre at RA 0, Dec 0: the image spans RA 23:59:5x to 00:00:0x and Dec -/+ 0
    model, pixels = _model(np.random.default_rng(1), _line)
    store, cfg = spectral_store(model, FREQ_HZ, SUMWT, 0.01, ra_rad=0.0, dec_rad=0.0)
    path = write_products(store, cfg, ("model",))["sources"]
    assert path == Path(f"{cfg.output.name}-sources.txt")
    lines = path.read_text().splitlines()
    assert lines[0] == WSCLEAN_LIST.read_text().splitlines()[0]  # WSClean's header, same ref
    assert all(LINE.fullmatch(line) for line in lines[1:]), lines[1:3]
    assert {line.split(",")[3][0] for line in lines[1:]} == {"+", "-"}
    assert {line.split(",")[2][:2] for line in lines[1:]} == {"00", "23"}

    components = read_source_list(path)
    assert [c.name for c in components] == [f"s0c{i}" for i in range(40)]
    data = model[DATA].astype(float)  # (5, ny, nx)
    listed = np.array([c.flux_jy_at(FREQ_HZ[DATA]) for c in components])  # (40, 5)
    np.testing.assert_allclose(listed.sum(axis=0), data.sum(axis=(1, 2)), rtol=1e-4)
    values = data[:, pixels // NPIX, pixels % NPIX].T  # (40, 5), in the list's order
    np.testing.assert_allclose(listed, values, rtol=0, atol=1e-6)
    wcs = store.wcs
    for c, p in zip(components, pixels, strict=True):
        assert c.kind == "POINT" and not c.log_si and len(c.spectral_terms) == 1
        assert c.ref_freq_hz == REF_HZ
        x, y = wcs.pixel_of(c.ra_rad, c.dec_rad)
        offset_arcsec = math.hypot(x - p % NPIX, y - p // NPIX) * wcs.cell_deg * 3600
        assert offset_arcsec < 0.01


@pytest.mark.parametrize(
    ("deconv", "terms", "spectrum"),
    [
        (DeconvConfig(join_channels=True, fit_spectral_pol=3), 2, _quadratic),
        (DeconvConfig(join_channels=True), 1, _line),  # channels joined, each left free
        (DeconvConfig(), 1, _line),
    ],
)
def test_a_joined_runs_polynomial_is_listed_with_its_terms(spectral_store, deconv, terms, spectrum):
    model, pixels = _model(np.random.default_rng(2), spectrum)
    store, cfg = spectral_store(model, FREQ_HZ, SUMWT, 0.01, deconv=deconv)
    components = read_source_list(write_products(store, cfg, ("model",))["sources"])
    assert len(components) == 40
    assert {len(c.spectral_terms) for c in components} == {terms}
    listed = np.array([c.flux_jy_at(FREQ_HZ[DATA]) for c in components])  # (40, 5)
    values = model[DATA][:, pixels // NPIX, pixels % NPIX].T
    np.testing.assert_allclose(listed, values, rtol=0, atol=1e-6)


def test_a_failed_write_leaves_the_previous_list(spectral_store):
    model, _ = _model(np.random.default_rng(3), _line)
    store, cfg = spectral_store(model, FREQ_HZ, SUMWT, 0.01)
    spectrum = SpectralChannels(mfs_weights(store), FREQ_HZ)
    ref = float(mfs_wcs(store.wcs).freq_hz[0])
    path = write_source_list(store, cfg, spectrum, ref)
    before = path.read_bytes()
    store.array("model")[4, NPIX - 1, 5] = np.nan  # the last tile row: after lines are written
    with pytest.raises(InputError, match="NaN or infinite pixels in rows 64-95"):
        write_source_list(store, cfg, spectrum, ref)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir() if ".tmp-" in p.name] == []


def test_wscleans_list_reads_back_at_its_sources():
    components = read_source_list(WSCLEAN_LIST)
    assert len(components) == 15
    assert {(c.kind, c.log_si, c.ref_freq_hz) for c in components} == {("POINT", False, 1.3e9)}
    cell = math.radians(2.0 / 3600)
    wcs = ImageWCS(64, 64, cell, 1.2, -0.5, np.array([1.3e9]), np.array([8e8]))
    brightest = max(components, key=lambda c: c.flux_jy)
    assert brightest.name == "s0c8" and brightest.flux_jy == pytest.approx(1.0, abs=0.02)
    assert brightest.spectral_terms[0] == pytest.approx(-0.7, abs=0.03)  # dS/d(f/ref) = alpha
    x, y = wcs.pixel_of(brightest.ra_rad, brightest.dec_rad)
    assert (x, y) == (pytest.approx(42, abs=0.01), pytest.approx(38, abs=0.01))
    flat = components[0]  # the 0.5 Jy source, 20 pixels west and 15 south
    assert flat.flux_jy == pytest.approx(0.5, abs=0.02)
    assert wcs.pixel_of(flat.ra_rad, flat.dec_rad) == (
        pytest.approx(12, abs=0.01),
        pytest.approx(17, abs=0.01),
    )


def test_wscleans_unsigned_declinations_and_short_seconds_parse(tmp_path):
    # two lines of WSClean 3.1's list of a field at Dec +17 deg: no '+', trailing zeros cut
    path = tmp_path / "north-sources.txt"
    path.write_text(
        WSCLEAN_LIST.read_text().splitlines()[0] + "\n"
        "s0c0,POINT,04:35:02.58,17.10.29.442,0.0041394280269742,[-0.0525986775755882],"
        "false,1300000000,,,\n"
        "\n# a comment\n"
        "s0c1,GAUSSIAN,04:35:04.115,-00.10.31.4,0.5,[],false,,12.5,10,30\n"
    )
    first, second = read_source_list(path)
    assert math.degrees(first.ra_rad) == pytest.approx(15 * (4 + 35 / 60 + 2.58 / 3600), abs=1e-12)
    assert math.degrees(first.dec_rad) == pytest.approx(17 + 10 / 60 + 29.442 / 3600, abs=1e-12)
    assert math.degrees(second.dec_rad) == pytest.approx(-(10 / 60 + 31.4 / 3600), abs=1e-12)
    assert second.ref_freq_hz == 1.3e9  # the header's default
    assert (second.major_arcsec, second.minor_arcsec, second.orientation_deg) == (12.5, 10, 30)
    assert second.spectral_terms == () and second.flux_jy_at(1.0e9) == 0.5


def test_a_line_that_does_not_parse_is_named(tmp_path):
    path = tmp_path / "bad-sources.txt"
    header = WSCLEAN_LIST.read_text().splitlines()[0]
    path.write_text(header + "\ns0c0,POINT,04:35,17.10.29.4,1.0,[],false,1e9,,,\n")
    with pytest.raises(InputError, match=r"bad-sources.txt:2: cannot parse component"):
        read_source_list(path)
    path.write_text("s0c0,POINT,04:35:00,17.10.29.4,1.0,[],false,1e9,,,\n")
    with pytest.raises(InputError, match=r"bad-sources.txt:1: expected 'Format = "):
        read_source_list(path)
