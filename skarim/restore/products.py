"""The run's FITS products, from its Zarr store: per-channel cubes and their MFS planes.

Per-channel cubes, one file each (``<name>-dirty.fits``, ``-psf``, ``-model``, ``-residual``,
``-image``): the store's arrays, or for ``image`` the restored cube, channel ``c`` being
``model_c (*) beam_c + residual_c`` in Jy/beam with the beam fitted to that channel's PSF.
Every cube carries the common beam (the channel beam of largest area) in ``BMAJ/BMIN/BPA``
and every channel's beam in a CASA ``BEAMS`` table (:mod:`skarim.io.fits`). A dirty-only run
without ``--make-psf`` grids no PSF, as WSClean with ``-niter 0``: its products carry no beam.

MFS ("multi-frequency synthesis") planes, as WSClean writes them with ``-channels-out``
(``<name>-MFS-dirty.fits``, ``-MFS-psf``, ``-MFS-model``, ``-MFS-residual``, ``-MFS-image``),
written beside the cubes when the run has more than one output channel:

- ``MFS-dirty``, ``MFS-psf``, ``MFS-model``, ``MFS-residual``: the average over output
  channels weighted by each channel's sum of imaging weights (``sumwt`` in the store, what
  WSClean calls the image weight, ``WSCIMGWG``); a channel without data has weight 0. The
  MFS dirty image is then exactly the dirty image of all channels imaged together with the
  channels' imaging weights (uniform and Briggs weights stay those computed per channel);
- ``MFS-image``: ``MFS-model (*) beam + MFS-residual`` with the beam fitted to the MFS PSF
  (WSClean's choice), Jy/beam;
- one plane at the centre of the band the channels span, ``CDELT3`` the span; its beam (the
  MFS PSF's) in ``BMAJ/BMIN/BPA`` only, without a ``BEAMS`` table.

Pixels beyond the horizon (``l^2 + m^2 >= 1``, :func:`skarim.io.wcs.beyond_horizon`) are
NaN in every product, as CASA writes them; the store holds 0 there, so that restoring and
deconvolving never meet a NaN. Any other NaN or infinite pixel stops the product's writing
with an :class:`~skarim.errors.InputError`: no product holds one in silence.

With ``--apply-primary-beam`` (:mod:`skarim.restore.primary_beam`), ``<name>-pb.fits`` holds the
primary beam (dimensionless, ``BTYPE = 'Beam'``), a plane per channel at its frequency, and
``<name>-image-pb.fits`` the restored image divided by it, NaN where the beam is below
``--primary-beam-limit``; ``MFS-pb`` is the channels' beams averaged with the MFS weights and
``MFS-image-pb`` the MFS image divided by it. WSClean names its corrected image alike
(``-image-pb``) and its beam ``-beam-0``; ``pb`` is CASA's name. Both carry the beam model in a
``HISTORY`` line.

With a model and at least two channels holding data, ``<name>-alpha.fits`` holds the spectral
index (:mod:`skarim.restore.spectral_index`); with ``--save-source-list``, ``<name>-sources.txt``
the model's components in WSClean's text format (:mod:`skarim.restore.source_list`).

Every file carries the standard keywords: ``ORIGIN``, ``DATE-OBS``, ``EQUINOX``, ``RADESYS``,
``SPECSYS``, ``BTYPE``, ``BUNIT`` (``JY/PIXEL`` for models, ``JY/BEAM`` otherwise) and
``HISTORY`` lines holding skarim's version, the command line and the run configuration.

No cube or plane is ever whole in memory: every product is streamed to its file
(:func:`skarim.io.fits.write_cube`) in bands of one tile row (``store.tile`` rows by the
image's width, the last band what is left), each read from the store, summed over channels
for an MFS plane, or restored with its halo of model rows
(:func:`skarim.restore.restore.restore_bands`). Memory follows the tile and the image's width,
never its height or the number of channels. The PSF is a tile-sized array: the MFS PSF the
beam is fitted to is made whole.
"""

from __future__ import annotations

import logging
import shlex
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import zarr

from skarim import __version__
from skarim.beam import Beam, common_beam, fit_beam
from skarim.config import RunConfig
from skarim.errors import InputError
from skarim.io.fits import write_cube
from skarim.io.store import RunStore
from skarim.io.wcs import ImageWCS, beyond_horizon
from skarim.restore.primary_beam import beam_rows, corrected_bands, load_primary_beam
from skarim.restore.restore import RowReader, restore_bands
from skarim.restore.source_list import write_source_list
from skarim.restore.spectral_index import SpectralChannels, write_alpha_map

