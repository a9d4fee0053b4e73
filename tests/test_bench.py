"""The benchmark's cases, command lines and scorers on cases with known answers (no imaging
tool runs, no timings)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from cases import FULL_CASES, QUICK_CASES, simulate_case  # noqa: E402
from methods import JOINED_METHODS, METHODS, MethodRun, RunSpec, command_line, methods_for  # noqa: E402
from report import format_table, joined_goals, score_joined  # noqa: E402
from scoring import (  # noqa: E402
    beam_fwhm_pix,
    fit_spectral_index,
    json_safe,
    residual_rms,
    score_model,
    score_spectral,
    spectral_truth,
    truth_per_output_channel,
)

from skarim.beam import Beam  # noqa: E402
from skarim.io.fits import write_cube  # noqa: E402
from skarim.io.wcs import ImageWCS  # noqa: E402
from skarim.sim.simulate import SimulationResult  # noqa: E402
from skarim.sim.sky import SkyModel, render_sky  # noqa: E402

FWHM_PIX = 4.0


@pytest.fixture
def truth() -> np.ndarray:
    """``(2, 64, 64)`` sky: two points and a Gaussian, positive total flux."""
    rng = np.random.default_rng(3)
    cube = np.zeros((2, 64, 64))
    cube[:, 20, 30] = [1.0, 0.8]
    cube[:, 40, 12] = [0.05, 0.04]
    yy, xx = np.mgrid[0:64, 0:64]
    cube += 0.01 * np.exp(-((yy - 44) ** 2 + (xx - 44) ** 2) / 18.0)
    return cube + 1e-4 * rng.random(cube.shape)


def test_perfect_model_scores_infinite_snr(truth: np.ndarray) -> None:
    s = score_model(truth.copy(), truth, FWHM_PIX)
    assert s.snr_db == math.inf
    assert s.smoothed_snr_db > 100.0  # equal up to FFT round-off
    assert s.flux_ratio == pytest.approx(1.0)
    assert s.peak_offset_pix == 0.0


def test_zero_model_scores_zero_db(truth: np.ndarray) -> None:
    s = score_model(np.zeros_like(truth), truth, FWHM_PIX)
    assert s.snr_db == pytest.approx(0.0, abs=1e-12)
    assert s.smoothed_snr_db == pytest.approx(0.0, abs=1e-9)
    assert s.flux_ratio == 0.0


@pytest.mark.parametrize("factor", [0.5, 0.9, 2.0])
def test_scaled_model_scores_the_analytic_value(truth: np.ndarray, factor: float) -> None:
    """``model = a truth`` gives ``-20 log10|1 - a|`` dB raw and smoothed: 6.02 dB for a half."""
    expected = -20.0 * math.log10(abs(1.0 - factor))
    s = score_model(factor * truth, truth, FWHM_PIX)
    assert s.snr_db == pytest.approx(expected, abs=1e-9)
    assert s.smoothed_snr_db == pytest.approx(expected, abs=1e-6)
    assert s.flux_ratio == pytest.approx(factor)
    if factor == 0.5:
        assert s.snr_db == pytest.approx(10.0 * math.log10(4.0)) == pytest.approx(6.0206, abs=1e-4)


def test_smoothing_forgives_a_one_pixel_shift(truth: np.ndarray) -> None:
    """A point moved by a fraction of the beam costs much less after smoothing."""
    shifted = np.roll(truth, 1, axis=-1)
    s = score_model(shifted, truth, FWHM_PIX)
    assert s.smoothed_snr_db > s.snr_db + 5.0
    assert s.peak_offset_pix == pytest.approx(1.0)


def test_shape_mismatch_is_refused(truth: np.ndarray) -> None:
    with pytest.raises(ValueError, match="shape"):
        score_model(truth[:1], truth, FWHM_PIX)


def test_truth_is_averaged_over_output_channel_groups() -> None:
    truth = np.arange(4, dtype=float)[:, None, None] * np.ones((4, 8, 8))  # planes 0, 1, 2, 3
    out = truth_per_output_channel(truth, 2)
    assert out.shape == (2, 8, 8)
    np.testing.assert_allclose(out[:, 0, 0], [0.5, 2.5])


def test_residual_rms_and_beam_width() -> None:
    assert residual_rms(np.full((2, 4, 4), -3.0)) == pytest.approx(3.0)
    cell_rad = math.radians(2.0 / 3600)
    beam = Beam(major_deg=8.0 / 3600, minor_deg=2.0 / 3600, pa_deg=30.0)
    assert beam_fwhm_pix(beam, cell_rad) == pytest.approx(2.0)  # sqrt(8 * 2) / 2


def test_json_safe_replaces_non_finite() -> None:
    assert json_safe({"a": [math.inf, -math.inf, math.nan, 1.5]}) == {
        "a": ["inf", "-inf", "nan", 1.5]
    }


# --- the joined-channel case ---------------------------------------------------------------

FREQ_HZ = np.linspace(0.95e9, 1.65e9, 8)  # the quick spectral case's channels


@pytest.fixture(scope="module")
def spectral_sim(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    """The quick ``spectral`` case's simulation (about 2 s)."""
    return simulate_case(QUICK_CASES["spectral"], tmp_path_factory.mktemp("spectral"), 1)


