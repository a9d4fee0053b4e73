"""bench/weights.py: RIM weights scored on an earlier bench run's Measurement Sets."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from cases import QUICK_CASES, simulate_case  # noqa: E402
from scoring import read_planes, score_model, truth_per_output_channel  # noqa: E402
from weights import case_from_record, main  # noqa: E402

CASE = replace(QUICK_CASES["hdr"], npix=128, seed=5)
REFERENCE = {"snr_db": 10.0, "smoothed_snr_db": 20.0}  # a made-up WSClean row, carried through
FWHM_PIX = 4.0


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bench run's directory as bench/run.py leaves it: results.json and the case's MS."""
    out = tmp_path_factory.mktemp("bench")
    simulate_case(CASE, out / "work" / CASE.name, 1)
    record = {
        "name": CASE.name,
        "config": {**asdict(CASE), "cell_arcsec": CASE.cell_arcsec, "noise_jy": CASE.noise_jy},
        "beam": {"fwhm_pix": FWHM_PIX},
        "methods": {"wsclean_multiscale": REFERENCE},
    }
    (out / "results.json").write_text(json.dumps({"meta": {}, "cases": [record]}))
    return out


def test_the_case_is_rebuilt_from_its_record(bench_dir: Path) -> None:
    record = json.loads((bench_dir / "results.json").read_text())["cases"][0]
    assert case_from_record(record) == CASE


def test_the_rim_alone_is_scored_against_the_truth_beside_the_reference(
    bench_dir: Path, tmp_path: Path
) -> None:
    table = tmp_path / "rows.json"
    argv = [str(bench_dir), "--weights", "shipped", "--methods", "skarim_rim", "--threads", "1"]
    assert main([*argv, "--json", str(table)]) == 0
    (row,) = json.loads(table.read_text())
    assert (row["case"], row["seed"], row["weights"], row["method"]) == (
        CASE.name, 5, "shipped", "skarim_rim")  # fmt: skip
    assert (row["reference_snr_db"], row["reference_smoothed_snr_db"]) == (10.0, 20.0)
    work = bench_dir / "work" / CASE.name
    model, _ = read_planes([work / "weights-shipped" / "skarim_rim" / "skarim-model.fits"])
    truth, _ = read_planes([work / f"{CASE.name}-truth.fits"])
    expected = score_model(model, truth_per_output_channel(truth, CASE.channels_out), FWHM_PIX)
    assert row["smoothed_snr_db"] == pytest.approx(expected.smoothed_snr_db)
    assert row["snr_db"] == pytest.approx(expected.snr_db)
    assert row["smoothed_snr_db"] > 15.0  # a deconvolved model, not an empty one (0 dB)


def test_bad_input_is_one_line_and_status_2(
    bench_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(bench_dir), "--weights", str(tmp_path / "none.pt")]) == 2
    assert main([str(tmp_path), "--weights", "shipped"]) == 2
    assert main([str(bench_dir), "--weights", "shipped", "--methods", "wsclean_hogbom"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("bench/weights.py: error:") for line in err)
