"""The spectral-index map of a deconvolved run: ``<name>-alpha.fits``.

Written by :func:`skarim.restore.products.write_products` for a run with a model and at least
two output channels holding data (``sumwt > 0``), whether or not the channels were joined.

At every pixel, each such channel's model is smoothed to the run's common restoring beam (the
beam in the cubes' ``BMAJ/BMIN/BPA``) exactly as the restored image is
(:func:`skarim.restore.restore.restore_bands`, the residual left out): ``S_c``, Jy/beam. The
spectral index is the weighted least-squares slope of ``y_c = ln S_c`` against
``x_c = ln(freq_c / ref)``::

    alpha = (sum_c a_c x_c y_c - xbar ybar) / (sum_c a_c x_c^2 - xbar^2),
    xbar = sum_c a_c x_c,  ybar = sum_c a_c y_c,

with ``a_c`` the channels' MFS weights (sums of imaging weights normalised to a sum of 1,
:func:`skarim.restore.products.mfs_weights`) and ``ref = sum_c a_c freq_c``, the weighted
mean frequency. A power law ``S_c = S (freq_c / ref)^alpha`` gives ``alpha`` exactly.

The map is NaN where the slope means nothing:

- where any channel's smoothed model is ``<= 0`` (no logarithm);
- where the MFS smoothed model ``sum_c a_c S_c`` is below
  :attr:`skarim.config.OutputConfig.spectral_index_sigma` times the MFS residual's robust
  noise (:func:`skarim.deconv.noise.mfs_sigma`, the median absolute deviation of every other
  pixel of up to 16 tiles);
- beyond the horizon, as in every product.

The file is one plane with the MFS products' axes (:func:`skarim.restore.products.mfs_wcs`),
its frequency (``CRVAL3``) the reference frequency ``ref``; ``BUNIT = ''``,
``BTYPE = 'Spectral index'``, the smoothing beam in ``BMAJ/BMIN/BPA`` and a ``HISTORY`` line
saying how the map was made.

The map is streamed in bands of one tile row: each channel's band is smoothed with its halo
of model rows and folded into three running sums (``sum a S``, ``sum a y``, ``sum a x y``), so
memory follows the tile and the image's width, never the image's height or the number of
channels.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import zarr

from skarim.beam import Beam
from skarim.config import RunConfig
from skarim.deconv.noise import mfs_sigma
from skarim.deconv.spectral import reference_frequency
from skarim.deconv.tiles import tile_windows
from skarim.errors import InputError
from skarim.io.fits import write_cube
from skarim.io.store import RunStore
from skarim.io.wcs import ImageWCS, beyond_horizon
from skarim.restore.restore import restore_bands, restore_halo

__all__ = ["SpectralChannels", "smoothed_rows", "alpha_bands", "write_alpha_map"]

log = logging.getLogger("skarim")


@dataclass(frozen=True, eq=False)
class SpectralChannels:
    """The output channels of a run and their MFS weights; those of weight 0 hold no data.

    Attributes
    ----------
    weights : numpy.ndarray
        ``(nchan,)`` MFS weights, summing to 1 (:func:`skarim.restore.products.mfs_weights`).
    freq_hz : numpy.ndarray
        ``(nchan,)`` channel centres, Hz.
    """

    weights: np.ndarray
    freq_hz: np.ndarray

    @property
    def chans(self) -> tuple[int, ...]:
        """The channels holding data, ascending."""
        return tuple(int(c) for c in np.flatnonzero(self.weights > 0))

    @property
    def ref_hz(self) -> float:
        """The reference frequency: the channels' weighted mean frequency, Hz."""
        chans = list(self.chans)
        return reference_frequency(self.freq_hz[chans], self.weights[chans])


def smoothed_rows(
    model: zarr.Array | np.ndarray,
    chan: int,
    beam: Beam,
    cell_rad: float,
    rows: tuple[int, int],
    halo: int,
) -> np.ndarray:
    """Rows ``y0 .. y1 - 1`` of one channel's clean components convolved with ``beam``.

    Parameters
    ----------
    model : zarr.Array or numpy.ndarray
        ``(nchan, ny, nx)`` clean components, Jy/pixel; only the rows wanted and their halo
        are read.
    chan : int
        The channel.
    beam : Beam
        The beam, degrees.
    cell_rad : float
        Pixel size, radians.
    rows : tuple of int
        ``(y0, y1)``, the rows wanted.
    halo : int
        :func:`skarim.restore.restore.restore_halo` of ``beam``.

    Returns
    -------
    numpy.ndarray
        ``(y1 - y0, nx)`` float32, Jy/beam: the restored image's numbers without the residual.
    """
    y0, y1 = rows
    ny, nx = model.shape[1:]
    m0, m1 = max(0, y0 - halo), min(ny, y1 + halo)
    block = np.asarray(model[chan, m0:m1], dtype=np.float32)  # (rows + halo, nx)
    band = next(
        restore_bands(
            lambda a, b: block[a:b],
            lambda a, b: np.broadcast_to(np.float32(0), (b - a, nx)),
            beam,
            cell_rad,
            block.shape,
            block.shape[0],
        )
    )  # the block as one plane: its rows y0 .. y1 have every model row within reach
    return band[y0 - m0 : y1 - m0]