def test_spectral_cases_span_the_band_in_joined_channels() -> None:
    full, quick = FULL_CASES["spectral"], QUICK_CASES["spectral"]
    for case, n in ((full, 16), (quick, 8)):
        assert case.joined and case.nchan == case.channels_out == n
        assert case.cell_arcsec == 2.0
        lo = case.freq_start_hz - case.chan_width_hz / 2
        hi = case.freq_max_hz + case.chan_width_hz / 2
        assert (lo, hi) == pytest.approx((0.9e9, 1.7e9))
    assert (full.npix, full.duration_h, quick.npix, quick.duration_h) == (512, 2.0, 256, 0.5)


def test_spectral_case_simulates_its_channels_and_curved_spectra(
    spectral_sim: SimulationResult,
) -> None:
    from casacore.tables import table

    sim, case = spectral_sim, QUICK_CASES["spectral"]
    np.testing.assert_allclose(sim.freq_hz, FREQ_HZ)
    with table(str(sim.ms_path / "SPECTRAL_WINDOW"), ack=False) as spw:
        np.testing.assert_allclose(spw.getcol("CHAN_FREQ")[0], FREQ_HZ)
    with table(str(sim.ms_path), ack=False) as ms:
        assert ms.getcol("DATA", 0, 1).shape == (1, 8, 4)
    sky = sim.sky
    assert sky.ref_freq_hz == pytest.approx(1.3e9)
    assert sky.spectral_index.min() >= -2.0 and sky.spectral_index.max() <= 1.0
    assert np.ptp(sky.spectral_index) > 1.5  # spread over the range, not about -0.7
    assert sky.curvature is not None and np.all((sky.curvature >= -0.5) & (sky.curvature <= 0.2))
    assert np.any(np.abs(sky.curvature) > 0.1)
    assert len(sky.flux_jy) == case.n_points + case.n_gaussians
    # each truth plane holds the curved spectra: its total flux is that of the components
    assert sim.truth.shape == (8, 256, 256)
    for c, f in enumerate(FREQ_HZ):
        ratio = f / sky.ref_freq_hz
        expected = sky.flux_jy * ratio ** (sky.spectral_index + sky.curvature * np.log(ratio))
        assert sim.truth[c].sum() == pytest.approx(expected.sum(), rel=1e-5)


def test_joined_methods_run_only_on_joined_cases() -> None:
    for case in (*FULL_CASES.values(), *QUICK_CASES.values()):
        names = methods_for(case)
        if case.joined:
            assert names == list(METHODS)
        else:
            assert names == [n for n in METHODS if n not in JOINED_METHODS]
            assert "skarim" in names and "wsclean_multiscale" in names


