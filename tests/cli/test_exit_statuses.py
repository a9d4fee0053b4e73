"""The ``skarim`` command when a run is cut short: real signals, a store in use, write errors.

Every test runs ``skarim image`` as a subprocess on a small Measurement Set and checks its exit
status, its last line on stderr, what the store kept, and that re-running the same command
resumes and ends with finite products.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import psutil
import pytest
import zarr
from astropy.io import fits
from msfactory import point_source_vis, random_uvw_m, write_stokes_i_ms

_RUN = [
    *("image", "ms.ms", "--size", "64", "--scale", "6asec", "--tile", "32", "--name", "run"),
    *("--major-cycles", "2", "--polish-cycles", "0"),
]


@pytest.fixture
def ms_dir(tmp_path):
    """``tmp_path`` holding ``ms.ms``: 1 Jy at the phase centre, 2 channels."""
    rng = np.random.default_rng(3)
    freq = np.array([1.3e9, 1.32e9])
    uvw = random_uvw_m(rng, 600, max_m=1000.0, w_frac=0.2)
    write_stokes_i_ms(tmp_path / "ms.ms", uvw, freq, point_source_vis(uvw, freq, 0.0, 0.0))
    return tmp_path


def _skarim(cwd, *args, limit_bytes=None, limit=resource.RLIMIT_FSIZE):
    """``skarim`` run to its end; ``limit_bytes``: the largest file it may write (RLIMIT_FSIZE,
    beyond which a write fails with EFBIG: a real write error, as a full disk gives), or the
    largest heap (``limit`` RLIMIT_DATA, beyond which an allocation fails)."""

    def set_limit():
        resource.setrlimit(limit, (limit_bytes, limit_bytes))

    return subprocess.run(
        [sys.executable, "-m", "skarim", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=set_limit if limit_bytes else None,
    )


def _last_line(stderr):
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert lines, stderr
    return lines[-1]


def _assert_ends_with(r, status, pattern):
    """``r`` exited with ``status`` and its last line on stderr is ``pattern``, no traceback."""
    assert r.returncode == status, r.stderr
    assert "Traceback" not in r.stderr
    assert re.fullmatch(pattern, _last_line(r.stderr)), r.stderr


def _assert_resumed_and_finite(cwd, *args, resumed_from):
    """Re-run the same command: it logs what it resumes from and writes finite products."""
    r = _skarim(cwd, *_RUN, *args)
    assert r.returncode == 0, r.stderr
    assert re.search(rf"resuming from run\.zarr: {resumed_from}", r.stderr, re.M), r.stderr
    assert "Traceback" not in r.stderr
    dirty = fits.getdata(cwd / "run-dirty.fits")[0]  # (chan, y, x)
    assert np.all(np.isfinite(dirty))
    np.testing.assert_allclose(dirty[:, 32, 32], 1.0, rtol=1e-3)  # 1 Jy at the centre
    assert not list(cwd.glob(".*.tmp-*")) and not (cwd / "run.zarr.lock").exists()


def _gridded(cwd):
    try:
        return bool(np.all(zarr.open_group(str(cwd / "run.zarr"), mode="r")["gridded"][...]))
    except (FileNotFoundError, KeyError):
        return False


def test_sigint_to_the_process_group_stops_the_workers(ms_dir):
    proc = subprocess.Popen(
        [sys.executable, "-m", "skarim", *_RUN, "--workers", "1"],
        cwd=ms_dir,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, as a shell's job
    )
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True)
    reader.start()
    while not _gridded(ms_dir) and proc.poll() is None:  # interrupted in its major cycles
        time.sleep(0.05)
    workers = psutil.Process(proc.pid).children(recursive=True)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal
    assert proc.wait(timeout=120) == 130, "".join(err)
    reader.join(timeout=10)
    assert "KeyboardInterrupt" not in "".join(err)  # the workers ignore SIGINT: the run stops them
    last = _last_line("".join(err))
    assert re.fullmatch(
        r"skarim: interrupted by SIGINT: run\.zarr keeps 4/4 tiles gridded, \d of 2 major "
        r"cycles finished; re-running the same command resumes from there",
        last,
    ), last
    assert workers  # the worker process, and Dask's helpers
    gone = psutil.wait_procs(workers, timeout=30)[1]
    assert not gone, f"still running after the command ended: {gone}"
    assert not (ms_dir / "run-dirty.fits").exists()


def test_sigterm_to_the_main_process_exits_143_and_the_rerun_resumes(ms_dir):
    run = ["--scheduler", "sync", "--polish-cycles", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "skarim", *_RUN, *run],
        cwd=ms_dir,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not _gridded(ms_dir) and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # what scancel and a job's time limit send
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert re.fullmatch(
        r"skarim: interrupted by SIGTERM: run\.zarr keeps 4/4 tiles gridded, \d of 3 major "
        r"cycles finished; re-running the same command resumes from there",
        _last_line(stderr),
    ), stderr
    _assert_resumed_and_finite(ms_dir, *run, resumed_from="4/4 tiles gridded")


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from skarim.io.store_lock import hold_store
    with hold_store(Path("run.zarr")):
        print("held", flush=True)
        time.sleep(600)
    """
)


