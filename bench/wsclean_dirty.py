"""skarim's dirty cube against WSClean 3.x's dirty images of one simulated MeerKAT-like MS.

The "done when" of the dirty-imaging issue: on a simulated MeerKAT-like Measurement Set
(1024^2 pixels, 1.5 arcsec, 4 channels, Briggs 0) skarim's dirty cube matches WSClean's
(``-weight briggs 0 -channels-out 4 -use-wgridder``) to 1e-3 of the peak, channel by channel.

Steps, all in ``--out``:

1. simulate ``sim.ms`` with :func:`skarim.sim.simulate.simulate` (skipped when it exists, unless
   ``--resimulate``);
2. image it with skarim: the grid stage (:func:`skarim.imaging.grid.grid_channels` over all output
   channels, into a fresh store) timed with the ducc0 calls inside it, then
   :func:`skarim.run.pipeline.run_imaging` (``dirty_only``, ``make_psf``), which resumes from
   that store and writes the FITS cubes; the process's peak RSS is taken after this step (a
   simulation in the same process, step 1, comes before it: reuse the MS to measure skarim
   alone);
3. image it with ``wsclean`` (one dirty image and PSF per channel), timing the wall clock;
4. compare per channel: ``max |skarim - wsclean| / max |wsclean|`` over the whole image and
   its inner 80 %, and the same for the PSF over skarim's ``2 tile x 2 tile`` box (centred);
5. time raw ``ducc0.wgridder.vis2dirty`` on the same Stokes I visibilities and imaging
   weights, all rows in memory, same epsilon and threads.

Prints a table and writes ``wsclean_dirty.json``. Example::

    python bench/wsclean_dirty.py --out runs/wsclean_dirty --size 1024 --duration-h 4
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import ducc0
import ducc0.wgridder as wg
import numpy as np
from astropy.io import fits
from casacore import tables

import skarim.imaging.grid
from skarim import __version__
from skarim.config import GridConfig, OutputConfig, ReadConfig, RunConfig, Weighting
from skarim.imaging.grid import grid_channels
from skarim.imaging.plan import channel_groups
from skarim.imaging.weighting import WeightGrid
from skarim.imaging.wgridder import Block, block_centre_rad
from skarim.io.ms_meta import open_ms
from skarim.io.ms_read import iter_chunks
from skarim.run.pipeline import open_run_store, run_imaging
from skarim.sim.simulate import SimulateConfig, simulate

ARCSEC_RAD = math.pi / 180 / 3600


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/wsclean_dirty"), help="work dir")
    p.add_argument("--size", type=int, default=1024, help="image side, pixels")
    p.add_argument("--scale-asec", type=float, default=1.5, help="pixel size, arcsec")
    p.add_argument("--nchan", type=int, default=4, help="channels (= channels out)")
    p.add_argument("--chan-width-hz", type=float, default=8e6, help="channel width and step")
    p.add_argument("--centre-hz", type=float, default=1.3e9, help="centre of the band")
    p.add_argument("--duration-h", type=float, default=4.0, help="track length, hours")
    p.add_argument("--integration-s", type=float, default=60.0, help="integration, seconds")
    p.add_argument("--dec-deg", type=float, default=-30.0, help="declination of the field")
    p.add_argument("--noise-jy", type=float, default=1e-3, help="noise per correlation, Jy")
    p.add_argument("--seed", type=int, default=1, help="sky and noise seed")
    p.add_argument("--robust", type=float, default=0.0, help="Briggs robustness")
    p.add_argument("--tile", type=int, default=256, help="skarim tile side, pixels")
    p.add_argument("--epsilon", type=float, default=1e-5, help="skarim/ducc0 accuracy")
    p.add_argument(
        "--wgridder-accuracy", type=float, default=1e-6, help="WSClean -wgridder-accuracy"
    )
    p.add_argument("--threads", type=int, default=2, help="threads for every gridder")
    p.add_argument("--chunk-mb", type=int, default=256, help="skarim read chunk, MiB")
    p.add_argument(
        "--chunk-rows", type=int, default=None, help="skarim rows per read chunk (overrides MiB)"
    )
    p.add_argument(
        "--hand-weight-scatter",
        type=float,
        default=0.0,
        help="draw each row's XX and YY weights independently from w * U(1 - s, 1 + s) "
        "(0: equal weights; > 0 tests the Stokes I weight formula)",
    )
    p.add_argument("--wsclean", default="wsclean", help="WSClean executable")
    p.add_argument("--wsclean-extra", default="", help="more WSClean arguments, one string")
    p.add_argument("--resimulate", action="store_true", help="simulate even if sim.ms exists")
    p.add_argument("--skip-wsclean", action="store_true", help="reuse WSClean's images in --out")
    p.add_argument("--tolerance", type=float, default=1e-3, help="pass mark, fraction of peak")
    return p.parse_args(argv)


def _simulate(args: argparse.Namespace, ms: Path) -> dict:
    width = args.chan_width_hz
    cfg = SimulateConfig(
        layout="meerkat",
        dec_deg=args.dec_deg,
        duration_h=args.duration_h,
        integration_s=args.integration_s,
        freq_start_hz=args.centre_hz - width * (args.nchan - 1) / 2,
        chan_width_hz=width,
        nchan=args.nchan,
        noise_jy=args.noise_jy,
        npix=args.size,  # sources anywhere in the inner 80 % of the image
        cell_rad=args.scale_asec * ARCSEC_RAD,
        n_points=30,
        n_gaussians=4,
        seed=args.seed,
    )
    t0 = time.perf_counter()
    if args.resimulate or not ms.exists():
        res = simulate(cfg, ms, args.out / "truth.fits", overwrite=True, nthreads=args.threads)
        nrow = res.nrow
        if args.hand_weight_scatter > 0:
            _scatter_hand_weights(ms, args.hand_weight_scatter, args.seed)
    else:
        nrow = open_ms(ReadConfig(ms=ms)).nrow
    seconds = time.perf_counter() - t0
    size_mb = sum(f.stat().st_size for f in ms.rglob("*") if f.is_file()) / 1e6
    if not (ms / "table.lock").exists():
        raise SystemExit(f"{ms} has no table.lock: WSClean will refuse it")
    return {"config": cfg.model_dump(), "nrow": nrow, "size_mb": size_mb, "seconds": seconds}


def _scatter_hand_weights(ms: Path, scatter: float, seed: int) -> None:
    """Give XX and YY of every row independent weights ``w * U(1 - s, 1 + s)``."""
    with tables.table(str(ms), readonly=False, ack=False) as t:
        weight = t.getcol("WEIGHT")  # (nrow, ncorr)
        rng = np.random.default_rng(seed + 1)
        factor = rng.uniform(1 - scatter, 1 + scatter, weight.shape).astype(np.float32)
        weight *= factor
        t.putcol("WEIGHT", weight)
        t.putcol("SIGMA", 1 / np.sqrt(weight))


def _run_skarim(args: argparse.Namespace, ms: Path) -> tuple[RunConfig, dict]:
    """Image with skarim; time the grid stage and the ducc0 calls inside it."""
    cfg = RunConfig(
        read=ReadConfig(ms=ms, chunk_mb=args.chunk_mb, chunk_rows=args.chunk_rows),
        grid=GridConfig(
            npix_x=args.size,
            npix_y=args.size,
            cell_rad=args.scale_asec * ARCSEC_RAD,
            weighting=Weighting.briggs,
            robust=args.robust,
            channels_out=args.nchan,
            tile=args.tile,
            epsilon=args.epsilon,
            nthreads=args.threads,
        ),
        output=OutputConfig(name=str(args.out / "skarim"), overwrite=True),
        dirty_only=True,
        make_psf=True,
    )
    shutil.rmtree(cfg.output.store_path, ignore_errors=True)  # no resume: time a full run
    timers = {"ducc0_in_grid_s": 0.0}
    vis_to_image = skarim.imaging.grid.vis_to_image

    def timed_vis_to_image(*a, **k):
        t0 = time.perf_counter()
        try:
            return vis_to_image(*a, **k)
        finally:
            timers["ducc0_in_grid_s"] += time.perf_counter() - t0

    t0 = time.perf_counter()
    meta = open_ms(cfg.read)
    store = open_run_store(cfg, meta, overwrite=True)
    groups = channel_groups(len(meta.freq_hz), cfg.grid.channels_out)
    skarim.imaging.grid.vis_to_image = timed_vis_to_image
    try:
        t1 = time.perf_counter()
        grid_channels(store, cfg.read, cfg.grid, groups)
        timers["grid_stage_s"] = time.perf_counter() - t1
    finally:
        skarim.imaging.grid.vis_to_image = vis_to_image
    run_imaging(cfg)  # resumes: every tile is gridded; writes the FITS cubes
    timers["run_imaging_s"] = time.perf_counter() - t0
    timers["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return cfg, timers


def _wsclean_command(args: argparse.Namespace, ms: Path) -> list[str]:
    return [
        args.wsclean,
        "-j", str(args.threads),
        "-size", str(args.size), str(args.size),
        "-scale", f"{args.scale_asec}asec",
        "-weight", "briggs", str(args.robust),
        "-channels-out", str(args.nchan),
        "-use-wgridder",
        "-wgridder-accuracy", str(args.wgridder_accuracy),
        "-no-small-inversion",
        "-make-psf",
        *args.wsclean_extra.split(),
        "-name", "wsclean",
        ms.name,
    ]  # fmt: skip


def _run_wsclean(args: argparse.Namespace, ms: Path) -> dict:
    cmd = _wsclean_command(args, ms)
    if args.skip_wsclean:
        return {"command": cmd, "wall_s": None}
    for old in args.out.glob("wsclean-*.fits"):
        old.unlink()
    t0 = time.perf_counter()
    with open(args.out / "wsclean.log", "w") as log:
        proc = subprocess.run(cmd, cwd=args.out, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"wsclean failed ({proc.returncode}); see {args.out / 'wsclean.log'}")
    return {"command": cmd, "wall_s": wall}


def _max_rel(a: np.ndarray, b: np.ndarray, frac: float = 1.0) -> float:
    """``max |a - b| / max |b|`` over the central ``frac`` of both axes."""
    ny, nx = b.shape
    cy, cx = int(round(ny * (1 - frac) / 2)), int(round(nx * (1 - frac) / 2))
    sl = np.s_[cy : ny - cy, cx : nx - cx]
    return float(np.max(np.abs(a[sl] - b[sl])) / np.max(np.abs(b)))


def _compare(args: argparse.Namespace, cfg: RunConfig) -> list[dict]:
    with fits.open(cfg.output.product_path("dirty")) as h:
        dirty = h[0].data[0].astype(np.float64)  # (chan, y, x)
        sk_hdr = h[0].header
    with fits.open(cfg.output.product_path("psf")) as h:
        psf = h[0].data[0].astype(np.float64)  # (chan, 2t, 2t)
    n, t = args.size, args.tile
    h_psf = min(t, n // 2)  # half side of the PSF box compared, centred on the phase centre
    psf = psf[:, t - h_psf : t + h_psf, t - h_psf : t + h_psf]
    box = np.s_[n // 2 - h_psf : n // 2 + h_psf, n // 2 - h_psf : n // 2 + h_psf]
    rows = []
    for c in range(args.nchan):
        with fits.open(args.out / f"wsclean-{c:04d}-dirty.fits") as h:
            ws = h[0].data[0, 0].astype(np.float64)  # (y, x)
            ws_hdr = h[0].header
        with fits.open(args.out / f"wsclean-{c:04d}-psf.fits") as h:
            ws_psf = h[0].data[0, 0].astype(np.float64)[box]  # (2 h_psf, 2 h_psf)
        sk_freq = sk_hdr["CRVAL3"] + (c + 1 - sk_hdr["CRPIX3"]) * sk_hdr["CDELT3"]
        peak = np.unravel_index(np.argmax(np.abs(ws)), ws.shape)
        rows.append(
            {
                "chan": c,
                "freq_hz_skarim": float(sk_freq),
                "freq_hz_wsclean": float(ws_hdr["CRVAL3"]),
                "crpix_skarim": [sk_hdr["CRPIX1"], sk_hdr["CRPIX2"]],
                "crpix_wsclean": [ws_hdr["CRPIX1"], ws_hdr["CRPIX2"]],
                "peak_wsclean": float(ws[peak]),
                "peak_skarim_same_pixel": float(dirty[c][peak]),
                "peak_pixel_yx": [int(peak[0]), int(peak[1])],
                "dirty_full": _max_rel(dirty[c], ws),
                "dirty_inner80": _max_rel(dirty[c], ws, 0.8),
                "dirty_rms_rel": float(np.sqrt(np.mean((dirty[c] - ws) ** 2)) / np.max(np.abs(ws))),
                "psf_full": _max_rel(psf[c], ws_psf),
                "psf_inner80": _max_rel(psf[c], ws_psf, 0.8),
                "psf_peak_wsclean": float(ws_psf[h_psf, h_psf]),
            }
        )
    return rows


def _raw_ducc0(args: argparse.Namespace, cfg: RunConfig) -> dict:
    """Time raw vis2dirty (dirty and PSF) on Stokes I read into memory once."""
    t0 = time.perf_counter()
    meta = open_ms(cfg.read)
    read_all = cfg.read.model_copy(update={"chunk_rows": meta.nrow})
    (chunk,) = list(iter_chunks(meta, read_all, precision="single"))
    read_s = time.perf_counter() - t0
    n, t, cell = args.size, args.tile, cfg.grid.cell_rad
    weights_s = dirty_s = psf_s = 0.0
    with fits.open(cfg.output.product_path("dirty")) as h:
        sk_dirty = h[0].data[0]
    agree = []
    for g in channel_groups(len(meta.freq_hz), cfg.grid.channels_out):
        t0 = time.perf_counter()
        freq = meta.freq_hz[g.start : g.stop]
        vis = np.ascontiguousarray(chunk.vis[:, g.start : g.stop])  # (nrow, nchan_g)
        nat = np.ascontiguousarray(chunk.weight[:, g.start : g.stop])
        grid = WeightGrid(
            npix_x=n, npix_y=n, cell_rad=cell, weighting=cfg.grid.weighting, robust=args.robust
        )
        grid.add(chunk.uvw_m, freq, nat)
        grid.finalize()
        w = grid.imaging_weights(chunk.uvw_m, freq, nat).astype(np.float32)
        weights_s += time.perf_counter() - t0
        common = dict(
            uvw=chunk.uvw_m, freq=freq, wgt=w, epsilon=args.epsilon, do_wgridding=True,
            flip_u=True, flip_v=True, divide_by_n=False, nthreads=args.threads,
        )  # fmt: skip
        cx, cy = block_centre_rad(Block.full(n, n, cell))
        t0 = time.perf_counter()
        img = wg.vis2dirty(
            vis=vis, npix_x=n, npix_y=n, pixsize_x=cell, pixsize_y=cell,
            center_x=-cx, center_y=-cy, **common,
        )  # fmt: skip
        dirty_s += time.perf_counter() - t0
        cx, cy = block_centre_rad(Block.centred(2 * t, cell))
        t0 = time.perf_counter()
        wg.vis2dirty(
            vis=np.ones_like(vis), npix_x=2 * t, npix_y=2 * t, pixsize_x=cell, pixsize_y=cell,
            center_x=-cx, center_y=-cy, **common,
        )  # fmt: skip
        psf_s += time.perf_counter() - t0
        raw = img.T[:, ::-1] / w.sum(dtype=np.float64)  # (y, x) FITS order, Jy/beam
        agree.append(_max_rel(sk_dirty[g.index], raw))
    return {
        "read_all_rows_s": read_s,
        "weights_s": weights_s,
        "vis2dirty_dirty_s": dirty_s,
        "vis2dirty_psf_s": psf_s,
        "vis2dirty_total_s": dirty_s + psf_s,
        "skarim_vs_raw_max_rel": agree,
    }


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    scatter = args.hand_weight_scatter
    ms = args.out / (f"sim-scatter{scatter:g}.ms" if scatter > 0 else "sim.ms")
    sim = _simulate(args, ms)
    print(f"MS {ms}: {sim['nrow']} rows, {sim['size_mb']:.0f} MB ({sim['seconds']:.0f} s)")
    cfg, sk = _run_skarim(args, ms)
    print(
        f"skarim grid stage {sk['grid_stage_s']:.1f} s (ducc0 {sk['ducc0_in_grid_s']:.1f} s), "
        f"process peak RSS {sk['peak_rss_mb']:.0f} MB"
    )
    ws = _run_wsclean(args, ms)
    print("wsclean:", " ".join(ws["command"]), f"({ws['wall_s'] or 0:.1f} s)")
    rows = _compare(args, cfg)
    raw = _raw_ducc0(args, cfg)

    print(f"\n{'chan':>4} {'freq MHz':>9} {'dirty full':>11} {'inner 80%':>10} "
          f"{'psf full':>10} {'inner 80%':>10}")  # fmt: skip
    for r in rows:
        print(
            f"{r['chan']:>4} {r['freq_hz_wsclean'] / 1e6:>9.3f} {r['dirty_full']:>11.2e} "
            f"{r['dirty_inner80']:>10.2e} {r['psf_full']:>10.2e} {r['psf_inner80']:>10.2e}"
        )
    worst = max(max(r["dirty_full"], r["psf_full"]) for r in rows)
    passed = worst <= args.tolerance
    print(f"worst {worst:.2e} of the peak: {'PASS' if passed else 'FAIL'} (<= {args.tolerance})")
    timing = {
        "skarim_grid_stage_s": sk["grid_stage_s"],
        "skarim_ducc0_calls_s": sk["ducc0_in_grid_s"],
        "skarim_run_imaging_s": sk["run_imaging_s"],
        "skarim_peak_rss_mb": sk["peak_rss_mb"],
        "raw_vis2dirty_s": raw["vis2dirty_total_s"],
        "wsclean_wall_s": ws["wall_s"],
        "grid_stage_over_raw": sk["grid_stage_s"] / raw["vis2dirty_total_s"],
        "run_imaging_over_wsclean": sk["run_imaging_s"] / ws["wall_s"] if ws["wall_s"] else None,
    }
    print(
        f"timing: skarim grid stage {timing['skarim_grid_stage_s']:.1f} s, raw vis2dirty "
        f"{timing['raw_vis2dirty_s']:.1f} s (x{timing['grid_stage_over_raw']:.2f}), "
        f"run_imaging {timing['skarim_run_imaging_s']:.1f} s, wsclean {ws['wall_s'] or 0:.1f} s"
    )
    result = {
        "versions": {
            "skarim": __version__,
            "ducc0": ducc0.__version__,
            "wsclean": subprocess.run(
                [args.wsclean, "--version"], capture_output=True, text=True
            ).stdout.splitlines()[0]
            if shutil.which(args.wsclean)
            else None,
            "python": platform.python_version(),
        },
        "argv": sys.argv,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "simulation": sim,
        "wsclean": ws,
        "channels": rows,
        "timing": timing,
        "raw_ducc0": raw,
        "worst": worst,
        "pass": passed,
    }
    (args.out / "wsclean_dirty.json").write_text(json.dumps(result, indent=2, default=str))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
