"""The arrays each task of a run holds at its peak, sized as the code allocates them.

:class:`Layout` is the geometry of a run that the planner (:mod:`skarim.run.budget`) needs:
tiles and windows, facets and their w-planes, output channels per batch
(:func:`skarim.imaging.plan.groups_per_batch`), rows per read chunk
(:func:`skarim.io.ms_read.rows_per_chunk`), whether a batch's selection is read whole (in one
chunk, or gathered from several: :func:`skarim.io.ms_read.gathers`) and
held (:data:`skarim.imaging.batch.HELD_BATCHES`), the beam's width in pixels.
:func:`stage_arrays` gives, per stage, the bytes of what is resident at the task's peak: the
process, the held batches and weight grids, then the largest of its phases (reading a chunk,
the imaging weights, a ducc0 call with its float64 facet accumulators, writing a facet; a
RIM window batch; a band of rows restored). Arrays are counted at their dtype: float64
accumulators, complex64/float32 visibilities and weights (twice that with
``double_precision``), float32 store reads. ducc0's working memory and the RIM's
activations are measured (:class:`~skarim.run.costs.Costs`), as are the bytes per
visibility of the imaging-weight temporaries and per pixel of a restored band (the
constants below, read off the code's arrays).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from skarim.beam import fwhm_to_sigma, kernel_reach_pix
from skarim.config import RunConfig
from skarim.deconv.major_cycle import PRUNE_SPAN_TILES
from skarim.deconv.tiles import row_blocks
from skarim.imaging.batch import HELD_BATCHES
from skarim.imaging.plan import (
    WEIGHT_PADDING,
    channel_groups,
    facet_shares,
    groups_per_batch,
    plan_facets,
)
from skarim.imaging.weighting import padded_npix
from skarim.io.ms_read import gathered_bytes, gathers, rows_per_chunk
from skarim.restore.restore import RESTORE_SPAN
from skarim.run.costs import Costs
from skarim.run.observation import Observation

__all__ = ["DUCC_OFACTOR", "DUCC_SUPPORT", "Layout", "stage_arrays"]

DUCC_SUPPORT = 7
"""ducc0's kernel support at epsilon 1e-4: the least number of w-planes of a call."""

DUCC_OFACTOR = 1.5
"""ducc0's oversampling of its grid at epsilon 1e-4 (the side of its grid over the image's)."""

_WEIGHT_TEMP = 48  # per visibility: cell coordinates, masks, indices, factors
_BAND_FFT_BYTES = 40  # per pixel of a block smoothed by FFT along each axis, padding included
_RESTORE_FFT_BYTES = 32  # per pixel of a band's 2-D FFT restoration: spectra, kernel, result
_OPERATOR_ARRAYS = 8  # (2w)^2 float32 arrays of the tile operator and its FFTs
_WINDOW_ARRAYS = 6  # (b, w, w) float32 window arrays of a tile batch
_JOINED_WINDOW_BYTES = 40  # per pixel of a joined channel's window: residual, model, fit


