"""skarim's clean-beam fit against WSClean's on the PSFs of simulated MeerKAT-like observations.

For each case (declination, track length, weighting), in ``--out``:

1. ``skarim simulate`` a MeerKAT Measurement Set;
2. ``skarim image MS --size N --scale S --weight W --dirty-only --make-psf`` and
   ``wsclean -size N N -scale S -weight W -use-wgridder -make-psf -niter 0``;
3. compare WSClean's beam (``BMAJ/BMIN/BPA`` of its ``-psf.fits``) with
   :func:`skarim.beam.fit_beam` on skarim's PSF (what skarim writes into its products),
   and with :func:`skarim.beam.fit_beam` on WSClean's own PSF (the fit alone, without the
   small differences between the two PSFs).

Prints one row per case and the largest differences; exits with status 1 when a case
differs by more than ``--tol-axis`` (relative, BMAJ and BMIN) or ``--tol-pa-deg`` (BPA,
modulo 180 degrees). Example::

    python bench/beam_vs_wsclean.py --out runs/beam_vs_wsclean
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from astropy.io import fits

from skarim.beam import Beam, fit_beam
from skarim.io.fits import read_cube

ARCSEC_PER_DEG = 3600.0


@dataclass(frozen=True)
class Case:
    """One simulated observation and its imaging weighting."""

    name: str
    dec_deg: float
    duration_h: float
    weight: str  # skarim/WSClean spelling, e.g. "briggs 0"


CASES = (
    Case("dec-30_2h_briggs0", -30.0, 2.0, "briggs 0"),
    Case("dec-60_1h_briggs0", -60.0, 1.0, "briggs 0"),
    Case("dec+10_4h_briggs-1", 10.0, 4.0, "briggs -1"),
    Case("dec-30_2h_natural", -30.0, 2.0, "natural"),
    Case("dec-45_3h_uniform", -45.0, 3.0, "uniform"),
)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/beam_vs_wsclean"), help="work dir")
    p.add_argument("--size", type=int, default=512, help="image side, pixels")
    p.add_argument("--scale-asec", type=float, default=2.0, help="pixel size, arcsec")
    p.add_argument("--wsclean", default="wsclean", help="WSClean executable")
    p.add_argument("--tol-axis", type=float, default=0.02, help="pass mark, relative BMAJ/BMIN")
    p.add_argument("--tol-pa-deg", type=float, default=2.0, help="pass mark, BPA degrees")
    return p.parse_args(argv)


def _run(cmd: list[str], log: Path) -> None:
    with open(log, "w") as fh:
        done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with status {done.returncode}; see {log}")


def _header_beam(path: Path) -> Beam:
    h = fits.getheader(path)
    return Beam(major_deg=h["BMAJ"], minor_deg=h["BMIN"], pa_deg=h["BPA"] % 180.0)


def _pa_diff_deg(a: float, b: float) -> float:
    return abs((a - b + 90.0) % 180.0 - 90.0)


def _differences(beam: Beam, ref: Beam) -> tuple[float, float, float]:
    """Relative BMAJ and BMIN differences and the BPA difference (deg, modulo 180)."""
    return (
        beam.major_deg / ref.major_deg - 1.0,
        beam.minor_deg / ref.minor_deg - 1.0,
        _pa_diff_deg(beam.pa_deg, ref.pa_deg),
    )


def _fmt(beam: Beam) -> str:
    return (
        f'{beam.major_deg * ARCSEC_PER_DEG:6.3f}" x {beam.minor_deg * ARCSEC_PER_DEG:6.3f}" '
        f"PA {beam.pa_deg:7.2f}"
    )


def run_case(case: Case, args: argparse.Namespace) -> dict[str, Beam]:
    """Simulate and image one case with both imagers; return the beams to compare."""
    work = args.out / case.name
    work.mkdir(parents=True, exist_ok=True)
    ms = work / "obs.ms"
    scale = f"{args.scale_asec}asec"
    _run(
        [
            "skarim", "simulate", str(ms), "--layout", "meerkat", "--dec", str(case.dec_deg),
            "--duration-h", str(case.duration_h), "--integration-s", "120", "--nchan", "2",
            "--size", str(args.size), "--scale", scale, "--noise-jy", "0.01", "--overwrite",
        ],
        work / "simulate.log",
    )  # fmt: skip
    _run(
        [
            "skarim", "image", str(ms), "--size", str(args.size), "--scale", scale,
            "--weight", *case.weight.split(), "--dirty-only", "--make-psf", "--overwrite",
            "--name", str(work / "skarim"),
        ],
        work / "skarim.log",
    )  # fmt: skip
    _run(
        [
            args.wsclean, "-size", str(args.size), str(args.size), "-scale", scale,
            "-weight", *case.weight.split(), "-use-wgridder", "-make-psf", "-niter", "0",
            "-name", str(work / "wsclean"), str(ms),
        ],
        work / "wsclean.log",
    )  # fmt: skip
    cell_rad = math.radians(args.scale_asec / ARCSEC_PER_DEG)
    skarim_psf, _ = read_cube(work / "skarim-psf.fits")  # (1, 2t, 2t)
    wsclean_psf, _ = read_cube(work / "wsclean-psf.fits")  # (1, n, n)
    return {
        "wsclean": _header_beam(work / "wsclean-psf.fits"),
        "skarim": fit_beam(skarim_psf[0], cell_rad),
        "skarim_header": _header_beam(work / "skarim-psf.fits"),
        "fit_on_wsclean_psf": fit_beam(wsclean_psf[0], cell_rad),
    }


def main(argv: list[str] | None = None) -> int:
    """Run every case, print the table; 0 when all agree within the tolerances."""
    args = _parse_args(argv)
    worst = [0.0, 0.0, 0.0]
    print(f"{'case':22s} {'WSClean':32s} {'skarim fit_beam':32s} dBMAJ    dBMIN    dBPA (deg)")
    for case in CASES:
        beams = run_case(case, args)
        d = _differences(beams["skarim"], beams["wsclean"])
        d_fit = _differences(beams["fit_on_wsclean_psf"], beams["wsclean"])
        d_header = _differences(beams["skarim_header"], beams["skarim"])
        worst = [max(w, abs(v)) for w, v in zip(worst, d, strict=True)]
        print(
            f"{case.name:22s} {_fmt(beams['wsclean']):32s} {_fmt(beams['skarim']):32s} "
            f"{d[0]:+.1e} {d[1]:+.1e} {d[2]:.1e}"
        )
        print(
            f"{'':22s} fit_beam on WSClean's PSF: {_fmt(beams['fit_on_wsclean_psf'])} "
            f"({d_fit[0]:+.1e}, {d_fit[1]:+.1e}, {d_fit[2]:.1e} deg); "
            f"skarim-psf.fits header vs fit_beam: {max(abs(d_header[0]), abs(d_header[1])):.0e}"
        )
    ok = worst[0] <= args.tol_axis and worst[1] <= args.tol_axis and worst[2] <= args.tol_pa_deg
    print(
        f"largest |difference|: BMAJ {worst[0]:.1e}, BMIN {worst[1]:.1e}, BPA {worst[2]:.1e} deg "
        f"-> {'PASS' if ok else 'FAIL'} (tolerance {args.tol_axis:.0%}, {args.tol_pa_deg} deg)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
