"""How skarim scales with the image: one observation imaged from 2048^2 up to 32768^2.

Usage::

    python bench/scale.py [--sizes 2048,4096,8192,16384,32768] [--out DIR] [--threads N]
                          [--cell-arcsec 0.1] [--timeout S] [--keep]

One MeerKAT-like observation (1 h, 60 s integrations, 2 channels at 1.3 GHz) of a sparse,
faint sky is simulated once: for every image size, a dozen point sources and a few Gaussians
of 5-50 mJy spread over that size's field (inner 80 %), so each image holds its own sources
and the larger fields' sources put sidelobes into it. The visibilities are computed
analytically from the components (``SimulateConfig.predict = "components"``): no image of
the field is ever rendered. Each size is then imaged as its own process, ``skarim image``
deconvolving with the shipped RIM (Briggs 0, one output channel, the default tile, 4096-pixel
facets, one worker with every core: one channel's gridding and residuals are one task each),
and measured: wall and CPU time of the whole run (``/usr/bin/time``), the peak
memory of each Dask worker and of the driver (from the run's summary in its store), the
store's and the products' size on disk, and the wall time per Mpix. With ``skarim plan``
available its predictions are printed beside the measurements.

The cell is small (0.1 arcsec: 32768 pixels span 0.9 deg) so that the largest field stays
within what w-stacking grids quickly; the synthesised beam is then many pixels wide, which
changes nothing of what is measured here (memory and time against the image size).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from tools import machine_info, run_measured

from skarim.io.store import RunStore
from skarim.sim.simulate import SimulateConfig, simulate
from skarim.sim.sky import SkyModel, random_sky

SIZES = (2048, 4096, 8192, 16384, 32768)

#: The brightest source, Jy: 80 times the image noise, with sidelobes below the RIM's skip
#: threshold a few beams away, as in a deep field where most tiles hold only noise.
BRIGHTEST_JY = 0.05

#: Facets of at most 4096 pixels: every size from 4096^2 up grids facets of one size, so a
#: worker's memory is the same for all of them.
FACET_PIX = 4096


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/scale.py", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default=",".join(map(str, SIZES)), help="image sides, pixels")
    p.add_argument("--out", type=Path, default=Path("bench-scale"), help="output directory")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--cell-arcsec", type=float, default=0.1, help="pixel size, arcsec")
    p.add_argument("--timeout", type=float, default=None, help="seconds per size")
    p.add_argument("--keep", action="store_true", help="keep each size's store and products")
    return p.parse_args(argv)


def _sky(sizes: list[int], freq_hz: float, seed: int = 0) -> SkyModel:
    """Per size, 12 points and 3 Gaussians over that field, on the largest size's grid."""
    rng = np.random.default_rng(seed)
    largest = max(sizes)
    parts = []
    for n in sorted(sizes):
        sky = random_sky(
            rng, n, freq_hz, n_points=12, n_gaussians=3, brightest_jy=BRIGHTEST_JY,
            dynamic_range=10.0,
        )  # fmt: skip
        shift = (largest - n) / 2  # the same phase centre on the largest grid
        parts.append((sky.x_pix + shift, sky.y_pix + shift, sky))
    cat = lambda name: np.concatenate([getattr(s, name) for _, _, s in parts])  # noqa: E731
    return SkyModel(
        x_pix=np.concatenate([x for x, _, _ in parts]),
        y_pix=np.concatenate([y for _, y, _ in parts]),
        flux_jy=cat("flux_jy"),
        spectral_index=cat("spectral_index"),
        major_pix=cat("major_pix"),
        minor_pix=cat("minor_pix"),
        pa_rad=cat("pa_rad"),
        ref_freq_hz=freq_hz,
    )


def _du_bytes(*paths: Path) -> int:
    return sum(f.stat().st_size for p in paths if p.exists() for f in [p, *p.rglob("*")]
               if f.is_file())  # fmt: skip


def _flags(size: int, scale: str, threads: int) -> list[str]:
    """The flags of ``skarim image`` (and ``skarim plan``) for one size."""
    return ["--size", str(size), "--scale", scale, "--weight", "briggs", "0",
            "--facet-pix", str(FACET_PIX), "--workers", "1", "--threads", str(threads)]  # fmt: skip


