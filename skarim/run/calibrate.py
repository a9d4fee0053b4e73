"""``skarim plan --calibrate``: a machine's :class:`~skarim.run.costs.Costs`, from real workloads.

:func:`calibrate` runs the workloads in a fresh Python process (``python -m
skarim.run.calibrate OUT``), so that the memory each adds is measured against a known
process, and reads the costs back. On one thread each:

- ducc0 (:func:`skarim.imaging.wgridder.vis_to_image`) on two geometries, a large image with
  few visibilities and a small one with many: seconds and working bytes per image pixel and
  per visibility, the two unknowns of two measurements; then on every core: what threads
  beyond the first add is one thread's CPU time over theirs (the threads' own overhead, not
  the load of other work on the machine);
- a Briggs :class:`~skarim.imaging.weighting.WeightGrid` over synthetic visibilities;
- a Measurement Set written with :func:`skarim.io.ms_write.write_ms` (from the page cache)
  read by :func:`skarim.io.ms_read.iter_chunks`;
- a plane through a run store, to FITS, and restored;
- the shipped RIM on a window of the default tile (and on a GPU when torch sees one), and
  Hogbom minor iterations on the same window;
- a smallest dirty-only run (``--scheduler sync``) in its own process, for the time a run
  takes whatever its size and that process's peak memory, and an idle Dask worker with
  skarim's tasks imported, then the RIM loaded.

A memory delta is the peak resident memory (``VmHWM``, reset through
``/proc/self/clear_refs``) over the resident memory before the workload. About a minute on
two cores; ``quick`` shrinks the workloads and takes a Dask worker as large as the smallest
run's process (for tests: about 20 s).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter, process_time

import numpy as np

from skarim import __version__
from skarim.run.costs import Costs, load_costs, save_costs
from skarim.run.runner import peak_rss_bytes

__all__ = ["calibrate"]

_CELL_RAD = float(np.deg2rad(1 / 3600))
_FREQ_HZ = 1.4e9


def calibrate(quick: bool = False) -> Costs:
    """Measure this machine's costs (module docstring); progress goes to stderr.

    Parameters
    ----------
    quick : bool
        Smaller workloads and no Dask worker: coarser costs, in about 20 s.

    Returns
    -------
    Costs
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "costs.json"
        cmd = [sys.executable, "-m", "skarim.run.calibrate", str(out)]
        subprocess.run([*cmd, "--quick"] if quick else cmd, check=True)
        return load_costs(out)


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class _Measured:
    """Wall and CPU time, and peak memory over the resident memory at entry (Linux)."""

    def __enter__(self) -> _Measured:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        self.before = _rss()
        self.start, self.cpu = perf_counter(), process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = perf_counter() - self.start
        self.cpu_seconds = process_time() - self.cpu
        self.bytes = max(0, peak_rss_bytes() - self.before)


def _say(msg: str) -> None:
    print(f"calibrate: {msg}", file=sys.stderr, flush=True)


def _ducc(quick: bool) -> dict[str, float]:
    """Seconds and bytes of a ducc0 call per image pixel and per visibility."""
    from skarim.imaging.wgridder import Block, vis_to_image

    rng = np.random.default_rng(0)
    cases = [(2048, 50_000), (512, 400_000 if quick else 2_000_000)]
    rows, secs, mems, calls = [], [], [], []
    for npix, nvis in cases:
        uvw = rng.uniform(-3000.0, 3000.0, (nvis, 3))
        uvw[:, 2] *= 0.05
        vis = (rng.normal(size=(nvis, 1)) + 0j).astype(np.complex64)
        weight = np.ones((nvis, 1), np.float32)
        args = dict(uvw_m=uvw, freq_hz=np.array([_FREQ_HZ]), vis=vis, weight=weight,
                    block=Block.full(npix, npix, _CELL_RAD), epsilon=1e-4)  # fmt: skip
        first, second = _Measured(), _Measured()
        for m in (first, second):  # the first call's memory (cold), the faster call's time
            with m:
                vis_to_image(**args)
        rows.append([npix * npix, nvis])
        secs.append(min(first.seconds, second.seconds))
        mems.append(first.bytes)
        calls.append(args)
    # the large image on every core: the CPU time its threads spend against one thread's
    # (the threads' own overhead, whatever else shares the machine)
    cores = len(os.sched_getaffinity(0))
    with _Measured() as one:
        vis_to_image(**calls[0])
    with _Measured() as every:
        vis_to_image(**calls[0], nthreads=cores)
    efficiency = one.cpu_seconds / every.cpu_seconds if cores > 1 else 1.0
    pix_s, vis_s = np.linalg.solve(np.array(rows, float), secs)
    pix_b, vis_b = np.linalg.solve(np.array(rows, float), mems)
    return {"ducc_pixel_s": max(pix_s, 1e-12), "ducc_vis_s": max(vis_s, 1e-12),
            "ducc_pixel_bytes": max(pix_b, 8.0), "ducc_vis_bytes": max(vis_b, 0.0),
            "thread_efficiency": min(max(efficiency, 0.0), 1.0)}  # fmt: skip


