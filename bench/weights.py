"""Score RIM weights on the Measurement Sets of earlier bench runs, beside their WSClean rows.

Usage::

    python bench/weights.py RESULTS_DIR [RESULTS_DIR ...] --weights FILE [--weights FILE ...]
                            [--methods skarim_rim,skarim] [--threads N] [--json FILE]

Each ``RESULTS_DIR`` is the ``--out`` of a finished ``bench/run.py`` whose work files were
kept (no ``--clean``): its ``results.json`` gives the cases, their fitted beams and the
WSClean multiscale rows, and ``work/<case>/`` the Measurement Set and the truth. For every
weights file (``shipped`` names the package's own) and every scored case, the skarim methods
of :mod:`methods` (the RIM alone, ``skarim_rim``, and the full pipeline, ``skarim``) run with
``--weights``, with the bench's own command lines, into ``work/<case>/weights-<label>/``;
their models are scored as the bench scores them. WSClean is not run again, so choosing
among training checkpoints on the bench costs skarim's runs alone. It prints one row per
case, method and weights, with the difference from WSClean multiscale, and writes them to
``--json`` (the per-case table that ``rim-quality.json`` carries).

Wall times are those of the bench's runs under whatever else the machine was doing: use
``bench/run.py`` on a quiet machine for speed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path

from cases import Case
from methods import RunSpec, run_method
from report import score_runs
from scoring import read_planes

__all__ = ["WeightsRow", "case_from_record", "score_weights", "main"]

_REFERENCE = "wsclean_multiscale"


@dataclass(frozen=True)
class WeightsRow:
    """One method's scores with one weights file on one bench case.

    Attributes
    ----------
    case : str
        The case's name.
    seed : int
        Its sky and noise seed.
    weights : str
        Weights label (the file's stem, or ``shipped``).
    method : str
        ``skarim_rim`` or ``skarim``.
    snr_db, smoothed_snr_db, flux_ratio : float
        The model's scores against the truth (:func:`scoring.score_model`).
    reference_snr_db, reference_smoothed_snr_db : float
        WSClean multiscale's, from the bench run.
    wall_s : float
        The skarim run's wall time, seconds.
    """

    case: str
    seed: int
    weights: str
    method: str
    snr_db: float
    smoothed_snr_db: float
    flux_ratio: float
    reference_snr_db: float
    reference_smoothed_snr_db: float
    wall_s: float

    def line(self) -> str:
        """The row as printed: scores, then the differences from multiscale."""
        d_raw = self.snr_db - self.reference_snr_db
        d_smooth = self.smoothed_snr_db - self.reference_smoothed_snr_db
        return (
            f"{self.case:10s} {self.seed:5d} {self.weights:>14s} {self.method:10s} "
            f"{self.snr_db:7.2f} {self.smoothed_snr_db:7.2f} {self.flux_ratio:6.3f} "
            f"{self.reference_snr_db:7.2f} {self.reference_smoothed_snr_db:7.2f} "
            f"{d_raw:+7.2f} {d_smooth:+7.2f} {self.wall_s:7.1f}"
        )


HEADER = (
    f"{'case':10s} {'seed':>5s} {'weights':>14s} {'method':10s} {'SNR':>7s} {'smooth':>7s} "
    f"{'flux':>6s} {'ms SNR':>7s} {'ms smth':>7s} {'dSNR':>7s} {'dSmooth':>7s} {'wall s':>7s}"
)


def case_from_record(record: dict) -> Case:
    """The :class:`cases.Case` a ``results.json`` case record was run with."""
    names = {f.name for f in fields(Case)}
    given = {k: v for k, v in record["config"].items() if k in names}
    return Case(**{k: tuple(v) if isinstance(v, list) else v for k, v in given.items()})


def score_weights(
    results_dir: Path, weights: Path | None, methods: list[str], threads: int
) -> list[WeightsRow]:
    """Run and score ``methods`` with ``weights`` on every scored case of one bench run.

    Parameters
    ----------
    results_dir : Path
        A ``bench/run.py --out`` directory with its work files.
    weights : Path or None
        RIM weights; None: the shipped ones.
    methods : list of str
        skarim methods of :mod:`methods` (``skarim_rim``, ``skarim``).
    threads : int
        Threads of every skarim run.

    Returns
    -------
    list of WeightsRow
        One per case with a WSClean multiscale row, and method.
    """
    label = "shipped" if weights is None else weights.stem
    rows: list[WeightsRow] = []
    for record in json.loads((results_dir / "results.json").read_text())["cases"]:
        reference = record["methods"].get(_REFERENCE, {})
        if "snr_db" not in reference:
            continue  # speed-only cases and failed WSClean runs are not scored
        case = case_from_record(record)
        work = results_dir / "work" / case.name
        spec = RunSpec(case, (work / f"{case.name}.ms").resolve(),
                       (work / f"weights-{label}").resolve(), threads, "cpu", True,
                       weights=None if weights is None else weights.resolve())  # fmt: skip
        truth, _ = read_planes([work / f"{case.name}-truth.fits"])
        for method in methods:
            run = run_method(method, spec)
            if run.status != "ok":
                raise RuntimeError(f"{case.name} {method}: {run.status} {run.note}")
            scored = score_runs({method: run}, truth, case.channels_out,
                                float(record["beam"]["fwhm_pix"]))[method]  # fmt: skip
            rows.append(WeightsRow(
                case.name, case.seed, label, method, float(scored["snr_db"]),
                float(scored["smoothed_snr_db"]), float(scored["flux_ratio"]),
                float(reference["snr_db"]), float(reference["smoothed_snr_db"]),
                float(scored["wall_s"]),
            ))  # fmt: skip
    return rows


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", type=Path, nargs="+", help="bench/run.py --out directories")
    p.add_argument("--weights", action="append", required=True,
                   help="RIM weights file, or 'shipped' (repeatable)")  # fmt: skip
    p.add_argument("--methods", default="skarim_rim,skarim")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--json", type=Path, default=None, help="write the rows here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Score every weights file on every bench run; returns the exit status."""
    args = _parse(argv)
    methods = [m for m in args.methods.split(",") if m]
    bad = [m for m in methods if m not in ("skarim_rim", "skarim")]
    missing = [d for d in args.results if not (d / "results.json").is_file()]
    files = [None if w == "shipped" else Path(w) for w in args.weights]
    absent = [str(w) for w in files if w is not None and not w.is_file()]
    for problem, items in (("not a skarim method", bad), ("no results.json in", missing),
                           ("no weights file", absent)):  # fmt: skip
        if items:
            print(f"bench/weights.py: error: {problem}: {', '.join(map(str, items))}",
                  file=sys.stderr)  # fmt: skip
            return 2
    print(HEADER, flush=True)
    rows: list[WeightsRow] = []
    for results_dir in args.results:
        for weights in files:
            for row in score_weights(results_dir, weights, methods, args.threads):
                print(row.line(), flush=True)
                rows.append(row)
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in rows], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