__all__ = [
    "PRODUCTS",
    "channel_beams",
    "mfs_weights",
    "mfs_wcs",
    "history_lines",
    "write_products",
]

log = logging.getLogger("skarim")

PRODUCTS = {
    "dirty": "JY/BEAM",
    "psf": "JY/BEAM",
    "model": "JY/PIXEL",
    "residual": "JY/BEAM",
    "image": "JY/BEAM",
}
"""Product name to brightness unit; ``image`` is restored, the others are store arrays."""


def channel_beams(store: RunStore) -> list[Beam]:
    """Clean beams fitted to each channel's PSF (:func:`skarim.beam.fit_beam`).

    A channel without data (zero sum of weights) takes the common beam of the others, so
    that every plane of a cube has a beam.

    Raises
    ------
    InputError
        If no channel has data.
    """
    cell = store.wcs.cell_rad
    sumwt = store.array("sumwt")[...]  # (nchan,)
    fitted = {
        c: fit_beam(store.array("psf")[c], cell) for c in range(store.wcs.nchan) if sumwt[c] > 0
    }
    if not fitted:
        raise InputError("no output channel has data: there is no PSF to fit a beam to")
    narrow = [c for c, beam in fitted.items() if beam.minor_deg < store.wcs.cell_deg]
    if narrow:
        log.warning(
            "the clean beam of channel(s) %s is narrower than a pixel: the cell undersamples "
            "the PSF, and the fitted beam is poorly defined; choose a smaller --scale",
            ", ".join(map(str, narrow)),
        )
    common = common_beam(list(fitted.values()))
    return [fitted.get(c, common) for c in range(store.wcs.nchan)]


def mfs_weights(store: RunStore) -> np.ndarray:
    """``(nchan,)`` weights of the MFS average: ``sumwt`` normalised to a sum of 1."""
    sumwt = np.clip(store.array("sumwt")[...], 0.0, None)  # (nchan,)
    return sumwt / sumwt.sum()


def mfs_wcs(wcs: ImageWCS) -> ImageWCS:
    """One-plane geometry at the centre of the band, ``chan_width_hz`` the band's span."""
    half = np.abs(wcs.chan_width_hz) / 2
    low, high = float(np.min(wcs.freq_hz - half)), float(np.max(wcs.freq_hz + half))
    return replace(wcs, freq_hz=[(low + high) / 2], chan_width_hz=[high - low])


def history_lines(cfg: RunConfig) -> list[str]:
    """``HISTORY`` lines: skarim's version and command line, then the run configuration."""
    lines = [
        f"skarim {__version__}: {shlex.join(sys.argv)}",
        f"skarim config: {cfg.model_dump_json()}",
    ]
    return [line.encode("ascii", "backslashreplace").decode("ascii") for line in lines]


