"""Peak memory of skarim's grid stage against the length of the observation.

Simulates MeerKAT-like Measurement Sets of the same array, sky and channels for each
``--durations-h`` (skipped when one exists, unless ``--resimulate``), then grids each one,
for each ``--chunk-mb``, in a fresh Python process: :func:`skarim.imaging.grid.grid_channels` over
all output channels into a new store (Briggs 0, 1024^2 pixels by default). Each process
reports the peak resident set size of its own address space (``VmHWM``; ``ru_maxrss`` would
carry the parent's from before ``exec``) before the grid stage (imports, the Measurement Set
opened, the store created) and after it, and the wall time of the stage.

The memory the grid stage adds is bounded by the read chunk (``ReadConfig.chunk_mb``) plus
the accumulators of one batch of output channels (:func:`skarim.imaging.plan.accumulator_bytes`
times :func:`skarim.imaging.plan.groups_per_batch`) plus ducc0's working memory. A Measurement Set
smaller than a chunk stays below that bound; one of two or more full chunks reaches it (the
Stokes I arrays of one chunk are still held while the next is read), and longer ones do not
go past it. Prints a table and, per chunk size, each observation's rows and peak RSS relative
to the shortest's (no assertion), and writes ``grid_memory.json``. Example::

    python bench/grid_memory.py --out runs/grid_memory --durations-h 2 8 16 --chunk-mb 32 256
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

from skarim.config import GridConfig, OutputConfig, ReadConfig, RunConfig, Weighting
from skarim.imaging.grid import grid_channels
from skarim.imaging.plan import accumulator_bytes, channel_groups, groups_per_batch
from skarim.io.ms_meta import open_ms
from skarim.run.pipeline import open_run_store
from skarim.sim.simulate import SimulateConfig, simulate

ARCSEC_RAD = math.pi / 180 / 3600
MB = 2**20


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/grid_memory"), help="work dir")
    p.add_argument("--durations-h", type=float, nargs="+", default=[2.0, 8.0, 16.0], help="hours")
    p.add_argument("--chunk-mb", type=int, nargs="+", default=[32, 256], help="read chunks, MiB")
    p.add_argument("--size", type=int, default=1024, help="image side, pixels")
    p.add_argument("--scale-asec", type=float, default=1.5, help="pixel size, arcsec")
    p.add_argument("--nchan", type=int, default=4, help="channels (= channels out)")
    p.add_argument("--integration-s", type=float, default=60.0, help="integration, seconds")
    p.add_argument("--threads", type=int, default=2, help="ducc0 threads")
    p.add_argument("--resimulate", action="store_true", help="simulate even if the MS exists")
    p.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # child: grid this MS
    p.add_argument("--measure-chunk-mb", type=int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _config(args: argparse.Namespace, ms: Path, chunk_mb: int) -> RunConfig:
    return RunConfig(
        read=ReadConfig(ms=ms, chunk_mb=chunk_mb),
        grid=GridConfig(
            npix_x=args.size,
            npix_y=args.size,
            cell_rad=args.scale_asec * ARCSEC_RAD,
            weighting=Weighting.briggs,
            robust=0.0,
            channels_out=args.nchan,
            nthreads=args.threads,
        ),
        output=OutputConfig(name=str(ms.with_suffix("")) + f"-chunk{chunk_mb}", overwrite=True),
        dirty_only=True,
        make_psf=True,
    )


def _peak_rss_mb() -> float:
    """Peak resident set size of this process's address space, MiB (Linux)."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024  # kB