def _plan(ms: Path, size: int, scale: str, threads: int) -> dict | None:
    """``skarim plan``'s prediction for one size, or None where there is no planner."""
    cmd = [sys.executable, "-m", "skarim", "plan", str(ms), *_flags(size, scale, threads),
           "--json"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return None
    return json.loads(out.stdout)


def _image(ms: Path, size: int, scale: str, args: argparse.Namespace) -> dict:
    work = (args.out / f"{size}").resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cmd = [sys.executable, "-m", "skarim", "image", str(ms), *_flags(size, scale, args.threads),
           "--name", "scale", "--quiet"]  # fmt: skip
    measured = run_measured(cmd, work, work / "run.log", args.timeout)
    row: dict = {"size": size, "returncode": measured.returncode, "wall_s": measured.wall_s,
                 "cpu_s": measured.cpu_s}  # fmt: skip
    store_path = work / "scale.zarr"
    if measured.returncode == 0 and store_path.exists():
        summary = RunStore.open(store_path).group.attrs["runs"][-1]
        workers = list(summary["peak_rss_bytes"].values())
        row.update(
            worker_peak_mib=max(workers) / 2**20,
            driver_peak_mib=summary["driver_peak_rss_bytes"] / 2**20,
            store_gib=_du_bytes(store_path) / 2**30,
            fits_gib=_du_bytes(*work.glob("scale-*.fits")) / 2**30,
            s_per_mpix=measured.wall_s / (size * size / 1e6),
            task_s=summary["task_s"],
        )
    row["plan"] = _plan(ms, size, scale, args.threads)
    if not args.keep:
        for path in [store_path, *work.glob("scale-*.fits")]:
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    return row


def _table(rows: list[dict]) -> str:
    head = (f"{'size':>7} {'status':>6} {'wall s':>8} {'cpu s':>8} {'worker MiB':>10} "
            f"{'driver MiB':>10} {'store GiB':>9} {'FITS GiB':>8} {'s/Mpix':>7} "
            f"{'plan MiB':>8} {'plan s':>7}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for r in rows:

        def f(key: str, fmt: str, row: dict = r) -> str:
            value = row.get(key)
            return format(value, fmt) if isinstance(value, int | float) else "-"

        plan = r.get("plan") or {}
        lines.append(
            f"{r['size']:>7} {'ok' if r['returncode'] == 0 else r['returncode']:>6} "
            f"{f('wall_s', '8.1f')} {f('cpu_s', '8.1f')} {f('worker_peak_mib', '10.0f')} "
            f"{f('driver_peak_mib', '10.0f')} {f('store_gib', '9.2f')} {f('fits_gib', '8.2f')} "
            f"{f('s_per_mpix', '7.3f')} {f('worker_mib', '8.0f', plan)} {f('wall_s', '7.0f', plan)}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Simulate once, image every size, print the table; returns the exit status."""
    args = _parse(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    args.out.mkdir(parents=True, exist_ok=True)
    ms = (args.out / "scale.ms").resolve()
    cell_rad = float(np.deg2rad(args.cell_arcsec / 3600))
    cfg = SimulateConfig(
        npix=max(SIZES), cell_rad=cell_rad, nchan=2, duration_h=1.0, integration_s=60.0,
        noise_jy=0.5, predict="components",
    )  # fmt: skip
    if not ms.exists():
        # the same observation whichever sizes are imaged: every size's sources are in it
        sim = simulate(cfg, ms, overwrite=True, sky=_sky(list(SIZES), float(cfg.freq_hz.mean())))
        print(f"simulated {sim.nrow} rows x {cfg.nchan} channels: {ms}", file=sys.stderr)
    scale = f"{args.cell_arcsec:g}asec"
    rows = []
    for size in sizes:
        rows.append(_image(ms, size, scale, args))
        print(f"[{size}] {rows[-1]}", file=sys.stderr, flush=True)
    print(_table(rows))
    m = machine_info("cpu")
    print(
        f"\n{m['cpu_model']}, {m['cpus_usable']} cores usable; 1 worker of {args.threads} "
        "thread(s); plan s: every tile deconvolved in every cycle (an upper bound)"
    )
    result = args.out / "scale.json"
    result.write_text(json.dumps({"machine": m, "rows": rows}, indent=1) + "\n")
    print(f"results: {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
