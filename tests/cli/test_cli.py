"""The command line: WSClean-like flags, and one line plus exit status 2 on bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits
from msfactory import point_source_vis, random_uvw_m, write_stokes_i_ms


def _skarim(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "skarim", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def small_ms(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(7)
    freq = np.array([1.3e9, 1.31e9, 1.32e9, 1.33e9])
    uvw = random_uvw_m(rng, 600, max_m=1000.0, w_frac=0.2)
    vis = point_source_vis(uvw, freq, 0.0, 0.0, flux_jy=1.0)
    return write_stokes_i_ms(tmp / "small.ms", uvw, freq, vis)


def test_image_with_wsclean_flags_writes_cubes(small_ms, tmp_path):
    r = _skarim(
        "image",
        small_ms,
        "--size",
        64,
        64,
        "--scale",
        "6asec",
        "--weight",
        "briggs",
        "0",
        "--channels-out",
        2,
        "--tile",
        32,
        "--name",
        "run",
        "--dirty-only",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    dirty = fits.getdata(tmp_path / "run-dirty.fits")
    assert dirty.shape == (1, 2, 64, 64)
    assert dirty[0, :, 32, 32] == pytest.approx([1.0, 1.0], rel=1e-4)  # 1 Jy at the phase centre
    assert (tmp_path / "run.zarr" / "zarr.json").exists()
    assert abs(fits.getheader(tmp_path / "run-dirty.fits")["CDELT1"] + 6 / 3600) < 1e-12


def test_yaml_config_is_accepted_and_flags_win(small_ms, tmp_path):
    (tmp_path / "run.yaml").write_text(
        f"read:\n  ms: {small_ms}\ngrid:\n  npix_x: 64\n  npix_y: 64\n  cell: 4asec\n  tile: 64\n"
        "  weighting: natural\noutput:\n  name: fromyaml\ndirty_only: true\n"
    )
    r = _skarim("image", small_ms, "--config", "run.yaml", "--scale", "5asec", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert fits.getheader(tmp_path / "fromyaml-dirty.fits")["CDELT2"] == pytest.approx(5 / 3600)


def _flagged_ms(path):
    rng = np.random.default_rng(8)
    freq = np.array([1.4e9])
    uvw = random_uvw_m(rng, 50, max_m=500.0)
    return write_stokes_i_ms(
        path, uvw, freq, point_source_vis(uvw, freq, 0, 0), weight=np.zeros(50)
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["image", "{tmp}/missing.ms", "--size", "64", "--scale", "2asec"], "does not exist"),
        (["image", "{tmp}", "--size", "64", "--scale", "2asec"], "not a Measurement Set"),
        (
            [
                "image",
                "{ms}",
                "--size",
                "64",
                "--scale",
                "2asec",
                "--data-column",
                "CORRECTED_DATA",
            ],
            "CORRECTED_DATA",
        ),
        (["image", "{ms}", "--size", "64", "--scale", "2asec", "--field", "3"], "field"),
        (
            ["image", "{ms}", "--size", "64", "--scale", "2asec", "--spw", "2"],
            "spw|spectral window",
        ),
        (
            ["image", "{flagged}", "--size", "64", "--scale", "2asec"],
            r"no usable weight.*zero \(50\)",
        ),
        (["image", "{ms}", "--size", "64", "--weight", "briggs", "5"], r"robustness.*\[-2, 2\]"),
        (["image", "{ms}", "--size", "64", "--threads", "0"], "threads_per_worker must be >= 1"),
        (["image", "{ms}", "--size", "64", "--name", "/proc/skarim/run"], "cannot write in /proc"),
        (["image", "{ms}", "--size", "63", "--scale", "2asec"], "even"),
        (["image", "{ms}", "--size", "16", "--scale", "2asec"], "at least 32"),
        (["image", "{ms}", "--size", "64", "--scale", "-2asec"], "positive"),
        (["image", "{ms}", "--size", "64", "--scale", "0asec"], "positive"),
        (
            ["image", "{ms}", "--size", "64", "--scale", "2asec", "--weight", "superuniform"],
            "weighting",
        ),
        (["image", "{ms}", "--size", "64", "--scale", "2lightyears"], "angle"),
        (["image", "{ms}", "--bogus-flag"], "bogus"),
        (["info", "{tmp}/missing.ms"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(small_ms, tmp_path, args, message):
    import re

    flagged = _flagged_ms(tmp_path / "flagged.ms") if "{flagged}" in args else None
    args = [a.format(tmp=tmp_path, ms=small_ms, flagged=flagged) for a in args]
    r = _skarim(*args, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("skarim: error:")]
    assert len(errors) == 1 and errors[0] == lines[-1], (
        r.stderr
    )  # progress/log lines may precede it
    assert re.search(message, errors[0], re.IGNORECASE), errors[0]
    assert "Traceback" not in r.stderr
    if flagged is None:
        assert len(lines) == 1, r.stderr


def test_help_shows_every_default_and_wscleans_where_the_name_is_wscleans(tmp_path):
    r = _skarim("image", "--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    options: list[str] = []  # one entry per option, its wrapped lines joined
    for line in r.stdout.split("Options:")[1].splitlines():
        if line.startswith("  --"):
            options.append(line.strip())
        elif options and line.strip():
            options[-1] += " " + line.strip()
    names = [o.split()[0].removeprefix("--").rstrip(",") for o in options]
    without = [n for n, o in zip(names, options, strict=True) if "[default:" not in o]
    assert without == ["size", "help"], without  # size is required; --help has none
    shown = {
        n: o.split("[default: ")[1].split("]")[0]
        for n, o in zip(names, options, strict=True)
        if n not in without
    }
    assert shown["weight"] == "(uniform)" and shown["scale"] == "(0.01deg)"
    assert shown["channels-out"] == "(1)" and shown["field"] == "(0)"
    assert shown["data-column"] == "(CORRECTED_DATA if present, else DATA)"