def write_products(store: RunStore, cfg: RunConfig, names: tuple[str, ...]) -> dict[str, Path]:
    """Write the FITS products of a run (see the module docstring).

    Parameters
    ----------
    store : RunStore
        The run's store, holding the arrays the products need.
    cfg : RunConfig
        The run: product paths (``cfg.output``) and the ``HISTORY`` lines.
    names : tuple of str
        Products to write, keys of :data:`PRODUCTS`; with more than one output channel each
        also gets its ``MFS-`` plane.

    Returns
    -------
    dict
        Product name (``dirty``, ..., ``MFS-dirty``, ..., ``alpha``, ``sources``) to the path
        written.

    Raises
    ------
    InputError
        If a name is not a product, or a file cannot be written.
    """
    unknown = set(names) - PRODUCTS.keys()
    if unknown:
        raise InputError(f"unknown product(s) {sorted(unknown)}; choose from {list(PRODUCTS)}")
    wcs = store.wcs
    history = history_lines(cfg)
    beams = channel_beams(store) if store.makes_psf else None
    common = common_beam(beams) if beams else None
    out: dict[str, Path] = {}
    for name in names:
        out[name] = _write(
            cfg.output.product_path(name),
            _cube_bands(store, name, beams),
            _psf_wcs(wcs, store.tile) if name == "psf" else wcs,
            unit=PRODUCTS[name],
            beam=common,
            beams=beams,
            history=history,
        )
    if cfg.output.apply_primary_beam:
        out.update(_write_beam_products(store, cfg, names, beams, history))
    if wcs.nchan > 1:
        weights = mfs_weights(store)
        mfs_psf, mfs_beam = _mfs_psf(store, weights) if beams else (None, None)
        plane_wcs = mfs_wcs(wcs)
        for name in names:
            if name == "psf":
                bands: Iterator[np.ndarray] = iter([mfs_psf])
            elif name == "image":
                bands = _mfs_image_bands(store, weights, mfs_beam)
            else:
                arr = store.array(name)
                bands = _row_bands(_weighted_rows(arr, weights), arr.shape[1], store.tile)
            out[f"MFS-{name}"] = _write(
                cfg.output.product_path(f"MFS-{name}"),
                bands,
                _psf_wcs(plane_wcs, store.tile) if name == "psf" else plane_wcs,
                unit=PRODUCTS[name],
                beam=mfs_beam,
                beams=None,
                history=history,
            )
    spectrum, band = SpectralChannels(mfs_weights(store), wcs.freq_hz), mfs_wcs(wcs)
    if "model" in names and len(spectrum.chans) > 1:
        out["alpha"] = write_alpha_map(store, cfg, spectrum, band, common, history)
    if "model" in names and cfg.output.save_source_list:
        out["sources"] = write_source_list(store, cfg, spectrum, float(band.freq_hz[0]))
    return out


def _write_beam_products(
    store: RunStore,
    cfg: RunConfig,
    names: tuple[str, ...],
    beams: list[Beam] | None,
    history: list[str],
) -> dict[str, Path]:
    """``pb`` and, with ``image`` among ``names``, ``image-pb``; their MFS planes with more than
    one channel (module docstring)."""
    wcs, limit = store.wcs, cfg.output.primary_beam_limit
    model = load_primary_beam(cfg.read.ms, wcs)
    history = [*history, f"skarim primary beam: {model.describe()}; limit {limit:g}"]
    planes = [("", wcs, np.eye(wcs.nchan), common_beam(beams) if beams else None, beams)]
    if wcs.nchan > 1:
        weights = mfs_weights(store)
        mfs_beam = _mfs_psf(store, weights)[1] if beams else None
        planes.append(("MFS-", mfs_wcs(wcs), weights[None, :], mfs_beam, None))
    out: dict[str, Path] = {}
    for prefix, plane_wcs, plane_weights, beam, per_channel in planes:
        rows = beam_rows(model, wcs, plane_weights)
        pb_bands = (
            band
            for plane in range(len(plane_weights))
            for band in _row_bands(partial(rows, plane), wcs.npix_y, store.tile)
        )
        out[f"{prefix}pb"] = _write(
            cfg.output.product_path(f"{prefix}pb"), pb_bands, plane_wcs,
            unit="", beam=None, beams=None, history=history, btype="Beam",
        )  # fmt: skip
        if "image" not in names:
            continue
        image = (
            _mfs_image_bands(store, plane_weights[0], beam)
            if prefix
            else _cube_bands(store, "image", beams)
        )
        out[f"{prefix}image-pb"] = _write(
            cfg.output.product_path(f"{prefix}image-pb"), image, plane_wcs,
            unit=PRODUCTS["image"], beam=beam, beams=per_channel, history=history,
            correct=partial(corrected_bands, rows=rows, npix_y=wcs.npix_y, limit=limit),
        )  # fmt: skip
    return out


def _mfs_psf(store: RunStore, weights: np.ndarray) -> tuple[np.ndarray, Beam]:
    """The MFS PSF, tile-sized ``(2t, 2t)``, and the clean beam fitted to it."""
    psf = store.array("psf")
    mfs_psf = _weighted_rows(psf, weights)(0, psf.shape[1])  # (2t, 2t)
    return mfs_psf, fit_beam(mfs_psf, store.wcs.cell_rad)


def _mfs_image_bands(store: RunStore, weights: np.ndarray, beam: Beam) -> Iterator[np.ndarray]:
    """The MFS image's bands: ``MFS-model (*) beam + MFS-residual``."""
    model = store.array("model")
    return restore_bands(
        _weighted_rows(model, weights),
        _weighted_rows(store.array("residual"), weights),
        beam,
        store.wcs.cell_rad,
        model.shape[1:],
        store.tile,
    )


