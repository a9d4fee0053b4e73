"""skarim on a real SLURM: the one-node cluster that tests/cluster/slurm-up.sh starts.

Workers are SLURM batch jobs that dask-jobqueue submits from ``pipelines/slurm-local.yaml``
(two jobs of one CPU, one single-threaded worker each, partition ``debug``); the driver is the
``skarim image`` command in a subprocess, as a user runs it. One small observation
(:func:`msfactory.point_sources_ms`: 64 x 64 pixels in 2 x 2 tiles, 2 output channels, 2 RIM
cycles and 1 polish cycle) is imaged on a ``LocalCluster`` of 2 workers for the reference.
The module skips, naming why, when no SLURM answers here: ``.ci/run`` starts one when it runs
as root and hands its reason on (``SKARIM_SLURM_SKIP``) when it cannot.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits
from distributed import Client
from msfactory import point_sources_ms

from skarim.config import load_run_config
from skarim.io.store import RunStore
from skarim.run.batch_jobs import BATCH_JOB_TOPIC
from skarim.run.jobqueue import WORKER_JOB_NAME
from skarim.run.pipeline import run_imaging

ROOT = Path(__file__).resolve().parents[2]
PARTITION = "debug"
SIZE, SCALE_ARCSEC, TILE, CHANNELS, CYCLES, POLISH = 64, 20.0, 32, 2, 2, 1
FRESH = {
    "tiles_gridded": CHANNELS * 4,
    "tiles_deconvolved": CHANNELS * 4 * (CYCLES + POLISH),
    "residuals_computed": CHANNELS * (CYCLES + POLISH),
}
ARRAYS = ("dirty", "psf", "sumwt", "model", "residual", "gridded", "cycle", "rcycle")
PRODUCTS = ("dirty", "psf", "model", "residual", "image")
#: A lost worker's job is replaced after this (Dask's default is 15 s).
DRIVER_ENV = {"DASK_DISTRIBUTED__DEPLOY__LOST_WORKER_TIMEOUT": "1s"}
#: The job name of ``pipelines/slurm-run.sbatch``.
WHOLE_RUN_JOB_NAME = "skarim"
ENDED = {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}


def _why_no_slurm() -> str | None:
    """Why the SLURM tests cannot run here, or None when partition ``debug`` has a node up."""
    if reason := os.environ.get("SKARIM_SLURM_SKIP"):
        return f"no local SLURM: {reason}"
    hint = "as root, tests/cluster/slurm-up.sh installs and starts one"
    if shutil.which("sinfo") is None:
        return f"no SLURM here (sinfo not found); {hint}"
    out = subprocess.run(
        ["sinfo", "-h", "-p", PARTITION, "-o", "%T"], capture_output=True, text=True, timeout=30
    )
    if out.returncode or not {"idle", "mixed", "allocated"} & set(out.stdout.split()):
        said = (out.stderr or out.stdout).strip() or "no node"
        return f"no SLURM node up in partition {PARTITION} ({said}); {hint}"
    return None


WHY_NOT = _why_no_slurm()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")


def _flags(ms: Path, name: Path) -> list[str]:
    return [
        str(ms), "--size", str(SIZE), "--scale", f"{SCALE_ARCSEC:g}asec", "--tile", str(TILE),
        "--channels-out", str(CHANNELS), "--major-cycles", str(CYCLES),
        "--polish-cycles", str(POLISH), "--device", "cpu", "--name", str(name),
    ]  # fmt: skip


def _recipe(tmp: Path, **changes) -> Path:
    """``pipelines/slurm-local.yaml`` with the jobs' logs in ``tmp`` and ``changes``."""
    recipe = yaml.safe_load((ROOT / "pipelines" / "slurm-local.yaml").read_text())
    recipe.update(log_directory=str(tmp / "jobs"), **changes)
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@contextmanager
def _image_on_slurm(ms: Path, tmp: Path, recipe: Path) -> Iterator[tuple[subprocess.Popen, Path]]:
    """``skarim image ... --cluster slurm`` run from ``tmp`` in a subprocess, its log in a file.

    A driver still running when the block ends (a test failed) is killed, and its jobs with it.
    """
    log = tmp / "driver.log"
    cmd = [sys.executable, "-m", "skarim", "image", *_flags(ms, tmp / "run")]
    cmd += ["--cluster", "slurm", "--cluster-config", str(recipe)]
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, cwd=tmp, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **DRIVER_ENV}
        )
    try:
        yield proc, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            _cancel(_jobs_in(tmp))