def _weights(quick: bool) -> float:
    """Seconds per visibility of a Briggs grid's sums and of its imaging weights."""
    from skarim.config import Weighting
    from skarim.imaging.weighting import WeightGrid

    rng = np.random.default_rng(1)
    nvis = 200_000 if quick else 1_000_000
    uvw = rng.uniform(-3000.0, 3000.0, (nvis, 3))
    weight = np.ones((nvis, 1), np.float32)
    freq = np.array([_FREQ_HZ])
    start = perf_counter()
    grid = WeightGrid(npix_x=2048, npix_y=2048, cell_rad=_CELL_RAD, weighting=Weighting.briggs)
    grid.add(uvw, freq, weight)
    grid.finalize()
    grid.imaging_weights(uvw, freq, weight)
    return (perf_counter() - start) / (2 * nvis)


def _write_ms(path: Path, rows: int, nchan: int) -> None:
    from skarim.io.ms_write import SpectralWindow, write_ms

    rng = np.random.default_rng(2)
    nant = 16
    a1, a2 = np.triu_indices(nant, 1)
    idx = np.arange(rows) % len(a1)
    data = (rng.normal(size=(rows, nchan, 4)) + 0j).astype(np.complex64)
    write_ms(
        path, antenna_itrf_m=np.array([5e6, 2e6, -3e6]) + rng.normal(size=(nant, 3)) * 1e3,
        antenna_names=[f"C{i}" for i in range(nant)], antenna_diameter_m=np.full(nant, 13.5),
        telescope="CALIBRATION", time_s=5.0e9 + (np.arange(rows) // len(a1)) * 8.0,
        ant1=a1[idx], ant2=a2[idx], uvw_m=rng.uniform(-3000.0, 3000.0, (rows, 3)),
        spectral_windows=[SpectralWindow(_FREQ_HZ + 1e6 * np.arange(nchan), 1e6)], data=data,
        corr_types=("XX", "XY", "YX", "YY"), weight=np.ones((rows, 4), np.float32),
        phase_dirs_rad=np.array([[1.0, -0.5]]),
    )  # fmt: skip


def _read(ms: Path) -> float:
    """Seconds per byte of whole cells read, Stokes I formed."""
    from skarim.config import ReadConfig
    from skarim.io.ms_meta import open_ms
    from skarim.io.ms_read import iter_chunks

    read = ReadConfig(ms=ms, chunk_mb=8)
    meta = open_ms(read)
    start = perf_counter()
    for _ in iter_chunks(meta, read):
        pass
    seconds = perf_counter() - start
    cells = meta.nrow * (len(meta.freq_hz) * 4 * 9 + 16 + 25)
    return seconds / cells


def _store_and_products(work: Path) -> dict[str, float]:
    """A plane through the store, to FITS, and restored: seconds per pixel."""
    from skarim.beam import Beam
    from skarim.io.fits import write_cube
    from skarim.io.store import RunStore
    from skarim.io.wcs import ImageWCS
    from skarim.restore.restore import restore_bands

    n, tile = 2048, 256
    wcs = ImageWCS(npix_x=n, npix_y=n, cell_rad=_CELL_RAD, ra_rad=1.0, dec_rad=-0.5,
                   freq_hz=np.array([_FREQ_HZ]), chan_width_hz=np.array([1e6]))  # fmt: skip
    store = RunStore.open_or_create(work / "calibrate.zarr", config={}, ms_fingerprint={},
                                    wcs=wcs, tile=tile, gridder_conventions={})  # fmt: skip
    plane = np.random.default_rng(3).normal(size=(n, n)).astype(np.float32)
    arr = store.array("dirty")
    start = perf_counter()
    for y in range(0, n, tile):
        arr[0, y : y + tile] = plane[y : y + tile]
    for y in range(0, n, tile):
        arr[0, y : y + tile]
    store_s = (perf_counter() - start) / n**2
    beam = Beam(5 / 3600, 4 / 3600, 30.0)
    rows = lambda y0, y1: arr[0, y0:y1]  # noqa: E731
    start = perf_counter()
    bands = (rows(y, min(y + tile, n)) for y in range(0, n, tile))
    write_cube(work / "calibrate.fits", bands, wcs, bunit="JY/BEAM", beam=beam)
    fits_s = (perf_counter() - start) / n**2
    start = perf_counter()
    for _ in restore_bands(rows, rows, beam, _CELL_RAD, (n, n), tile):
        pass
    restore_s = (perf_counter() - start) / n**2
    return {"store_pixel_s": store_s, "fits_pixel_s": fits_s, "restore_pixel_s": restore_s}


def _deconvolvers(quick: bool) -> dict[str, float]:
    """The RIM (CPU, and GPU when present) and Hogbom on a window of the default tile."""
    import torch

    from skarim.config import DeconvConfig, GridConfig
    from skarim.deconv.clean import hogbom
    from skarim.deconv.device import select_device
    from skarim.deconv.rim_deconvolver import deconvolve_windows
    from skarim.deconv.tiles import fit_psf
    from skarim.deconv.weights import cached_rim

    torch.set_num_threads(1)
    w = (64 if quick else GridConfig.model_fields["tile"].default) + 2 * DeconvConfig().margin
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[-w:w, -w:w]
    psf = np.exp(-0.5 * (xx**2 + yy**2) / 3.0**2).astype(np.float32)  # (2w, 2w), peak at (w, w)
    window = rng.normal(size=(1, w, w)).astype(np.float32)
    window[0, w // 3, w // 2] += 50.0
    out = {}
    for name in ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",):
        dev = select_device(name, "auto")
        model = cached_rim(None, dev.device, dev.dtype)
        times = []
        for _ in range(2):
            with _Measured() as m:
                deconvolve_windows(model, window, psf, 1.0, dev.device)
                if name == "cuda":
                    torch.cuda.synchronize()
            times.append(m.seconds)
            if name == "cpu" and "rim_pixel_bytes" not in out:
                out["rim_pixel_bytes"] = m.bytes / w**2  # the first call: cold
        key = "rim_pixel_step_s" if name == "cpu" else "rim_gpu_pixel_step_s"
        out[key] = min(times) / (w * w * model.config.steps)
    out.setdefault("rim_gpu_pixel_step_s", 0.0)
    iterations = 100 if quick else 400
    with _Measured() as m:
        hogbom(window[0], fit_psf(psf, w), 1e-12, threshold_sigma=0.0, max_iter=iterations)
    out["hogbom_pixel_iteration_s"] = m.seconds / (iterations * w * w)
    return out


def _smallest_run(work: Path, found: dict[str, float]) -> dict[str, float]:
    """A 256^2 dirty-only run of a small MS in its own process: its wall time and peak memory.

    The run's pre-flight check reads the costs measured so far (the rest 0) from a
    configuration directory of its own, not the user's.
    """
    ms = work / "smallest.ms"
    _write_ms(ms, 1_200, 4)
    unknown = dict.fromkeys(("run_s", "cluster_start_s"), 0.0)
    unknown.update(dict.fromkeys(("process_bytes", "worker_bytes", "worker_torch_bytes"), 0))
    save_costs(_costs({**found, **unknown}), work / "config" / "skarim" / "costs.json")
    code = "import sys; from skarim.run.calibrate import _run_child; _run_child(sys.argv[1])"
    env = {**os.environ, "XDG_CONFIG_HOME": str(work / "config")}
    done = subprocess.run([sys.executable, "-c", code, str(ms)], check=True,
                          capture_output=True, text=True, env=env)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def _run_child(ms: str) -> None:
    from skarim.config import ClusterConfig, GridConfig, OutputConfig, ReadConfig, RunConfig
    from skarim.run.pipeline import run_imaging

    name = str(Path(ms).with_name("smallest"))
    cfg = RunConfig(
        read=ReadConfig(ms=Path(ms)),
        grid=GridConfig(npix_x=256, npix_y=256, cell_rad=_CELL_RAD, tile=64),
        output=OutputConfig(name=name, overwrite=True),
        cluster=ClusterConfig(kind="sync"),
        dirty_only=True,
    )
    result = run_imaging(cfg)
    print(json.dumps({"run_s": result.summary["wall_s"], "process_bytes": peak_rss_bytes()}))


def _tasks_worker() -> int:
    """In a Dask worker: import skarim's tasks; the worker's peak memory."""
    import skarim.run.tasks  # noqa: F401

    return peak_rss_bytes()


def _torch_worker() -> int:
    """In a Dask worker: load torch and the RIM; the worker's peak memory."""
    import torch

    from skarim.deconv.weights import cached_rim

    cached_rim(None, torch.device("cpu"))
    return peak_rss_bytes()


def _idle_worker() -> dict[str, float]:
    """A local Dask cluster of one worker: the time to start it and load skarim's tasks and
    the RIM in the worker; the worker's memory with the tasks, and what the RIM adds."""
    from distributed import Client, LocalCluster

    from skarim.run.workers import NANNY_PRELOAD

    logging.getLogger("distributed").setLevel(logging.CRITICAL)  # closing's heartbeat errors
    start = perf_counter()
    cluster = LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        preload_nanny=[NANNY_PRELOAD],
    )
    with cluster, Client(cluster) as client:
        tasks = max(client.run(_tasks_worker).values())
        loaded = max(client.run(_torch_worker).values())
        seconds = perf_counter() - start
    return {"cluster_start_s": seconds, "worker_bytes": tasks, "worker_torch_bytes": loaded - tasks}


def _machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{model}, {len(os.sched_getaffinity(0))} cores, {memory:.0f} GiB"


def _measure(work: Path, quick: bool) -> Costs:
    found: dict[str, float] = {}
    ms, rows = work / "calibrate.ms", 8_000 if quick else 24_000
    steps = [
        ("ducc0", lambda: _ducc(quick)),  # first: its memory measured in a fresh process
        ("RIM and Hogbom", lambda: _deconvolvers(quick)),
        ("imaging weights", lambda: {"weights_vis_s": _weights(quick)}),
        ("store and FITS", lambda: _store_and_products(work)),
        ("Measurement Set", lambda: _write_ms(ms, rows, 64)),
        ("read", lambda: {"read_byte_s": _read(ms)}),
        ("smallest run", lambda: _smallest_run(work, found)),
    ]  # fmt: skip
    if quick:  # no Dask worker: taken as large as the smallest run's process
        found.update(cluster_start_s=0.0, worker_bytes=0, worker_torch_bytes=0)
    else:
        steps.append(("Dask worker", _idle_worker))
    for name, step in steps:
        start = perf_counter()
        found.update(step() or {})
        _say(f"{name}: {perf_counter() - start:.1f} s")
    if quick:
        found["worker_bytes"] = found["process_bytes"]
    return _costs(found)


def _costs(found: dict[str, float]) -> Costs:
    date = datetime.now(UTC).date().isoformat()
    sizes = {k: int(found[k]) for k in ("process_bytes", "worker_bytes", "worker_torch_bytes")}
    return Costs(
        machine=_machine(), measured=f"{date}, skarim {__version__}", epsilon=1e-4,
        **{**found, **sizes},
    )  # fmt: skip


def _main(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        costs = _measure(Path(tmp), "--quick" in argv)
    save_costs(costs, Path(argv[0]))


if __name__ == "__main__":
    _main(sys.argv[1:])