def _measure(args: argparse.Namespace) -> None:
    """Child process: grid one Measurement Set, print one JSON line."""
    cfg = _config(args, args.measure, args.measure_chunk_mb)
    meta = open_ms(cfg.read)
    shutil.rmtree(cfg.output.store_path, ignore_errors=True)
    store = open_run_store(cfg, meta, overwrite=False)
    groups = channel_groups(len(meta.freq_hz), cfg.grid.channels_out)
    before = _peak_rss_mb()
    t0 = time.perf_counter()
    grid_channels(store, cfg.read, cfg.grid, groups)
    seconds = time.perf_counter() - t0
    print(json.dumps({"nrow": meta.nrow, "rss_before_mb": before, "peak_rss_mb": _peak_rss_mb(),
                      "grid_s": seconds}))  # fmt: skip
    shutil.rmtree(cfg.output.store_path, ignore_errors=True)


def _simulate(args: argparse.Namespace, hours: float) -> Path:
    ms = args.out / f"meerkat-{hours:g}h.ms"
    if args.resimulate or not ms.exists():
        width = 8e6
        cfg = SimulateConfig(
            layout="meerkat",
            dec_deg=-30.0,
            duration_h=hours,
            integration_s=args.integration_s,
            freq_start_hz=1.3e9 - width * (args.nchan - 1) / 2,
            chan_width_hz=width,
            nchan=args.nchan,
            noise_jy=1e-3,
            npix=args.size,
            cell_rad=args.scale_asec * ARCSEC_RAD,
            n_points=30,
            n_gaussians=4,
            seed=1,
        )
        simulate(cfg, ms, overwrite=True, nthreads=args.threads)
    return ms


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.measure is not None:
        _measure(args)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    ms_paths = {hours: _simulate(args, hours) for hours in args.durations_h}
    grid = _config(args, next(iter(ms_paths.values())), args.chunk_mb[0]).grid
    batch = groups_per_batch(grid)
    accum_mb = batch * accumulator_bytes(grid) / MB
    print(f"{batch} output channel(s) per batch, accumulators {accum_mb:.0f} MiB")
    rows = []
    for chunk_mb in args.chunk_mb:
        for hours, ms in ms_paths.items():
            cmd = [sys.executable, __file__, "--measure", str(ms), "--measure-chunk-mb",
                   str(chunk_mb), "--size", str(args.size), "--scale-asec", str(args.scale_asec),
                   "--nchan", str(args.nchan), "--threads", str(args.threads)]  # fmt: skip
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            row = {"hours": hours, "chunk_mb": chunk_mb, **json.loads(out.splitlines()[-1])}
            row["ms_mb"] = sum(f.stat().st_size for f in ms.rglob("*") if f.is_file()) / MB
            row["grid_added_mb"] = row["peak_rss_mb"] - row["rss_before_mb"]
            rows.append(row)
            print(
                f"{hours:5g} h {row['nrow']:>9} rows {row['ms_mb']:7.0f} MiB MS  chunk "
                f"{chunk_mb:4d} MiB: peak RSS {row['peak_rss_mb']:6.0f} MiB (before the grid "
                f"stage {row['rss_before_mb']:4.0f}, added {row['grid_added_mb']:5.0f}), "
                f"grid {row['grid_s']:5.1f} s"
            )
    ratios = {}
    for chunk_mb in args.chunk_mb:
        mine = sorted((r for r in rows if r["chunk_mb"] == chunk_mb), key=lambda r: r["hours"])
        ratios[chunk_mb] = {
            f"{r['hours']:g}h": {
                "rows": r["nrow"] / mine[0]["nrow"],
                "peak_rss": r["peak_rss_mb"] / mine[0]["peak_rss_mb"],
                "grid_added": r["grid_added_mb"] / mine[0]["grid_added_mb"],
            }
            for r in mine
        }
        listed = ", ".join(
            f"{h}: rows x{v['rows']:.1f}, peak RSS x{v['peak_rss']:.2f}"
            for h, v in ratios[chunk_mb].items()
        )
        print(f"chunk {chunk_mb} MiB, relative to {mine[0]['hours']:g} h: {listed}")
    result = {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows, "ratios": ratios,
              "batch": batch, "accumulators_mb": accum_mb}  # fmt: skip
    (args.out / "grid_memory.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