def _spec(tmp_path: Path, ms: Path) -> RunSpec:
    return RunSpec(FULL_CASES["spectral"], ms, tmp_path, 2, "cpu", True)


def test_joined_command_lines_carry_the_joined_flags(tmp_path: Path) -> None:
    spec = _spec(tmp_path, tmp_path / "x.ms")
    prefix = tmp_path / "p"
    indep = command_line("skarim", spec, prefix)
    joined = command_line("skarim_joined", spec, prefix)
    assert joined == [*indep, "--join-channels", "--fit-spectral-pol", "2"]
    assert indep[indep.index("--channels-out") + 1] == "16"
    ws = command_line("wsclean_joined", spec, prefix)
    multiscale = command_line("wsclean_multiscale", spec, prefix)
    assert ws[: ws.index("-join-channels")] == multiscale[: multiscale.index("-name")]
    assert ws[ws.index("-join-channels") :] == [
        "-join-channels", "-fit-spectral-pol", "2", "-name", str(prefix), str(spec.ms),
    ]  # fmt: skip
    for flag, value in (("-channels-out", "16"), ("-auto-mask", "3"), ("-auto-threshold", "1"),
                        ("-size", "512"), ("-scale", "2asec"), ("-j", "2"), ("-niter", "100000"),
                        ("-mgain", "0.8"), ("-wgridder-accuracy", "0.0001")):  # fmt: skip
        assert ws[ws.index(flag) + 1] == value
    assert "-multiscale" in ws


def test_skarim_accepts_the_joined_command_line(
    spectral_sim: SimulationResult, tmp_path: Path
) -> None:
    """``skarim plan`` takes ``skarim image``'s flags: the bench's joined command is valid."""
    spec = replace(_spec(tmp_path, spectral_sim.ms_path), case=QUICK_CASES["spectral"])
    cmd = command_line("skarim_joined", spec, tmp_path / "p")
    cmd = cmd[cmd.index(sys.executable) :]
    cmd[cmd.index("image")] = "plan"
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr


def _isolated_sky(alpha: np.ndarray, beta: np.ndarray | None) -> SkyModel:
    """Four points 20 pixels apart on a 96^2 grid, 1 Jy down to 0.1 Jy at 1.3 GHz."""
    n = len(alpha)
    zeros = np.zeros(n)
    return SkyModel(
        x_pix=np.array([20.0, 40.0, 60.0, 80.0])[:n], y_pix=np.array([30.0, 50.0, 70.0, 40.0])[:n],
        flux_jy=np.array([1.0, 0.5, 0.2, 0.1])[:n], spectral_index=np.asarray(alpha, float),
        major_pix=zeros, minor_pix=zeros, pa_rad=zeros, ref_freq_hz=1.3e9, curvature=beta,
    )  # fmt: skip


def _cube(sky: SkyModel) -> np.ndarray:
    return np.stack([render_sky(sky, 96, 96, f) for f in FREQ_HZ])  # (8, 96, 96)


ALPHA = np.array([-2.0, -0.7, 0.0, 1.0])


@pytest.mark.parametrize("beta", [None, np.array([-0.5, 0.2, -0.3, 0.1])])
def test_alpha_error_is_zero_on_the_truth(beta: np.ndarray | None) -> None:
    sky = _isolated_sky(ALPHA, beta)
    truth = _cube(sky)
    sources = spectral_truth(sky, truth, FREQ_HZ, FWHM_PIX, sigma_mfs_jy_beam=1e-3)
    assert len(sources.alpha) == 4
    geometric_mean = np.exp(np.log(FREQ_HZ).mean())
    assert 0.97 * geometric_mean < sources.ref_freq_hz < geometric_mean  # ln f is skewed low
    score = score_spectral(truth, truth, sources, FWHM_PIX)
    assert score.channel_snr_db == math.inf
    assert score.channel_smoothed_snr_db > 100 and score.mfs_smoothed_snr_db > 100
    assert (score.alpha_sources, score.alpha_missed) == (4, 0)
    assert score.alpha_error < 1e-9  # curved spectra too, at the reference frequency


