"""Scoring a case's runs, the ratios between tools, and the printed table.

A case's record (written to the JSON as is) holds, per method, its status, costs and
scores, and the ratios:

- ``skarim / wsclean_hogbom`` and ``skarim / wsclean_multiscale``: wall time and peak
  memory ratios, SNR differences in dB (skarim minus WSClean; positive: skarim is better);
- ``skarim_dirty / wsclean_dirty``: wall time and peak memory of dirty imaging;
- ``skarim_dirty / ducc0_raw``: whole-process wall times, and skarim's whole dirty run over
  ducc0's gridding calls alone (what skarim's reading, weighting, PSF, tiles and FITS cost
  on top of the bare gridder).

A joined case's record also holds ``joined`` (:func:`score_joined`): the spectral scores
(:func:`scoring.score_spectral`) of joined skarim, independent skarim and WSClean joined,
with their wall time and peak memory, and the issue's goals, each pass or fail: joined
skarim's mean per-channel smoothed SNR at least 3 dB above independent skarim's and above
WSClean joined's, and its spectral-index error below WSClean joined's.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from cases import Case
from methods import MethodRun
from scoring import (
    beam_fwhm_pix,
    output_freqs_hz,
    read_planes,
    residual_rms,
    score_model,
    score_spectral,
    spectral_truth,
    truth_per_output_channel,
)

from skarim.beam import Beam, common_beam, fit_beam
from skarim.io.fits import read_cube
from skarim.sim.simulate import SimulationResult

__all__ = ["case_beam", "score_runs", "score_joined", "joined_goals", "ratios", "format_table"]

JOINED_ROWS = ("skarim_joined", "skarim", "wsclean_joined")
"""The methods of a joined case's table: joined skarim, independent skarim, WSClean joined."""

_GAIN_DB = 3.0


def _beam_dict(beam: Beam) -> dict[str, float]:
    return {
        "major_arcsec": beam.major_deg * 3600.0,
        "minor_arcsec": beam.minor_deg * 3600.0,
        "pa_deg": beam.pa_deg,
    }


def case_beam(runs: dict[str, MethodRun], cell_rad: float) -> dict[str, object]:
    """The common smoothing beam of a case, and WSClean's own fit beside it.

    The beam is :func:`skarim.beam.fit_beam` on every channel of the PSF cube of the first of
    the ``skarim``, ``skarim_rim`` runs that wrote one (``skarim_dirty`` makes no PSF, as
    WSClean with ``-niter 0``), the channel of largest area (:func:`skarim.beam.common_beam`);
    when neither did, WSClean's ``BMAJ``/``BMIN``/``BPA`` from its first PSF file.
    Smoothing uses a circular Gaussian of the geometric-mean FWHM.
    """
    out: dict[str, object] = {}
    beam = None
    for name in ("skarim", "skarim_rim"):
        run = runs.get(name)
        if run is None or not run.psf or not run.psf[0].exists():
            continue
        psf, _ = read_cube(run.psf[0])  # (nchan, 2t, 2t)
        beam = common_beam([fit_beam(p, cell_rad) for p in psf])
        out["source"] = f"skarim.beam.fit_beam on the {name} run's PSF, largest-area channel"
        out["skarim"] = _beam_dict(beam)
        break
    for name in ("wsclean_hogbom", "wsclean_dirty", "wsclean_multiscale"):
        run = runs.get(name)
        if run is None or run.status != "ok" or not run.psf or not run.psf[0].exists():
            continue
        _, header = read_planes(run.psf[:1])
        if "BMAJ" in header:
            ws = Beam(float(header["BMAJ"]), float(header["BMIN"]), float(header["BPA"]))
            out["wsclean"] = _beam_dict(ws)
            if beam is None:
                beam = ws
                out["source"] = f"WSClean BMAJ/BMIN of {run.psf[0].name}"
            break
    if beam is None:
        raise RuntimeError("no PSF to fit a beam to: neither skarim nor WSClean wrote one")
    out["fwhm_pix"] = beam_fwhm_pix(beam, cell_rad)
    return out


def score_runs(
    runs: dict[str, MethodRun], truth: np.ndarray, channels_out: int, fwhm_pix: float
) -> dict[str, dict[str, object]]:
    """Costs and scores of every run of a case, keyed by method."""
    truth_out = truth_per_output_channel(truth, channels_out)  # (channels_out, ny, nx)
    table: dict[str, dict[str, object]] = {}
    for name, run in runs.items():
        row: dict[str, object] = {"status": run.status, "note": run.note}
        if run.measured is not None:
            row.update(run.measured.as_dict())
        row.update(run.extra)
        if run.status == "ok":
            if run.residual and all(p.exists() for p in run.residual):
                residual, _ = read_planes(run.residual)
                row["residual_rms_jy_beam"] = residual_rms(residual)
            if run.model:
                model, _ = read_planes(run.model)
                row.update(score_model(model, truth_out, fwhm_pix).as_dict())
        table[name] = row
    return table