def _jobs_in(tmp: Path, name: str = WORKER_JOB_NAME) -> list[str]:
    """The jobs called ``name`` (a driver's workers) working in ``tmp`` in the queue now."""
    out = subprocess.run(
        ["squeue", "-h", "-n", name, "-o", "%i %Z"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.split()[0] for line in out.splitlines() if line.split()[1:] == [str(tmp)]]


def _finish(proc: subprocess.Popen, log: Path, timeout: float = 180) -> dict:
    """Wait for the driver; the run's summary from its store."""
    assert proc.wait(timeout=timeout) == 0, log.read_text()[-3000:]
    return RunStore.open(log.parent / "run.zarr").group.attrs["runs"][-1]


def _cancel(job_ids: list[str]) -> None:
    if job_ids:
        subprocess.run(["scancel", *job_ids], check=True)


def _job(job_id: str) -> dict[str, str]:
    """``scontrol show job``'s fields of a job (kept an hour after it ends: MinJobAge)."""
    out = subprocess.run(
        ["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True
    ).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out))


def _wait_ended(job_id: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while (state := _job(job_id)["JobState"]) not in ENDED and time.monotonic() < deadline:
        time.sleep(0.2)
    return state


def _arrays(store_path: Path) -> dict[str, np.ndarray]:
    store = RunStore.open(store_path)
    return {name: store.array(name)[...] for name in ARRAYS}


def _cubes(prefix: Path) -> dict[str, np.ndarray]:
    return {name: fits.getdata(f"{prefix}-{name}.fits") for name in PRODUCTS}


def _assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    for name, array in want.items():
        scale = max(float(np.abs(array).max()), 1e-30)
        diff = float(np.abs(got[name] - array).max())
        # measured: bit-identical (0.0) to the LocalCluster run; float32 round-off is the bound
        assert diff <= 1e-6 * scale, (name, diff, scale)


@pytest.fixture(scope="module")
def ms(tmp_path_factory) -> Path:
    return point_sources_ms(tmp_path_factory.mktemp("slurm-ms"))


@pytest.fixture(scope="module")
def reference(ms, tmp_path_factory) -> tuple[dict, dict]:
    """Store arrays and FITS cubes of the same run on a LocalCluster of 2 workers."""
    name = tmp_path_factory.mktemp("local") / "run"
    cfg = load_run_config(
        None,
        {
            "read": {"ms": ms},
            "grid": {
                "npix_x": SIZE,
                "npix_y": SIZE,
                "cell": f"{SCALE_ARCSEC}asec",
                "tile": TILE,
                "channels_out": CHANNELS,
            },
            "deconv": {"major_cycles": CYCLES, "polish_cycles": POLISH, "device": "cpu"},
            "output": {"name": str(name)},
            "cluster": {"n_workers": 2, "threads_per_worker": 1},
        },  # fmt: skip
    )
    result = run_imaging(cfg)
    assert {k: getattr(result, k) for k in FRESH} == FRESH
    return _arrays(cfg.output.store_path), _cubes(name)


def test_slurm_run_equals_the_local_cluster_run(ms, reference, tmp_path):
    queued = set()
    with _image_on_slurm(ms, tmp_path, _recipe(tmp_path)) as (proc, log):
        while proc.poll() is None:  # the jobs squeue shows while the run goes on
            queued.update(_jobs_in(tmp_path))
            time.sleep(0.2)
        summary = _finish(proc, log)
    assert {k: summary[k] for k in FRESH} == FRESH
    jobs = summary["batch_jobs"]
    assert len(jobs) == 2 and set(jobs) == queued, (jobs, queued)
    for job_id in jobs:
        fields = _job(job_id)
        assert fields["JobName"] == WORKER_JOB_NAME and fields["Partition"] == PARTITION
        assert fields["NodeList"] == os.uname().nodename.split(".")[0]
        assert _wait_ended(job_id) in ENDED  # the run's end released its jobs
    assert f"workers ran in batch job(s) {', '.join(jobs)}" in log.read_text()
    _assert_same(_arrays(tmp_path / "run.zarr"), reference[0])
    _assert_same(_cubes(tmp_path / "run"), reference[1])


def _scheduler_address(proc: subprocess.Popen, log: Path, timeout: float = 60) -> str:
    """The driver's scheduler, from the worker job script it logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        found = re.search(r"distributed\.cli\.dask_worker (tcp://\S+)", log.read_text())
        if found:
            return found.group(1)
        time.sleep(0.1)
    raise AssertionError(f"no job script logged:\n{log.read_text()[-3000:]}")


def _freeze_a_job_mid_task(client: Client, proc: subprocess.Popen) -> tuple[str, str]:
    """Stop (SIGSTOP, through SLURM) the job of a worker that is running a RIM tile pass.

    Returns the worker's address and job id once the task is certainly caught mid-run: the
    worker still holds it half a second after its job was frozen.
    """
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        busy = [w for w, keys in client.processing().items() if _has_tile_pass(keys)]
        if busy:
            jobs = {msg["worker"]: msg["job"] for _, msg in client.get_events(BATCH_JOB_TOPIC)}
            job_id = jobs[busy[0]]
            _signal(job_id, "STOP")
            time.sleep(0.5)
            if _has_tile_pass(client.processing().get(busy[0], ())):
                return busy[0], job_id
            _signal(job_id, "CONT")
        time.sleep(0.005)
    raise AssertionError("no RIM tile pass seen running on a worker job")


def _signal(job_id: str, signal: str) -> None:
    """Send ``signal`` to every process of a job (its batch shell and the worker under it)."""
    subprocess.run(["scancel", "--full", f"--signal={signal}", job_id], check=True)


def _has_tile_pass(keys) -> bool:
    return any(str(k).startswith("tile_pass_task") for k in keys)


def _removal(client: Client, worker: str, timeout: float = 60) -> dict:
    """The scheduler's record of ``worker``'s removal."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for _, msg in client.get_events("all"):
            if msg.get("action") == "remove-worker" and msg.get("worker") == worker:
                return msg
        time.sleep(0.1)
    raise AssertionError(f"{worker} was not removed")


def test_a_cancelled_worker_job_costs_a_retry_not_the_run(ms, reference, tmp_path):
    with _image_on_slurm(ms, tmp_path, _recipe(tmp_path)) as (proc, log):
        with Client(_scheduler_address(proc, log), timeout="30s") as client:
            worker, victim = _freeze_a_job_mid_task(client, proc)
            _cancel([victim])
            lost = _removal(client, worker)["processing-tasks"]
        summary = _finish(proc, log)
    # the tile pass the job held was lost with it and ran again on another worker
    assert _has_tile_pass(lost), lost
    assert _job(victim)["JobState"] == "CANCELLED"
    assert victim in summary["batch_jobs"]
    assert summary["tiles_deconvolved"] == FRESH["tiles_deconvolved"]
    _assert_same(_arrays(tmp_path / "run.zarr"), reference[0])
    _assert_same(_cubes(tmp_path / "run"), reference[1])


def test_jobs_are_replaced_before_their_walltime(ms, reference, tmp_path):
    # each worker retires 15 s after it starts, well inside its job's walltime of a minute. The
    # run is made to outlast its first two jobs: both are frozen (SIGSTOP through SLURM) mid-run
    # until their lifetime is over, then retire on waking, and new jobs finish the run
    lifetime_s = 15
    recipe = _recipe(
        tmp_path, walltime="00:01:00", lifetime=f"{lifetime_s}s", lifetime_stagger="0s"
    )
    with _image_on_slurm(ms, tmp_path, recipe) as (proc, log):
        with Client(_scheduler_address(proc, log), timeout="30s") as client:
            _, job_id = _freeze_a_job_mid_task(client, proc)
            joined = client.get_events(BATCH_JOB_TOPIC)  # (time each worker joined, its job)
            first = [msg["job"] for _, msg in joined]
            for other in set(first) - {job_id}:
                _signal(other, "STOP")
            time.sleep(max(0.0, max(t for t, _ in joined) + lifetime_s + 1 - time.time()))
            for frozen in first:
                _signal(frozen, "CONT")
        summary = _finish(proc, log)
    jobs = summary["batch_jobs"]
    assert jobs[: len(first)] == first and len(jobs) > len(first), (first, jobs)
    for job_id in first:  # they ended themselves at their lifetime, before the walltime
        worker_log = (tmp_path / "jobs" / f"{WORKER_JOB_NAME}-{job_id}.err").read_text()
        assert "worker-lifetime-reached" in worker_log
    for job_id in jobs:
        assert _wait_ended(job_id) in {"COMPLETED", "CANCELLED"}  # none reached its walltime
    _assert_same(_arrays(tmp_path / "run.zarr"), reference[0])
    _assert_same(_cubes(tmp_path / "run"), reference[1])


def _sbatch_whole_run(ms: Path, tmp: Path) -> str:
    """``sbatch pipelines/slurm-run.sbatch`` with the run's flags; the job's id."""
    cmd = ["sbatch", "--parsable", "--cpus-per-task=2", "--mem=6G", f"--chdir={tmp}"]
    cmd += [f"--output={tmp}/skarim-%j.log", str(ROOT / "pipelines" / "slurm-run.sbatch")]
    out = subprocess.run(
        cmd + _flags(ms, tmp / "run") + ["--workers", "2"],  # a small job would run alone
        capture_output=True,
        text=True,
        check=True,
        env=os.environ,
    )
    return out.stdout.strip().split(";")[0]


def _rim_passes_written(store_path: Path) -> bool:
    try:
        return bool(RunStore.open(store_path).array("cycle")[...].sum() > 0)
    except (FileNotFoundError, KeyError):  # the store is still being laid out
        return False


def _cancel_mid_run(job_id: str, store_path: Path) -> None:
    """Cancel a whole-run job once its RIM passes have started writing to the store."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and _job(job_id)["JobState"] not in ENDED:
        if _rim_passes_written(store_path):
            break
        time.sleep(0.05)
    log = store_path.parent / f"skarim-{job_id}.log"
    assert _job(job_id)["JobState"] == "RUNNING", log.read_text()[-3000:]
    _cancel([job_id])
    assert _wait_ended(job_id) == "CANCELLED"


def test_a_whole_run_job_killed_and_submitted_again_resumes(ms, reference, tmp_path):
    store_path = tmp_path / "run.zarr"
    try:
        first = _sbatch_whole_run(ms, tmp_path)
        _cancel_mid_run(first, store_path)
        left = _arrays(store_path)
        second = _sbatch_whole_run(ms, tmp_path)
        state = _wait_ended(second, timeout=180)
    finally:
        _cancel(_jobs_in(tmp_path, WHOLE_RUN_JOB_NAME))
    assert state == "COMPLETED", (tmp_path / f"skarim-{second}.log").read_text()[-3000:]
    todo = {
        "tiles_gridded": int((1 - left["gridded"]).sum()),
        "tiles_deconvolved": int((CYCLES + POLISH - left["cycle"]).sum()),
        "residuals_computed": int((CYCLES + POLISH - left["rcycle"]).sum()),
    }
    assert 0 < sum(todo.values()) < sum(FRESH.values())
    runs = RunStore.open(store_path).group.attrs["runs"]
    assert len(runs) == 1  # the killed job's run left no summary
    assert {k: runs[0][k] for k in FRESH} == todo  # exactly what was left, no more
    assert runs[0]["batch_jobs"] == [second] and runs[0]["workers"] == 2
    _assert_same(_arrays(store_path), reference[0])
    _assert_same(_cubes(tmp_path / "run"), reference[1])