def test_alpha_error_is_the_known_error_of_a_wrong_model() -> None:
    sky = _isolated_sky(ALPHA, None)
    truth = _cube(sky)
    sources = spectral_truth(sky, truth, FREQ_HZ, FWHM_PIX, sigma_mfs_jy_beam=1e-3)
    wrong = np.array([0.3, -0.2, 0.5, -0.4])  # medians of |error|: (0.3 + 0.4) / 2
    model = _cube(replace(sky, spectral_index=ALPHA + wrong))
    fit = fit_spectral_index(model, FREQ_HZ, FWHM_PIX, sources.x_pix, sources.y_pix)
    np.testing.assert_allclose(fit, ALPHA + wrong, atol=1e-9)
    score = score_spectral(model, truth, sources, FWHM_PIX)
    assert score.alpha_error == pytest.approx(0.35, abs=1e-9)
    # sources the model lacks (here: negative) count as infinite errors
    flux = np.array([1.0, 0.5, -0.2, -0.1])
    s = score_spectral(_cube(replace(sky, flux_jy=flux)), truth, sources, FWHM_PIX)
    assert (s.alpha_missed, s.alpha_error) == (2, math.inf)  # the median of (0, 0, inf, inf)
    s = score_spectral(np.zeros_like(truth), truth, sources, FWHM_PIX)
    assert (s.alpha_missed, s.alpha_error) == (4, math.inf)


def test_only_sources_above_ten_sigma_in_the_mfs_are_scored() -> None:
    sky = _isolated_sky(np.zeros(4), None)  # flat spectra: MFS peak = flux (Jy/beam)
    sources = spectral_truth(sky, _cube(sky), FREQ_HZ, FWHM_PIX, sigma_mfs_jy_beam=0.015)
    assert sources.x_pix.tolist() == [20, 40, 60]  # 1, 0.5 and 0.2 Jy; 0.1 Jy < 0.15


def test_mean_channel_and_mfs_snr_of_a_scaled_model() -> None:
    sky = _isolated_sky(ALPHA, None)
    truth = _cube(sky)
    sources = spectral_truth(sky, truth, FREQ_HZ, FWHM_PIX, sigma_mfs_jy_beam=1e-3)
    model = truth * np.linspace(0.5, 0.9, 8)[:, None, None]  # channel c scaled by a_c
    s = score_spectral(model, truth, sources, FWHM_PIX)
    expected = np.mean(-20 * np.log10(1 - np.linspace(0.5, 0.9, 8)))
    assert s.channel_snr_db == pytest.approx(expected, abs=1e-9)
    assert s.channel_smoothed_snr_db == pytest.approx(expected, abs=1e-6)
    assert s.alpha_error > 0.5  # the scaling tilts every spectrum


def _write_model(path: Path, cube: np.ndarray) -> Path:
    wcs = ImageWCS(
        npix_x=cube.shape[-1], npix_y=cube.shape[-2], cell_rad=math.radians(2 / 3600),
        ra_rad=0.0, dec_rad=-0.5, freq_hz=FREQ_HZ, chan_width_hz=np.full(8, 1e8),
    )  # fmt: skip
    write_cube(path, cube.astype(np.float32), wcs, bunit="JY/PIXEL")
    return path