def score_joined(
    runs: dict[str, MethodRun], sim: SimulationResult, case: Case, fwhm_pix: float
) -> dict[str, object]:
    """Spectral scores, costs and goals of a joined case (module docstring).

    The MFS noise of the source selection is the natural-weighted noise the case is
    simulated to, ``noise_image_jy / sqrt(channels_out)`` (Briggs 0 is a little noisier).
    """
    truth_out = truth_per_output_channel(sim.truth, case.channels_out)
    freq_out = output_freqs_hz(sim.freq_hz, case.channels_out)
    sigma_mfs = case.noise_image_jy / math.sqrt(case.channels_out)
    sources = spectral_truth(sim.sky, truth_out, freq_out, fwhm_pix, sigma_mfs)
    rows: dict[str, dict[str, object]] = {}
    for name in JOINED_ROWS:
        run = runs.get(name)
        row: dict[str, object] = {"status": "not run" if run is None else run.status}
        if run is not None and run.measured is not None:
            row["wall_s"] = run.measured.wall_s
            row["peak_rss_mb"] = run.measured.peak_rss_mb
        if run is not None and run.status == "ok" and run.model:
            model, _ = read_planes(run.model)
            row.update(score_spectral(model, truth_out, sources, fwhm_pix).as_dict())
        rows[name] = row
    return {
        "alpha_ref_freq_hz": sources.ref_freq_hz,
        "sigma_mfs_jy_beam": sigma_mfs,
        "alpha_sources": len(sources.alpha),
        "rows": rows,
        "goals": joined_goals(rows),
    }