def test_a_store_in_use_stops_a_second_run_at_once(ms_dir):
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER], cwd=ms_dir, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        r = _skarim(ms_dir, *_RUN, "--scheduler", "sync")
    finally:
        holder.kill()
        holder.wait()
    _assert_ends_with(
        r, 2,
        rf"skarim: error: the store run\.zarr is in use by another skarim run \(process "
        rf"{holder.pid} on .*\); wait for it to end or give another --name",
    )  # fmt: skip
    assert not (ms_dir / "run.zarr").exists()  # refused before any work
    r = _skarim(ms_dir, *_RUN, "--dirty-only", "--scheduler", "sync")  # the lock its kill left
    assert r.returncode == 0, r.stderr
    assert f"took over the lock of run.zarr left by process {holder.pid}" in r.stderr


def test_write_errors_leave_nothing_half_written_and_the_rerun_resumes(ms_dir):
    run = [*_RUN, "--channels-out", "2", "--dirty-only", "--make-psf", "--scheduler", "sync"]
    # the PSF's chunks (15 kB) cannot be written: the error comes from the store
    r = _skarim(ms_dir, *run, limit_bytes=8192)
    _assert_ends_with(
        r, 2,
        r"skarim: error: I/O error \(\[Errno 27\] File too large\); run\.zarr keeps (no "
        r"finished work yet|\d/8 tiles gridded); re-running the same command (starts again|"
        r"resumes from there)",
    )  # fmt: skip
    assert not [p for p in (ms_dir / "run.zarr").rglob("*") if "partial" in p.name]
    # the store is completed, the FITS cubes (35 kB) cannot be written: none is left half made
    r = _skarim(ms_dir, *run, limit_bytes=20_000)
    _assert_ends_with(r, 2, r"skarim: error: cannot write FITS file run-dirty\.fits: .+")
    assert not list(ms_dir.glob("*.fits")) and not list(ms_dir.glob(".*.tmp-*"))
    _assert_resumed_and_finite(
        ms_dir, "--channels-out", "2", "--dirty-only", "--make-psf", "--scheduler", "sync",
        resumed_from="8/8 tiles gridded$",
    )  # fmt: skip


def test_an_allocation_that_fails_is_one_line_and_exit_2(ms_dir):
    # one 20000-pixel facet: its image alone is 2.97 GiB, the process may allocate 2.5 GB
    big = ["image", "ms.ms", "--size", "20000", "--scale", "1asec", "--facet-pix", "20000"]
    r = _skarim(
        ms_dir, *big, "--name", "run", "--dirty-only", "--scheduler", "sync",
        limit_bytes=2_500_000_000, limit=resource.RLIMIT_DATA,
    )  # fmt: skip
    _assert_ends_with(  # or, on a machine of less than 9 GiB, the pre-flight check's refusal
        r, 2,
        r"skarim: error: (out of memory \(.+\); a smaller --facet-pix or --tile, or fewer "
        r"--workers, lower a task's memory \(`skarim plan` shows the plan\); run\.zarr keeps "
        r"no finished work yet; re-running the same command starts again|a grid task needs .*)",
    )  # fmt: skip


def test_workers_that_cannot_import_skarim_stop_the_run_instead_of_a_hang(ms_dir, tmp_path):
    """A joined cluster whose worker finds another, broken skarim first on its path."""
    broken = tmp_path / "elsewhere" / "skarim"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('not the skarim of the driver')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(broken.parent), *sys.path])}
    dask = [sys.executable, "-m"]
    scheduler = subprocess.Popen(
        [*dask, "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
         "--no-dashboard", "--scheduler-file", "s.json"],
        cwd=tmp_path, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    worker = None
    try:
        while not (tmp_path / "s.json").exists():
            time.sleep(0.1)
        worker = subprocess.Popen(
            [*dask, "distributed.cli.dask_worker", "--scheduler-file", "s.json", "--nworkers",
             "1", "--nthreads", "1", "--no-dashboard"],
            cwd=tmp_path, env=env, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        address = json.loads((tmp_path / "s.json").read_text())["address"]
        client_check = f"from distributed import Client; Client('{address}').wait_for_workers(1)"
        subprocess.run([sys.executable, "-c", client_check], timeout=120, check=True)
        r = _skarim(ms_dir, *_RUN, "--dirty-only", "--scheduler", address)
    finally:
        for proc in (worker, scheduler):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=60)
    _assert_ends_with(
        r, 2,
        r"skarim: error: the Dask workers cannot import skarim's tasks \(ImportError: not the "
        r"skarim of the driver\); they must run the same skarim as this process",
    )  # fmt: skip