def test_joined_table_scores_runs_and_checks_the_goals(
    spectral_sim: SimulationResult, tmp_path: Path
) -> None:
    """Joined skarim = 0.9 truth (20 dB), independent = 0.5 truth (6.02 dB), WSClean joined
    not run: the gain is 13.98 dB, a pass; the goals against WSClean are unknown."""
    case = QUICK_CASES["spectral"]
    truth = spectral_sim.truth
    runs = {
        "skarim_joined": MethodRun("skarim_joined", "ok",
                                   model=[_write_model(tmp_path / "j.fits", 0.9 * truth)]),
        "skarim": MethodRun("skarim", "ok", model=[_write_model(tmp_path / "i.fits", 0.5 * truth)]),
        "wsclean_joined": MethodRun("wsclean_joined", "not available", note="wsclean absent"),
    }  # fmt: skip
    joined = score_joined(runs, spectral_sim, case, FWHM_PIX)
    rows = joined["rows"]
    assert rows["skarim_joined"]["channel_snr_db"] == pytest.approx(20.0, abs=1e-4)
    assert rows["skarim"]["channel_smoothed_snr_db"] == pytest.approx(6.0206, abs=1e-4)
    assert rows["skarim"]["alpha_error"] < 1e-2  # a scaled truth keeps its spectral indices
    assert joined["alpha_sources"] == rows["skarim"]["alpha_sources"] > 5
    goals = joined["goals"]
    gain = goals["channel_gain_over_independent_db"]
    assert gain["value"] == pytest.approx(20.0 - 6.0206, abs=1e-3) and gain["pass"] is True
    assert goals["channel_gain_over_wsclean_joined_db"]["pass"] is None
    assert goals["alpha_error_minus_wsclean_joined"]["pass"] is None
    record = {"name": "spectral", "methods": {}, "ratios": {}, "joined": joined}
    table = format_table([record])
    assert "skarim_joined" in table and "pass (+13.98)" in table
    json.dumps(json_safe(joined), allow_nan=False)  # the record is JSON as results.json has it


def test_goals_fail_when_joined_skarim_is_not_ahead() -> None:
    rows = {
        "skarim_joined": {"channel_smoothed_snr_db": 20.0, "alpha_error": math.inf},
        "skarim": {"channel_smoothed_snr_db": 18.0, "alpha_error": 0.2},
        "wsclean_joined": {"channel_smoothed_snr_db": 20.5, "alpha_error": 0.1},
    }
    goals = joined_goals(rows)
    assert [g["pass"] for g in goals.values()] == [False, False, False]
    assert goals["channel_gain_over_independent_db"]["value"] == pytest.approx(2.0)
    rows["skarim_joined"] = {"channel_smoothed_snr_db": 21.0, "alpha_error": 0.05}
    assert [g["pass"] for g in joined_goals(rows).values()] == [True, True, True]


def test_a_speed_method_keeps_its_fastest_ok_run_and_every_wall() -> None:
    from run import _fastest
    from tools import Measured

    def run(method: str, status: str, wall_s: float) -> MethodRun:
        measured = Measured([method], 0 if status == "ok" else 1, wall_s, 1.0, 10.0, "t", "log")
        return MethodRun(method, status, measured)

    kept = None
    for status, wall_s in (("ok", 2.0), ("ok", 1.5), ("failed", 0.5), ("ok", 1.8)):
        kept = _fastest(kept, run("skarim_dirty", status, wall_s))
    assert kept.measured.wall_s == 1.5 and kept.status == "ok"
    assert kept.extra["walls_s"] == [2.0, 1.5, 0.5, 1.8]
    other = run("skarim", "ok", 9.0)
    assert _fastest(run("skarim", "ok", 1.0), other) is other  # one run: not a speed method


def test_weights_go_to_skarims_deconvolving_runs_only(tmp_path: Path) -> None:
    spec = replace(_spec(tmp_path, tmp_path / "x.ms"), weights=tmp_path / "rim.pt")
    for method in ("skarim", "skarim_rim", "skarim_joined"):
        cmd = command_line(method, spec, tmp_path / "p")
        assert cmd[cmd.index("--weights") + 1] == str(tmp_path / "rim.pt")
    assert "--weights" not in command_line("skarim_dirty", spec, tmp_path / "p")
    assert "--weights" not in command_line("skarim", _spec(tmp_path, tmp_path / "x.ms"), tmp_path)