def joined_goals(rows: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    """The issue's goals from the joined rows: each a value and ``pass`` (None when a run
    it needs has no score)."""
    joined, indep, ws = (rows.get(n, {}) for n in JOINED_ROWS)
    key = "channel_smoothed_snr_db"
    gain = _diff(joined.get(key), indep.get(key))
    ahead = _diff(joined.get(key), ws.get(key))
    alpha = _diff(joined.get("alpha_error"), ws.get("alpha_error"))
    return {
        "channel_gain_over_independent_db": _goal(
            gain, f">= {_GAIN_DB:g}", lambda v: v >= _GAIN_DB
        ),
        "channel_gain_over_wsclean_joined_db": _goal(ahead, "> 0", lambda v: v > 0),
        "alpha_error_minus_wsclean_joined": _goal(alpha, "< 0", lambda v: v < 0),
    }


def _goal(value: float | None, target: str, ok: Callable[[float], bool]) -> dict[str, object]:
    known = value is not None and not math.isnan(value)
    return {"value": value, "target": target, "pass": ok(value) if known else None}


def _ratio(a: object, b: object) -> float | None:
    if isinstance(a, float | int) and isinstance(b, float | int) and b:
        return float(a) / float(b)
    return None


def _diff(a: object, b: object) -> float | None:
    if isinstance(a, float | int) and isinstance(b, float | int):
        return float(a) - float(b)
    return None


def ratios(rows: dict[str, dict[str, object]]) -> dict[str, dict[str, float | None]]:
    """skarim against WSClean and ducc0 (see the module docstring)."""

    def ok(name: str) -> dict[str, object]:
        row = rows.get(name, {})
        return row if row.get("status") == "ok" else {}

    out: dict[str, dict[str, float | None]] = {}
    sk = ok("skarim")
    for ref in ("wsclean_hogbom", "wsclean_multiscale"):
        ws = ok(ref)
        out[f"skarim/{ref}"] = {
            "time": _ratio(sk.get("wall_s"), ws.get("wall_s")),
            "memory": _ratio(sk.get("peak_rss_mb"), ws.get("peak_rss_mb")),
            "snr_diff_db": _diff(sk.get("snr_db"), ws.get("snr_db")),
            "smoothed_snr_diff_db": _diff(sk.get("smoothed_snr_db"), ws.get("smoothed_snr_db")),
        }
    skd, wsd, du = ok("skarim_dirty"), ok("wsclean_dirty"), ok("ducc0_raw")
    out["skarim_dirty/wsclean_dirty"] = {
        "time": _ratio(skd.get("wall_s"), wsd.get("wall_s")),
        "memory": _ratio(skd.get("peak_rss_mb"), wsd.get("peak_rss_mb")),
    }
    out["skarim_dirty/ducc0_raw"] = {
        "time": _ratio(skd.get("wall_s"), du.get("wall_s")),
        "memory": _ratio(skd.get("peak_rss_mb"), du.get("peak_rss_mb")),
        "time_over_grid_only": _ratio(skd.get("wall_s"), du.get("grid_s")),
    }
    return out


def _f(value: object, fmt: str) -> str:
    if value is None or not isinstance(value, float | int):
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return format(value, fmt)


def format_table(cases: list[dict[str, object]]) -> str:
    """The printed report: one row per (case, method), then one row of ratios per case."""
    head = (f"{'case':<13}{'method':<20}{'status':<15}{'wall s':>8}{'cpu s':>8}"
            f"{'peak MiB':>9}{'SNR dB':>8}{'smooth':>8}{'flux':>7}{'rms mJy/b':>11}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for case in cases:
        for name, row in case["methods"].items():
            lines.append(
                f"{case['name']:<13}{name:<20}{row['status']:<15}"
                f"{_f(row.get('wall_s'), '.1f'):>8}{_f(row.get('cpu_s'), '.1f'):>8}"
                f"{_f(row.get('peak_rss_mb'), '.0f'):>9}{_f(row.get('snr_db'), '.2f'):>8}"
                f"{_f(row.get('smoothed_snr_db'), '.2f'):>8}{_f(row.get('flux_ratio'), '.3f'):>7}"
                f"{_f(_milli(row.get('residual_rms_jy_beam')), '.4g'):>11}"
            )
    lines += ["", "ratios (skarim over the other; dSNR = skarim minus other, dB, raw/smoothed)"]
    rhead = f"{'case':<13}{'pair':<34}{'time':>8}{'memory':>8}{'dSNR':>8}{'dSNRs':>8}{'/grid':>8}"
    lines += [rhead, "-" * len(rhead)]
    for case in cases:
        for pair, r in case["ratios"].items():
            lines.append(
                f"{case['name']:<13}{pair:<34}{_f(r.get('time'), '.2f'):>8}"
                f"{_f(r.get('memory'), '.2f'):>8}{_f(r.get('snr_diff_db'), '.2f'):>8}"
                f"{_f(r.get('smoothed_snr_diff_db'), '.2f'):>8}"
                f"{_f(r.get('time_over_grid_only'), '.1f'):>8}"
            )
    lines += [
        "",
        "SNR: model vs truth, all output channels; smooth: both smoothed with the case's fitted",
        "clean beam (JSON 'beam'); flux: model/truth; rms: residual RMS (of the dirty image for",
        "*_dirty rows, which have no model: a zero model scores 0 dB); /grid: skarim_dirty wall",
        "time over ducc0's vis2dirty calls alone. Wall/CPU/peak memory: the whole process;",
        "skarim_dirty, wsclean_dirty and ducc0_raw: the fastest of 3 runs taking turns.",
    ]
    if any("joined" in case for case in cases):
        lines += ["", *_format_joined(cases)]
    notes = [
        f"{case['name']} {name}: {row['note']}"
        for case in cases
        for name, row in case["methods"].items()
        if row.get("note")
    ]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def _format_joined(cases: list[dict[str, object]]) -> list[str]:
    head = (f"{'case':<13}{'method':<20}{'status':<15}{'chan dB':>8}{'smooth':>8}"
            f"{'MFS sm':>8}{'|dalpha|':>9}{'n/miss':>8}{'wall s':>8}{'peak MiB':>9}")  # fmt: skip
    lines = ["joined channels: spectral scores (scoring.score_spectral)", head, "-" * len(head)]
    goals = []
    for case in cases:
        joined = case.get("joined")
        if not joined:
            continue
        for name, row in joined["rows"].items():
            n = row.get("alpha_sources")
            counts = "-" if n is None else f"{n}/{row.get('alpha_missed')}"
            lines.append(
                f"{case['name']:<13}{name:<20}{row['status']:<15}"
                f"{_f(row.get('channel_snr_db'), '.2f'):>8}"
                f"{_f(row.get('channel_smoothed_snr_db'), '.2f'):>8}"
                f"{_f(row.get('mfs_smoothed_snr_db'), '.2f'):>8}"
                f"{_f(row.get('alpha_error'), '.3f'):>9}{counts:>8}"
                f"{_f(row.get('wall_s'), '.1f'):>8}{_f(row.get('peak_rss_mb'), '.0f'):>9}"
            )
        cells = [_goal_cell(g) for g in joined["goals"].values()]
        goals.append(f"{case['name']:<13}" + "".join(f"{c:>24}" for c in cells))
    ghead = (f"{'case':<13}{f'chan gain >= {_GAIN_DB:g} dB':>24}{'ahead of WSClean joined':>24}"
             f"{'|dalpha| < WSClean':>24}")  # fmt: skip
    return [
        *lines,
        "",
        "goals (joined skarim; chan gain: smoothed, over independent skarim)",
        ghead,
        "-" * len(ghead),
        *goals,
        "",
        "chan dB, smooth: mean over channels of each channel's SNR, raw and smoothed; MFS sm:",
        "smoothed SNR of the channels' mean; |dalpha|: median |alpha_fit - alpha_true| of the",
        "n truth sources >= 10 sigma in the MFS (miss: model not positive in two channels).",
    ]


def _goal_cell(goal: dict[str, object]) -> str:
    verdict = {True: "pass", False: "fail", None: "-"}[goal["pass"]]
    return f"{verdict} ({_f(goal['value'], '+.2f')})"


def _milli(value: object) -> float | None:
    return float(value) * 1e3 if isinstance(value, float | int) else None
