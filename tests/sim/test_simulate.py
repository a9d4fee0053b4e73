"""``skarim simulate``: geometry, exact visibilities, noise, products, config checks."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import casacore.tables as pt
import numpy as np
import pytest
from pydantic import ValidationError

from skarim.constants import SPEED_OF_LIGHT_M_S
from skarim.errors import InputError
from skarim.io.fits import read_cube
from skarim.sim.layouts import load_layout
from skarim.sim.simulate import SimulateConfig, SimulationResult, load_simulate_config, simulate

SMALL = {"max_antennas": 6, "npix": 64, "nchan": 2, "duration_h": 1.0, "integration_s": 600.0}


def _cfg(**changes: object) -> SimulateConfig:
    """The small test observation with some fields changed."""
    return SimulateConfig(**{**SMALL, **changes})


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    out = tmp_path_factory.mktemp("sim")
    return simulate(_cfg(), out / "small.ms", out / "truth.fits")


def _col(ms: Path, column: str, subtable: str = "") -> np.ndarray:
    name = f"{ms}::{subtable}" if subtable else str(ms)
    with pt.table(name, ack=False) as t:
        return t.getcol(column)


def _direct_dft(truth: np.ndarray, uvw_m: np.ndarray, freq_hz: float, cell_rad: float):
    """Visibilities of a FITS-order image by a direct sum over its non-zero pixels, with the
    sign of WSClean and CASA: ``V = sum I exp(+2 pi i (u l + v m + w (n - 1)))``."""
    npix = truth.shape[0]
    jy, jx = np.nonzero(truth)
    flux = truth[jy, jx].astype(np.float64)
    l_rad = -(jx - npix / 2) * cell_rad
    m_rad = (jy - npix / 2) * cell_rad
    n = np.sqrt(1 - l_rad**2 - m_rad**2)
    u, v, w = (uvw_m * freq_hz / SPEED_OF_LIGHT_M_S).T[:, :, None]  # (nrow, 1) each, wavelengths
    phase = u * l_rad + v * m_rad + w * (n - 1)  # (nrow, npixel)
    return (flux * np.exp(2j * np.pi * phase)).sum(axis=1)


def test_rows_are_time_major_baselines(small: SimulationResult) -> None:
    nbl, ntime = 15, 6
    assert small.nrow == nbl * ntime
    a1, a2 = _col(small.ms_path, "ANTENNA1"), _col(small.ms_path, "ANTENNA2")
    assert np.all(a1 < a2)
    np.testing.assert_array_equal(a1[:nbl], np.triu_indices(6, k=1)[0])
    time_s = _col(small.ms_path, "TIME").reshape(ntime, nbl)
    assert np.all(time_s == time_s[:, :1])
    np.testing.assert_allclose(np.diff(time_s[:, 0]), 600.0, rtol=1e-9)
    np.testing.assert_array_equal(_col(small.ms_path, "INTERVAL"), 600.0)


def test_uvw_is_a_rotation_of_the_baselines(small: SimulationResult) -> None:
    layout = load_layout("meerkat")
    xyz = layout.itrf_m[:6]
    uvw = _col(small.ms_path, "UVW")
    a1, a2 = _col(small.ms_path, "ANTENNA1"), _col(small.ms_path, "ANTENNA2")
    baseline_m = np.linalg.norm(xyz[a2] - xyz[a1], axis=1)
    np.testing.assert_allclose(np.linalg.norm(uvw, axis=1), baseline_m, rtol=1e-10)
    longest = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1).max()
    assert np.linalg.norm(uvw, axis=1).max() == pytest.approx(longest, rel=1e-10)
    np.testing.assert_array_equal(_col(small.ms_path, "POSITION", "ANTENNA"), xyz)


def test_times_agree_with_casacore_uvw(small: SimulationResult) -> None:
    """casacore recomputes UVW from TIME, the antennas and PHASE_DIR: the track's hour
    angles and the TIME column agree to well under a degree."""
    with pt.table(str(small.ms_path), ack=False) as t:
        sel = pt.taql("select UVW, mscal.uvwj2000() as UVWCALC from $1", tables=[t])
        stored, calc = sel.getcol("UVW"), sel.getcol("UVWCALC")
    length = np.linalg.norm(stored, axis=1, keepdims=True)
    assert np.abs(stored - calc).max(axis=1).max() < 0.01 * length.max()
    assert np.all(np.abs(stored - calc) <= 0.01 * length)


def test_visibilities_are_the_truth_seen_by_a_direct_dft(small: SimulationResult) -> None:
    cfg = _cfg()
    data = _col(small.ms_path, "DATA")  # (row, chan, corr)
    uvw = _col(small.ms_path, "UVW")
    assert data.shape == (small.nrow, 2, 4)
    np.testing.assert_array_equal(data[..., 0], data[..., 3])  # XX = YY = I
    np.testing.assert_array_equal(data[..., 1:3], 0)  # no polarisation, no noise
    for c, f in enumerate(small.freq_hz):
        expected = _direct_dft(small.truth[c], uvw, f, cfg.cell_rad)
        err = np.abs(data[:, c, 0] - expected).max() / np.abs(expected).max()
        assert err < 1e-5
    # the shortest baselines see nearly the whole flux
    assert np.abs(data[..., 0]).max() > 0.5 * small.truth.sum(axis=(1, 2)).min()


def test_truth_cube_and_metadata(small: SimulationResult) -> None:
    cfg = _cfg()
    assert small.truth.shape == (2, 64, 64) and small.truth.dtype == np.float32
    np.testing.assert_allclose(small.freq_hz, [1.3e9, 1.302e9])
    sky = small.sky
    for c, f in enumerate(small.freq_hz):
        expected = (sky.flux_jy * (f / sky.ref_freq_hz) ** sky.spectral_index).sum()
        assert small.truth[c].sum() == pytest.approx(expected, rel=1e-5)
    assert sky.flux_jy.max() == pytest.approx(1.0) and len(sky.flux_jy) == 15
    ms = small.ms_path
    np.testing.assert_array_equal(_col(ms, "CHAN_FREQ", "SPECTRAL_WINDOW"), [small.freq_hz])
    np.testing.assert_array_equal(_col(ms, "CORR_TYPE", "POLARIZATION"), [[9, 10, 11, 12]])
    phase_dir = [[[math.radians(150.0), math.radians(-30.0)]]]
    np.testing.assert_allclose(_col(ms, "PHASE_DIR", "FIELD"), phase_dir)
    assert _col(ms, "TELESCOPE_NAME", "OBSERVATION") == [load_layout("meerkat").observatory]
    np.testing.assert_array_equal(_col(ms, "WEIGHT"), 1.0)

    cube, header = read_cube(small.truth_path)
    np.testing.assert_array_equal(np.squeeze(cube), small.truth)
    assert header["BUNIT"].upper() == "JY/PIXEL"
    assert header["CRVAL1"] == pytest.approx(150.0) and header["CRVAL2"] == pytest.approx(-30.0)
    assert header["CDELT2"] == pytest.approx(math.degrees(cfg.cell_rad))
    assert header["CRPIX1"] == 33 and header["CRVAL3"] == pytest.approx(1.3e9)


def test_noise_has_the_requested_std(tmp_path: Path) -> None:
    clean = simulate(_cfg(seed=5), tmp_path / "clean.ms")
    noisy = simulate(_cfg(seed=5, noise_jy=0.5), tmp_path / "noisy.ms")
    np.testing.assert_array_equal(noisy.truth, clean.truth)  # the same sky
    noise = _col(noisy.ms_path, "DATA") - _col(clean.ms_path, "DATA")  # (row, chan, corr)
    parts = np.concatenate([noise.real.ravel(), noise.imag.ravel()])  # 1440 samples
    assert parts.std() == pytest.approx(0.5, rel=0.06)
    assert abs(parts.mean()) < 0.05
    assert abs(np.corrcoef(noise.real.ravel(), noise.imag.ravel())[0, 1]) < 0.1
    np.testing.assert_array_equal(_col(noisy.ms_path, "WEIGHT"), 4.0)
    np.testing.assert_allclose(_col(noisy.ms_path, "SIGMA"), 0.5)


def test_circular_feeds(tmp_path: Path) -> None:
    res = simulate(_cfg(feeds="circular", nchan=1), tmp_path / "c.ms")
    data = _col(res.ms_path, "DATA")
    np.testing.assert_array_equal(_col(res.ms_path, "CORR_TYPE", "POLARIZATION"), [[5, 6, 7, 8]])
    np.testing.assert_array_equal(data[..., 0], data[..., 3])  # RR = LL = I
    assert np.abs(data[..., 0]).min() > 0
    with pt.table(f"{res.ms_path}::FEED", ack=False) as t:
        assert list(t.getcell("POLARIZATION_TYPE", 0)) == ["R", "L"]
    assert res.truth_path is None


def test_existing_ms_is_kept_unless_overwrite(tmp_path: Path) -> None:
    ms = tmp_path / "o.ms"
    simulate(_cfg(nchan=1), ms)
    with pytest.raises(InputError, match="exists"):
        simulate(_cfg(nchan=1, seed=1), ms)
    res = simulate(_cfg(nchan=1, seed=1), ms, overwrite=True)
    np.testing.assert_array_equal(_col(ms, "DATA").shape, (res.nrow, 1, 4))


def test_config_defaults() -> None:
    cfg = SimulateConfig()
    assert cfg.cell_rad == pytest.approx(1.5 / 3600 * math.pi / 180)
    assert (cfg.layout, cfg.nchan, cfg.npix, cfg.feeds) == ("meerkat", 4, 256, "linear")
    np.testing.assert_allclose(cfg.freq_hz, 1.3e9 + 2e6 * np.arange(4))
    with pytest.raises(ValidationError):
        cfg.nchan = 3  # frozen


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("nchan", 0),
        ("npix", 65),
        ("npix", 16),
        ("noise_jy", -0.1),
        ("duration_h", 0.0),
        ("integration_s", -60.0),
        ("freq_start_hz", 0.0),
        ("chan_width_hz", -1e6),
        ("dec_deg", 91.0),
        ("ra_deg", 360.0),
        ("cell_rad", 0.0),
        ("brightest_jy", 0.0),
        ("dynamic_range", 0.5),
        ("n_points", -1),
        ("max_antennas", 1),
        ("max_antennas", 1000),
        ("feeds", "elliptical"),
        ("layout", "no-such-array"),
        ("seed", -3),
        ("spectral_index_range", (1.0, -2.0)),
        ("curvature_range", (0.2, -0.5)),
    ],
)
def test_bad_config_names_the_field(field: str, value: object) -> None:
    with pytest.raises(InputError, match=field):
        load_simulate_config({field: value})
    with pytest.raises(ValidationError, match=field):
        SimulateConfig(**{field: value})


def test_unknown_config_key_is_refused() -> None:
    with pytest.raises(InputError, match="nchans"):
        load_simulate_config({"nchans": 3})


@pytest.mark.skipif(shutil.which("wsclean") is None, reason="WSClean is not installed")
def test_wsclean_predicts_the_same_visibilities(tmp_path: Path) -> None:
    """WSClean reads the set and the truth FITS and predicts the DATA column (w-term and
    sign included) from the truth, on a 21 arcmin field."""
    cfg = _cfg(nchan=1, cell_rad=math.radians(20 / 3600))
    res = simulate(cfg, tmp_path / "w.ms", tmp_path / "w-model.fits")
    subprocess.run(
        ["wsclean", "-predict", "-use-wgridder", "-wgridder-accuracy", "1e-6",
         "-no-small-inversion",  # else WSClean resamples the model to its minimal grid
         "-name", str(tmp_path / "w"), "-size", "64", "64", "-scale", "20asec",
         str(res.ms_path)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    data = _col(res.ms_path, "DATA")[:, 0, 0]
    model = _col(res.ms_path, "MODEL_DATA")[:, 0, 0]
    assert np.abs(model - data).max() < 1e-5 * np.abs(data).max()


def test_components_predicted_analytically_equal_the_image_prediction(tmp_path: Path) -> None:
    # point sources only: on pixel centres the rendered truth holds them exactly
    image = simulate(_cfg(seed=3, n_gaussians=0), tmp_path / "image.ms")
    components = simulate(
        _cfg(seed=3, n_gaussians=0, predict="components"), tmp_path / "components.ms"
    )
    assert components.truth is None  # no truth cube was asked for, none was rendered
    a, b = _col(image.ms_path, "DATA"), _col(components.ms_path, "DATA")
    assert np.abs(a - b).max() < 1e-5 * np.abs(a).max()
