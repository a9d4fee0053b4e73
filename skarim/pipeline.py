"""One imaging run: read -> grid -> (deconvolve) -> write, driven by a :class:`RunConfig`.

The command line and the tests call :func:`run_imaging`; it owns no logic of its own beyond
the order of the stages, resume from the store, and the run's log lines.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.time import Time

from skarim import __version__
from skarim.config import RunConfig
from skarim.coords import ImageWCS
from skarim.errors import InputError
from skarim.grid import channel_groups, grid_channel
from skarim.read import MSMeta, open_ms
from skarim.restore import common_beam, fit_beam, restore_channel
from skarim.store import RunStore
from skarim.write import Beam, write_cube

__all__ = ["RunResult", "image_wcs", "run_imaging", "write_products"]

log = logging.getLogger("skarim")


@dataclass
class RunResult:
    """What a run produced.

    Attributes
    ----------
    products : dict
        Product name (``dirty``, ``psf``...) to FITS path.
    store : Path
        The run's Zarr store.
    nonfinite : int
        NaN/inf visibilities flagged by this invocation's read passes.
    tiles_gridded : int
        Tiles gridded by this invocation (0 when everything was resumed from the store).
    cycles : list of dict
        Per (cycle, channel) run by this invocation: noise, residual RMS, model flux.
    """

    products: dict[str, Path] = field(default_factory=dict)
    store: Path = Path()
    nonfinite: int = 0
    tiles_gridded: int = 0
    cycles: list[dict] = field(default_factory=list)


def image_wcs(cfg: RunConfig, meta: MSMeta) -> ImageWCS:
    """Geometry of the output cubes: one plane per output channel group."""
    groups = channel_groups(len(meta.freq_hz), cfg.grid.channels_out)
    freq = [float(meta.freq_hz[g.start : g.stop].mean()) for g in groups]
    width = [float(np.abs(meta.chan_width_hz[g.start : g.stop]).sum()) for g in groups]
    date_obs = Time(meta.time_range_s[0] / 86400.0, format="mjd", scale="utc").isot
    return ImageWCS(
        npix_x=cfg.grid.npix_x,
        npix_y=cfg.grid.npix_y,
        cell_rad=cfg.grid.cell_rad,
        ra_rad=meta.phase_centre_rad[0],
        dec_rad=meta.phase_centre_rad[1],
        freq_hz=np.array(freq),
        chan_width_hz=np.array(width),
        telescope=meta.telescope or None,
        date_obs=date_obs,
    )


def _psf_wcs(wcs: ImageWCS, tile: int) -> ImageWCS:
    return ImageWCS(
        npix_x=2 * tile,
        npix_y=2 * tile,
        cell_rad=wcs.cell_rad,
        ra_rad=wcs.ra_rad,
        dec_rad=wcs.dec_rad,
        freq_hz=wcs.freq_hz,
        chan_width_hz=wcs.chan_width_hz,
        telescope=wcs.telescope,
        date_obs=wcs.date_obs,
    )


def channel_beams(store: RunStore) -> list[Beam]:
    """Clean beams fitted to each channel's PSF."""
    cell = store.wcs.cell_rad
    return [fit_beam(store.array("psf")[c], cell) for c in range(store.wcs.nchan)]


def write_products(store: RunStore, cfg: RunConfig, names: tuple[str, ...]) -> dict[str, Path]:
    """Write FITS cubes: store arrays (``dirty``, ``psf``, ``model``, ``residual``) or ``image``.

    Every cube carries the common beam (``BMAJ/BMIN/BPA``) and the per-channel beams (CASA
    ``BEAMS`` table); ``image`` is restored channel by channel with that channel's beam.
    """
    wcs = store.wcs
    history = [f"skarim {__version__}: {' '.join(sys.argv)}"]
    units = {
        "dirty": "JY/BEAM",
        "residual": "JY/BEAM",
        "psf": "JY/BEAM",
        "model": "JY/PIXEL",
        "image": "JY/BEAM",
    }
    beams = channel_beams(store)
    common = common_beam(beams)
    out: dict[str, Path] = {}
    for name in names:
        if name == "image":
            data = np.stack(
                [
                    restore_channel(
                        store.array("model")[c], store.array("residual")[c], beams[c], wcs.cell_rad
                    )
                    for c in range(wcs.nchan)
                ]
            )
        else:
            data = store.array(name)[...]
        geometry = _psf_wcs(wcs, store.tile) if name == "psf" else wcs
        path = cfg.output.product_path(name)
        out[name] = write_cube(
            path,
            data,
            geometry,
            bunit=units[name],
            beam=common,
            channel_beams=beams,
            history=history,
        )
        log.info("wrote %s", path)
    return out


