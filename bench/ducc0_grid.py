"""Raw ducc0 baseline: read a Measurement Set once with python-casacore, grid Stokes I.

Run as its own process by ``bench/run.py`` so its wall time and peak memory are those of a
whole process doing the least a gridder must: read every row of ``DATA``, ``FLAG``,
``FLAG_ROW``, ``UVW`` and the weights at once, form Stokes I and its natural weights as
skarim does (DESIGN section 2), and call ``ducc0.wgridder.vis2dirty`` once per output
channel group on the full image, in single precision, with the given epsilon and threads.
No imaging weights, no PSF, no tiles, no FITS: it writes a small JSON of its own timings
(``read_s``, ``grid_s``) and, with ``--save``, the dirty cube as ``.npy`` (ducc0's
``[l, m]`` order, normalised by the sum of weights).

Usage: ``python bench/ducc0_grid.py MS NPIX CELL_RAD CHANNELS_OUT EPSILON NTHREADS OUT.json``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

_PARALLEL_HANDS = {9: 12, 5: 8}  # XX -> YY, RR -> LL (casacore Stokes codes)


def _stokes_i(ms: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """UVW ``(nrow, 3)``, frequencies ``(nchan,)``, Stokes I ``(nrow, nchan)`` complex64 and
    its natural weights ``(nrow, nchan)`` float32 (0 where flagged or not finite)."""
    from casacore.tables import table

    with table(f"{ms}::SPECTRAL_WINDOW", ack=False) as spw:
        freq_hz = np.asarray(spw.getcell("CHAN_FREQ", 0), dtype=np.float64)
    with table(f"{ms}::POLARIZATION", ack=False) as pol:
        corr = [int(c) for c in pol.getcell("CORR_TYPE", 0)]
    first = next(c for c in corr if c in _PARALLEL_HANDS)
    a, b = corr.index(first), corr.index(_PARALLEL_HANDS[first])
    with table(ms, ack=False) as t:
        uvw_m = t.getcol("UVW")  # (nrow, 3)
        data = t.getcol("DATA")  # (nrow, nchan, ncorr)
        flag = t.getcol("FLAG")  # (nrow, nchan, ncorr)
        flag_row = t.getcol("FLAG_ROW")  # (nrow,)
        if "WEIGHT_SPECTRUM" in t.colnames() and t.iscelldefined("WEIGHT_SPECTRUM", 0):
            weight = t.getcol("WEIGHT_SPECTRUM")  # (nrow, nchan, ncorr)
        else:
            weight = np.broadcast_to(t.getcol("WEIGHT")[:, None, :], data.shape)
    vis = (0.5 * (data[..., a] + data[..., b])).astype(np.complex64)  # (nrow, nchan)
    wa, wb = weight[..., a].astype(np.float64), weight[..., b].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = 4.0 / (1.0 / wa + 1.0 / wb)  # (nrow, nchan)
    bad = flag[..., a] | flag[..., b] | flag_row[:, None] | ~np.isfinite(vis) | ~(w > 0)
    w[bad] = 0.0
    vis[bad] = 0.0
    return uvw_m, freq_hz, vis, w.astype(np.float32)


def main() -> None:
    """Parse the arguments, read, grid, write the timings."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ms")
    p.add_argument("npix", type=int)
    p.add_argument("cell_rad", type=float)
    p.add_argument("channels_out", type=int)
    p.add_argument("epsilon", type=float)
    p.add_argument("nthreads", type=int)
    p.add_argument("json_out", type=Path)
    p.add_argument("--save", type=Path, default=None, help="write the dirty cube here (.npy)")
    args = p.parse_args()

    import ducc0.wgridder as wg

    t0 = time.perf_counter()
    uvw_m, freq_hz, vis, wgt = _stokes_i(args.ms)
    t1 = time.perf_counter()
    edges = np.linspace(0, len(freq_hz), args.channels_out + 1).round().astype(int)
    dirty = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        img = wg.vis2dirty(
            uvw=uvw_m,
            freq=freq_hz[lo:hi],
            vis=np.ascontiguousarray(vis[:, lo:hi]),
            wgt=np.ascontiguousarray(wgt[:, lo:hi]),
            npix_x=args.npix,
            npix_y=args.npix,
            pixsize_x=args.cell_rad,
            pixsize_y=args.cell_rad,
            epsilon=args.epsilon,
            do_wgridding=True,
            nthreads=args.nthreads,
        )  # (npix_x, npix_y), ducc0 [l, m] order
        sumwt = float(wgt[:, lo:hi].sum())
        dirty.append(img / sumwt if sumwt > 0 else img)
    t2 = time.perf_counter()
    if args.save is not None:
        np.save(args.save, np.stack(dirty))
    stats = {
        "read_s": t1 - t0,
        "grid_s": t2 - t1,
        "nrow": int(uvw_m.shape[0]),
        "nvis": int(vis.size),
        "nvis_unflagged": int(np.count_nonzero(wgt)),
        "peak_jy_per_beam": float(max(float(d.max()) for d in dirty)),
    }
    args.json_out.write_text(json.dumps(stats, indent=1))


if __name__ == "__main__":
    main()