@dataclass(frozen=True)
class Layout:
    """What the planner needs of a run's geometry (:meth:`of`). Sizes in pixels, bytes."""

    nx: int
    ny: int
    tile: int
    window: int
    tiles: int
    batch_tiles: int
    row_blocks: int
    facets: tuple[tuple[int, float], ...]  # (pixels, w-planes) of each facet
    channels: int
    per_batch: int
    batches: int
    shares: int
    batches_per_worker: int
    group_channels: int
    rows: int
    rows_chunk: int
    read_rows: int
    gathered: bool
    held: bool
    reuse_held: bool
    ms_bytes: int
    raw_chunk_bytes: int
    complex_bytes: int
    real_bytes: int
    weight_grid_bytes: int
    beam_pix: float

    @classmethod
    def of(cls, cfg: RunConfig, obs: Observation, n_workers: int, reuse_held: bool) -> Layout:
        """The layout of ``cfg`` over ``obs`` with ``n_workers`` workers."""
        g, r = cfg.grid, cfg.read
        groups = channel_groups(obs.channels, g.channels_out)
        per = min(groups_per_batch(g), -(-len(groups) // n_workers))
        batches = -(-len(groups) // per)
        shares = len(facet_shares(g, n_workers // batches))
        weight_bytes = (obs.spw_channels if obs.weight_spectrum else 1) * obs.correlations * 4
        row = obs.spw_channels * obs.correlations * (obs.data_bytes + 1) + weight_bytes + 25
        step = r.chunk_rows or rows_per_chunk(
            r.chunk_mb, nchan=obs.spw_channels, ncorr=obs.correlations,
            data_bytes=obs.data_bytes, weight_spectrum=obs.weight_spectrum,
        )  # fmt: skip
        read_rows = min(obs.rows, step)
        group_channels = max(g.stop - g.start for g in groups)
        precision = "double" if g.double_precision else "single"
        gathered = gathers(r, obs.rows, read_rows, per * group_channels, precision)
        rows_chunk = obs.rows if gathered else read_rows  # the rows of one ducc0 call
        half = padded_npix(g.npix_y, WEIGHT_PADDING) // 2 * padded_npix(g.npix_x, WEIGHT_PADDING)
        occupied = 0 if g.weighting.value == "natural" else min(obs.rows * group_channels, half)
        w = max(obs.max_w_wavelengths, 0.0)
        facets = tuple(
            (b.nx * b.ny, w * DUCC_OFACTOR * _n_range(b) + DUCC_SUPPORT)
            for b in (f.block(g) for f in plan_facets(g))
        )
        return cls(
            nx=g.npix_x, ny=g.npix_y, tile=g.tile, window=g.tile + 2 * cfg.deconv.margin,
            tiles=g.ntile_x * g.ntile_y, batch_tiles=min(cfg.deconv.batch_tiles, g.ntile_x),
            row_blocks=len(row_blocks(cfg, n_workers)), facets=facets, channels=len(groups),
            per_batch=per, batches=batches, shares=shares,
            batches_per_worker=-(-batches // n_workers),
            group_channels=group_channels, rows=obs.rows, rows_chunk=rows_chunk,
            read_rows=read_rows, gathered=gathered,
            held=rows_chunk >= obs.rows, reuse_held=reuse_held and rows_chunk >= obs.rows,
            ms_bytes=obs.rows * row, raw_chunk_bytes=read_rows * row,
            complex_bytes=16 if g.double_precision else 8,
            real_bytes=8 if g.double_precision else 4,
            weight_grid_bytes=16 * occupied,
            beam_pix=1.0 / max(obs.max_uv_wavelengths * g.cell_rad, 1e-12),
        )  # fmt: skip

    @property
    def pixels(self) -> int:
        """Pixels of one image plane."""
        return self.nx * self.ny

    @property
    def facet_pixels(self) -> int:
        """Pixels of the largest facet."""
        return max(px for px, _ in self.facets)

    @property
    def group_vis(self) -> float:
        """Visibilities of one output channel."""
        return float(self.rows) * self.group_channels

    def stokes_bytes(self, rows: int) -> int:
        """A batch's Stokes I visibilities, weights and UVW for ``rows`` rows."""
        precision = "double" if self.complex_bytes == 16 else "single"
        return gathered_bytes(rows, self.per_batch * self.group_channels, precision)

    @property
    def held_bytes(self) -> int:
        """A held batch: its whole selection and weight grids (0 when it is not read whole)."""
        if not self.held:
            return 0
        return self.stokes_bytes(self.rows) + self.per_batch * self.weight_grid_bytes

    @property
    def scratch_bytes(self) -> int:
        """A batch's residual visibilities kept in the store between facet passes."""
        if len(self.facets) == 1 or self.held:
            return 0
        return self.rows * self.per_batch * self.group_channels * self.complex_bytes

    def store_bytes(self, dirty_only: bool) -> int:
        """The Zarr store, uncompressed (at most): image arrays and PSFs."""
        images = 1 if dirty_only else 5
        return self.channels * (images * self.pixels + (2 * self.tile) ** 2) * 4

    def fits_bytes(self, dirty_only: bool) -> int:
        """The FITS products: per-channel cubes, and MFS planes with more than one channel."""
        names = 1 if dirty_only else 4  # besides the PSF
        psf = (2 * self.tile) ** 2
        mfs = names * self.pixels + psf if self.channels > 1 else 0
        return 4 * (self.channels * (names * self.pixels + psf) + mfs)


def _n_range(block) -> float:  # noqa: ANN001 - skarim.imaging.wgridder.Block
    """Span of ``n - 1`` over a facet's pixels, which sets ducc0's w-planes."""

    def extent(x0: int, n: int, full: int) -> tuple[float, float]:
        a, b = (x0 - full / 2) * block.cell_rad, (x0 + n - full / 2) * block.cell_rad
        return (0.0 if a <= 0 <= b else min(abs(a), abs(b))), max(abs(a), abs(b))

    (lx0, lx1), (my0, my1) = (
        extent(block.x0, block.nx, block.npix_x),
        extent(block.y0, block.ny, block.npix_y),
    )
    nm1 = lambda l2: math.sqrt(max(1.0 - l2, 0.0)) - 1.0  # noqa: E731
    return nm1(lx0**2 + my0**2) - nm1(lx1**2 + my1**2)


def _peak(resident: dict[str, int], *phases: dict[str, int]) -> dict[str, int]:
    """The resident arrays and the largest phase's."""
    largest = max(phases, key=lambda p: sum(p.values()))
    out = dict(resident)
    for k, v in largest.items():
        out[k] = out.get(k, 0) + v
    return out


def stage_arrays(
    cfg: RunConfig, lay: Layout, costs: Costs, *, sync: bool, gpu: bool
) -> dict[str, dict[str, int]]:
    """Per stage, the process and the arrays resident at a task's peak, bytes.

    Parameters
    ----------
    cfg : RunConfig
        The run.
    lay : Layout
        Its geometry.
    costs : Costs
        The process sizes and ducc0's and the RIM's working memory.
    sync : bool
        One process runs everything (``--scheduler sync``).
    gpu : bool
        The RIM runs on a GPU (its activations are not in the worker's memory).

    Returns
    -------
    dict
        ``grid``, ``tile passes``, ``residuals``, ``products``: label to bytes.
    """
    t, fpx = lay.tile, lay.facet_pixels
    cb, rb = lay.complex_bytes, lay.real_bytes
    natural = cfg.grid.weighting.value == "natural"
    torch = 0 if cfg.dirty_only else costs.worker_torch_bytes  # a deconvolving worker's
    proc = costs.process_bytes if sync else costs.worker_bytes + torch
    held_n = min(HELD_BATCHES, lay.batches_per_worker)
    chunk_vis = lay.rows_chunk * lay.group_channels  # one channel's visibilities in a chunk
    stokes = lay.stokes_bytes(lay.rows_chunk)
    ducc = int(costs.ducc_pixel_bytes * fpx * cb / 8 + costs.ducc_vis_bytes * chunk_vis)
    grids = 0 if natural else lay.per_batch * lay.weight_grid_bytes
    # a gathered batch: the whole selection's Stokes I filled while each chunk is converted
    converted = lay.stokes_bytes(lay.read_rows) if lay.gathered else 0
    reading = {
        "read chunk": lay.raw_chunk_bytes,
        "Stokes I chunks": stokes * (2 - lay.held) + converted,
    }
    weights = {"Stokes I chunks": stokes, "imaging-weight temporaries": chunk_vis * _WEIGHT_TEMP}
    call = {"Stokes I chunks": stokes, "a channel's visibilities": chunk_vis * (cb + rb),
            "ducc0 working grid": ducc}  # fmt: skip

    def accumulators(n: int, psf: bool = True) -> dict[str, int]:
        return {"facet accumulators (float64)": n * fpx * 8,
                "PSF accumulators": n * (2 * t) ** 2 * 8 if psf else 0}  # fmt: skip

    # accumulators are zeros until a call's image is added: with a batch read in one chunk,
    # a channel's ducc0 call comes before its accumulator is written
    during = accumulators(lay.per_batch - 1 if lay.held else lay.per_batch)
    after = {"returned facet image": fpx * 8, "Stokes I chunks": stokes}
    resident = {"process": proc, "held batches": max(0, held_n - 1) * lay.held_bytes,
                "weight grids (at most)": grids}  # fmt: skip
    imaging = [{**during, **call}, {**during, **weights}, {**accumulators(lay.per_batch), **after}]
    if not lay.held:
        imaging.append({**during, **reading})
    grid = _peak(resident, *([] if natural else [reading, weights]), *imaging)

    w = lay.window
    joined = {}
    if cfg.deconv.join_channels:  # every deconvolution channel's windows, PSFs and fit
        d = min(cfg.deconv.deconvolution_channels or lay.channels, lay.channels)
        joined = {
            "joined channels' windows": d * lay.batch_tiles * w * w * _JOINED_WINDOW_BYTES,
            "joined channels' PSFs": d * ((2 * t) ** 2 * 8 + (2 * w) ** 2 * 4),
            "joined spectral-fit transforms": d * 2 * w * (w + 1) * 16,
        }
    tiles = _peak(
        {"process": proc, "held batches": held_n * lay.held_bytes, **joined},
        {
            "tile windows": _WINDOW_ARRAYS * lay.batch_tiles * w * w * 4,
            "PSF and tile operator": (2 * t) ** 2 * 4 + _OPERATOR_ARRAYS * (2 * w) ** 2 * 4,
            "RIM activations": 0 if gpu else int(costs.rim_pixel_bytes * w * w),
        },
    )

    keep = lay.rows_chunk * lay.per_batch * lay.group_channels * cb if len(lay.facets) > 1 else 0
    kept = {"kept residual visibilities": keep}
    predict = {
        "Stokes I chunks": stokes,
        "model facet copies": 3 * fpx * 4,
        "ducc0 working grid": ducc,
        "predicted visibilities": 3 * chunk_vis * cb,
    }
    during = {**accumulators(lay.per_batch - 1 if lay.held else lay.per_batch, False), **kept}
    phases = [{**during, **predict}, {**during, **call}, {**accumulators(lay.per_batch, False),
              **kept, **after}]  # fmt: skip
    if not lay.held:
        phases.append({**during, **reading})
    halo = math.ceil(4 * fwhm_to_sigma(lay.beam_pix))  # pruning's smoothing halo
    prune = (t + 4 * halo) * (PRUNE_SPAN_TILES * t + 4 * halo) * _BAND_FFT_BYTES
    bands = {"tile-row bands": max(t * lay.nx * 16, prune)}
    residuals = _peak(resident, *phases, bands)

    reach = kernel_reach_pix(lay.beam_pix)  # restoring beam's halo
    rows = t + 2 * reach  # model rows of a band, float32; an MFS band summed in float64
    if cfg.dirty_only:
        band = {"product bands": t * lay.nx * 4 * 3}
    else:
        mfs = rows * lay.nx * 12 if lay.channels > 1 else 0
        span = max(t, RESTORE_SPAN) + 2 * reach  # a column block, its FFT padded again
        fft = (rows + 2 * reach) * (span + 2 * reach) * _RESTORE_FFT_BYTES
        band = {"product bands": rows * lay.nx * 4 + t * lay.nx * 8 + mfs + fft}
    held_sync = min(HELD_BATCHES, lay.batches) * lay.held_bytes if sync else 0
    products = _peak({"process": costs.process_bytes, "held batches": held_sync}, band)
    return {"grid": grid, "tile passes": tiles, "residuals": residuals, "products": products}