def run_imaging(
    cfg: RunConfig,
    on_tiles: Callable[[int], None] = lambda n: None,
    on_plan: Callable[[int], None] = lambda total: None,
) -> RunResult:
    """Image a Measurement Set as configured, resuming from the run's store.

    Parameters
    ----------
    cfg : RunConfig
        The run.
    on_tiles : callable
        Progress callback, called with a number of tiles just finished.
    on_plan : callable
        Called once with the total number of (channel, tile) units of the run.

    Returns
    -------
    RunResult

    Raises
    ------
    InputError
        Bad input: the Measurement Set, the selection, or all data flagged.
    StoreMismatchError
        The store belongs to another MS or config and ``overwrite`` is off.
    """
    meta = open_ms(cfg.read)
    wcs = image_wcs(cfg, meta)
    rim = device = None
    if not cfg.dirty_only:  # fail on a bad device or weights file before any gridding
        from skarim.deconvolve import load_rim, resolve_device

        device = resolve_device(cfg.deconv.device)
        rim = load_rim(cfg.deconv.weights, device)
    log.info(
        "%s: %d rows, field %s, %d channels %.4f-%.4f GHz, %s feeds -> %d x %d pixels, "
        "%d channel(s)",
        meta.path,
        meta.nrow,
        meta.field_name,
        len(meta.freq_hz),
        meta.freq_hz.min() / 1e9,
        meta.freq_hz.max() / 1e9,
        meta.feed,
        cfg.grid.npix_x,
        cfg.grid.npix_y,
        wcs.nchan,
    )
    store = RunStore.open_or_create(
        cfg.output.store_path,
        config=cfg.fingerprint_dict(),
        ms_fingerprint=meta.fingerprint,
        wcs=wcs,
        tile=cfg.grid.tile,
        overwrite=cfg.output.overwrite,
    )
    result = RunResult(store=cfg.output.store_path)
    groups = channel_groups(len(meta.freq_hz), cfg.grid.channels_out)
    ntiles = len(groups) * cfg.grid.ntile_x * cfg.grid.ntile_y
    on_plan(ntiles if cfg.dirty_only else ntiles * (1 + cfg.deconv.major_cycles))

    def count(n: int) -> None:
        result.tiles_gridded += n
        on_tiles(n)

    for group in groups:
        done_before = int(np.count_nonzero(store.array("gridded")[group.index]))
        on_tiles(done_before)
        stats = grid_channel(store, cfg.read, cfg.grid, group, on_tiles=count)
        result.nonfinite += stats["nonfinite"]
    if result.nonfinite:
        log.warning("flagged %d NaN/inf visibilities", result.nonfinite)
        store.update_stats(nonfinite_flagged=result.nonfinite)
    sumwt = store.array("sumwt")[...]
    if not np.any(sumwt > 0):
        raise InputError(f"all data flagged in {meta.path} for the selected field/spw/channels")
    for c in np.flatnonzero(sumwt <= 0):
        log.warning("output channel %d has no unflagged data: its planes are zero", c)
    if cfg.dirty_only:
        result.products = write_products(store, cfg, ("dirty", "psf"))
        return result
    from skarim.cycles import run_cycles

    log.info("deconvolving on %s, %d major cycle(s)", device, cfg.deconv.major_cycles)
    result.cycles = run_cycles(store, cfg, groups, rim, device, on_tiles=on_tiles)
    names = ("dirty", "psf", "model", "residual", "image")
    result.products = write_products(store, cfg, names)
    return result
