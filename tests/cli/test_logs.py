"""Tests of skarim.cli.logs: off a terminal, every log record is one line, however long."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
from msfactory import point_source_vis, random_uvw_m, write_stokes_i_ms

_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (INFO|WARNING|ERROR) +\S")


def test_log_records_written_to_a_file_never_wrap(tmp_path):
    rng = np.random.default_rng(7)
    freq = np.array([1.3e9])
    uvw = random_uvw_m(rng, 200, max_m=1000.0, w_frac=0.2)
    ms = write_stokes_i_ms(tmp_path / "small.ms", uvw, freq, point_source_vis(uvw, freq, 0, 0))
    out = tmp_path / ("a-directory-whose-name-alone-is-longer-than-a-terminal-line-" * 2)
    out.mkdir()
    log = tmp_path / "stderr.log"
    with open(log, "w") as stderr:
        proc = subprocess.run(
            [sys.executable, "-m", "skarim", "image", str(ms), "--size", "64", "--scale",
             "6asec", "--name", str(out / "run"), "--dirty-only", "--scheduler", "sync"],
            stderr=stderr, stdout=subprocess.DEVNULL, timeout=300,
        )  # fmt: skip
    lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
    assert proc.returncode == 0, lines
    records = [ln for ln in lines if _RECORD.match(ln)]
    others = [ln for ln in lines if not _RECORD.match(ln)]
    assert records and all(ln.startswith("tiles ") for ln in others), others  # the progress bar
    wrote = [ln for ln in records if f"{out / 'run'}-dirty.fits" in ln]
    assert wrote and len(wrote[0]) > 120  # one line, longer than rich's 80 columns