def _write(
    path: Path,
    bands: Iterator[np.ndarray],
    wcs: ImageWCS,
    *,
    unit: str,
    beam: Beam | None,
    beams: list[Beam] | None,
    history: list[str],
    btype: str = "Intensity",
    correct: Callable[[Iterator[np.ndarray]], Iterator[np.ndarray]] | None = None,
) -> Path:
    """Write one product: its bands checked finite, then ``correct``-ed if given (the primary
    beam's correction, which leaves NaN), then NaN beyond the horizon. A one-channel cube's
    beam is its ``BMAJ/BMIN/BPA``: no ``BEAMS`` table, as for the MFS planes."""
    checked = _finite(bands, path, wcs)
    written = write_cube(
        path,
        _blank_horizon(correct(checked) if correct else checked, wcs),
        wcs,
        bunit=unit,
        beam=beam,
        channel_beams=beams if beams is not None and len(beams) > 1 else None,
        btype=btype,
        history=history,
    )
    log.info("wrote %s", path)
    return written


def _finite(bands: Iterator[np.ndarray], path: Path, wcs: ImageWCS) -> Iterator[np.ndarray]:
    """``bands`` as they are; an :class:`InputError` at the first NaN or infinite pixel, so that
    the product is not written (:func:`skarim.io.fits.write_cube` drops its temporary file)."""
    row = 0
    for band in bands:
        bad = int(np.count_nonzero(~np.isfinite(band)))
        if bad:
            raise InputError(
                f"{path} not written: {bad} NaN or infinite pixel(s) in channel "
                f"{row // wcs.npix_y}, rows {row % wcs.npix_y}-"
                f"{(row + band.shape[0] - 1) % wcs.npix_y}"
            )
        row += band.shape[0]
        yield band


def _blank_horizon(bands: Iterator[np.ndarray], wcs: ImageWCS) -> Iterator[np.ndarray]:
    """``bands`` (consecutive row bands of each plane in turn) with NaN beyond the horizon."""
    y0 = 0
    for band in bands:
        rows = (y0, y0 + band.shape[0])
        horizon = beyond_horizon(wcs.npix_x, wcs.npix_y, wcs.cell_rad, rows, (0, wcs.npix_x))
        if horizon is not None:
            band = np.where(horizon, np.float32(np.nan), band).astype(band.dtype, copy=False)
        y0 = rows[1] % wcs.npix_y
        yield band


def _cube_bands(store: RunStore, name: str, beams: list[Beam] | None) -> Iterator[np.ndarray]:
    """One product's ``(rows, nx)`` bands in FITS order: a store array, or the restored image
    (whose store always holds PSFs, hence ``beams``)."""
    if name == "image" and beams is not None:
        model, residual = store.array("model"), store.array("residual")
        for c, beam in enumerate(beams):
            yield from restore_bands(
                _channel_rows(model, c),
                _channel_rows(residual, c),
                beam,
                store.wcs.cell_rad,
                model.shape[1:],
                store.tile,
            )
        return
    arr = store.array(name)
    for c in range(arr.shape[0]):
        yield from _row_bands(_channel_rows(arr, c), arr.shape[1], store.tile)


def _row_bands(rows: RowReader, ny: int, band: int) -> Iterator[np.ndarray]:
    """``rows`` read ``band`` rows at a time from ``y = 0`` up, the last band what is left."""
    for y0 in range(0, ny, band):
        yield rows(y0, min(y0 + band, ny))


def _channel_rows(arr: zarr.Array, chan: int) -> RowReader:
    """Rows of one channel of a ``(nchan, ny, nx)`` store array."""
    return lambda y0, y1: arr[chan, y0:y1]


def _weighted_rows(arr: zarr.Array, weights: np.ndarray) -> RowReader:
    """Rows of ``sum_c weights[c] * arr[c]``, summed in float64, float32."""

    def rows(y0: int, y1: int) -> np.ndarray:
        out = np.zeros((y1 - y0, arr.shape[2]), dtype=np.float64)  # (rows, nx)
        for c in np.flatnonzero(weights > 0):
            out += weights[c] * arr[c, y0:y1]
        return out.astype(np.float32)

    return rows


def _psf_wcs(wcs: ImageWCS, tile: int) -> ImageWCS:
    """The geometry of the stored PSF: ``2 tile x 2 tile`` pixels about the phase centre."""
    return replace(wcs, npix_x=2 * tile, npix_y=2 * tile)