def alpha_bands(
    store: RunStore, spectrum: SpectralChannels, beam: Beam, floor_jy: float
) -> Iterator[np.ndarray]:
    """The spectral-index map, ``(rows, nx)`` float32 bands of one tile row from ``y = 0`` up.

    Parameters
    ----------
    store : RunStore
        The run's store (``model``).
    spectrum : SpectralChannels
        The channels, at least two of them holding data.
    beam : Beam
        The common restoring beam the models are smoothed to.
    floor_jy : float
        NaN where the MFS smoothed model is below this, Jy/beam.

    Yields
    ------
    numpy.ndarray
        The map's rows (module docstring), NaN where blanked.

    Raises
    ------
    InputError
        If fewer than two channels hold data, or a model pixel is NaN or infinite.
    """
    chans = spectrum.chans
    if len(chans) < 2:
        raise InputError(f"a spectral index needs two channels with data, {len(chans)} have")
    wcs, tile = store.wcs, store.tile
    model = store.array("model")
    halo = restore_halo(beam, wcs.cell_rad)
    a = spectrum.weights[list(chans)]  # (C,), summing to 1
    x = np.log(spectrum.freq_hz[list(chans)] / spectrum.ref_hz)  # (C,)
    xbar = float(np.dot(a, x))
    var_x = float(np.dot(a, x * x)) - xbar**2
    for y0 in range(0, wcs.npix_y, tile):
        y1 = min(y0 + tile, wcs.npix_y)
        shape = (y1 - y0, wcs.npix_x)
        mfs, sum_y, sum_xy = np.zeros(shape), np.zeros(shape), np.zeros(shape)  # (rows, nx)
        blank = np.zeros(shape, dtype=bool)
        for c, a_c, x_c in zip(chans, a, x, strict=True):
            smooth = smoothed_rows(model, c, beam, wcs.cell_rad, (y0, y1), halo)  # float32
            if not np.all(np.isfinite(smooth)):
                raise InputError(f"the model of channel {c} has NaN or infinite pixels")
            mfs += np.float32(a_c) * smooth
            positive = smooth > 0
            blank |= ~positive
            np.log(smooth, out=smooth, where=positive)  # y_c; a pixel <= 0 is blanked anyway
            sum_y += np.float32(a_c) * smooth
            sum_xy += np.float32(a_c * x_c) * smooth
        sum_xy -= xbar * sum_y
        sum_xy /= var_x  # alpha
        blank |= mfs < floor_jy
        horizon = beyond_horizon(wcs.npix_x, wcs.npix_y, wcs.cell_rad, (y0, y1), (0, wcs.npix_x))
        if horizon is not None:
            blank |= horizon
        sum_xy[blank] = np.nan
        yield sum_xy.astype(np.float32)


def write_alpha_map(
    store: RunStore,
    cfg: RunConfig,
    spectrum: SpectralChannels,
    plane_wcs: ImageWCS,
    beam: Beam,
    history: list[str],
) -> Path:
    """Write ``<name>-alpha.fits`` (module docstring).

    Parameters
    ----------
    store : RunStore
        The run's store (``model``, ``residual``).
    cfg : RunConfig
        The run: the product's path, the tiles, ``spectral_index_sigma``.
    spectrum : SpectralChannels
        The channels, at least two of them holding data.
    plane_wcs : ImageWCS
        The MFS products' one-plane geometry; the map's frequency is set to the reference.
    beam : Beam
        The common restoring beam.
    history : list of str
        The products' ``HISTORY`` lines; the map's own line is added.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    InputError
        If fewer than two channels hold data, a model pixel is not finite, or the file
        cannot be written.
    """
    sigma = mfs_sigma(store, spectrum.weights, "residual", tile_windows(cfg))
    n_sigma = cfg.output.spectral_index_sigma
    ref_hz = spectrum.ref_hz
    line = (
        f"skarim spectral index: weighted least-squares slope of ln S against "
        f"ln(freq / {ref_hz:.6f} Hz) over {len(spectrum.chans)} channels, weights sumwt, "
        f"reference the sumwt-weighted mean frequency; S each channel's model convolved with "
        f"the common beam {beam.major_deg * 3600:.4g} x {beam.minor_deg * 3600:.4g} arcsec; "
        f"NaN where a channel's S <= 0 or the MFS S < {n_sigma:g} x {sigma:.4g} Jy/beam "
        f"(the MFS residual's robust noise)"
    )
    path = write_cube(
        cfg.output.product_path("alpha"),
        alpha_bands(store, spectrum, beam, n_sigma * sigma),
        replace(plane_wcs, freq_hz=[ref_hz]),
        bunit="",
        beam=beam,
        btype="Spectral index",
        history=[*history, line],
    )
    log.info("wrote %s", path)
    return path
