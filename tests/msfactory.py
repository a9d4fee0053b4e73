"""Small Measurement Sets for tests, written with python-casacore through skarim's writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skarim.config import GridConfig, OutputConfig, ReadConfig, RunConfig, Weighting
from skarim.constants import SPEED_OF_LIGHT_M_S
from skarim.imaging.grid import grid_channels
from skarim.imaging.plan import ChannelGroup, channel_groups
from skarim.io.ms_meta import open_ms
from skarim.io.ms_read import read_step
from skarim.io.ms_write import SpectralWindow, write_ms
from skarim.io.store import RunStore
from skarim.run.pipeline import open_run_store


def point_source_vis(
    uvw_m: np.ndarray, freq_hz: np.ndarray, l_rad: float, m_rad: float, flux_jy: float = 1.0
) -> np.ndarray:
    """Visibilities ``(nrow, nchan)`` of a point source, in the sign convention of WSClean."""
    n = np.sqrt(1.0 - l_rad**2 - m_rad**2)
    lam = SPEED_OF_LIGHT_M_S / freq_hz  # (nchan,)
    phase = (uvw_m[:, 0:1] * l_rad + uvw_m[:, 1:2] * m_rad + uvw_m[:, 2:3] * (n - 1)) / lam
    return flux_jy * np.exp(2j * np.pi * phase)


def random_uvw_m(
    rng: np.random.Generator, nrow: int, max_m: float, w_frac: float = 0.5
) -> np.ndarray:
    """Random ``(nrow, 3)`` baselines with a large w (non-coplanar)."""
    uvw = rng.uniform(-max_m, max_m, size=(nrow, 3))
    uvw[:, 2] *= w_frac
    return uvw


def write_stokes_i_ms(
    path: Path,
    uvw_m: np.ndarray,
    freq_hz: np.ndarray,
    vis_i: np.ndarray,
    *,
    weight: np.ndarray | None = None,
    feeds: str = "linear",
    corr_types: tuple[str, ...] | None = None,
    phase_dir_rad: tuple[float, float] = (1.2, -0.5),
    weight_spectrum: np.ndarray | None = None,
    telescope: str = "TEST",
    diameter_m: float = 12.0,
) -> Path:
    """Write an MS whose parallel hands both hold ``vis_i`` (unpolarised sky).

    Parameters
    ----------
    weight : numpy.ndarray, optional
        ``(nrow,)`` weight of each parallel hand (WEIGHT); default 1.
    corr_types : tuple of str, optional
        Correlation order; default ``XX XY YX YY`` or ``RR RL LR LL``.
    weight_spectrum : numpy.ndarray, optional
        ``(nrow, nchan)`` per-channel weight of each hand (WEIGHT_SPECTRUM).
    telescope, diameter_m : str, float
        OBSERVATION ``TELESCOPE_NAME`` and every antenna's ``DISH_DIAMETER``, metres.
    """
    nrow, nchan = vis_i.shape
    if corr_types is None:
        corr_types = ("XX", "XY", "YX", "YY") if feeds == "linear" else ("RR", "RL", "LR", "LL")
    ncorr = len(corr_types)
    data = np.zeros(
        (nrow, nchan, ncorr), dtype=np.complex64 if vis_i.dtype == np.complex64 else np.complex128
    )
    for k, c in enumerate(corr_types):
        if c[0] == c[1]:
            data[:, :, k] = vis_i
    nant = 8
    a1, a2 = np.triu_indices(nant, 1)
    idx = np.arange(nrow) % len(a1)
    w = np.ones(nrow) if weight is None else weight
    ws = None if weight_spectrum is None else np.repeat(weight_spectrum[:, :, None], ncorr, axis=2)
    width = float(np.diff(freq_hz).mean()) if nchan > 1 else 1e6
    rng = np.random.default_rng(0)
    write_ms(
        path,
        antenna_itrf_m=np.array([5e6, 2e6, -3e6]) + rng.normal(size=(nant, 3)) * 100,
        antenna_names=[f"T{i}" for i in range(nant)],
        antenna_diameter_m=np.full(nant, diameter_m),
        telescope=telescope,
        time_s=5.0e9 + (np.arange(nrow) // len(a1)) * 10.0,
        ant1=a1[idx],
        ant2=a2[idx],
        uvw_m=uvw_m,
        spectral_windows=[SpectralWindow(np.asarray(freq_hz, float), width)],
        data=data,
        corr_types=corr_types,
        weight=np.repeat(np.asarray(w, np.float32)[:, None], ncorr, axis=1),
        weight_spectrum=None if ws is None else ws.astype(np.float32),
        phase_dirs_rad=np.array([phase_dir_rad]),
    )
    return path


def three_antenna_ms(
    path: Path,
    uvw_m: np.ndarray,
    freq_hz: float,
    *,
    diameter_m: float = 12.0,
    extra_columns: dict[str, np.ndarray] | None = None,
) -> Path:
    """Three antennas, their three baselines at one time, one channel, XX YY holding 1 Jy.

    Parameters
    ----------
    uvw_m : numpy.ndarray
        ``(3, 3)`` UVW of baselines 0-1, 0-2 and 1-2, metres.
    extra_columns : dict, optional
        Further ``(3, 1, 2)`` main-table columns (``CORRECTED_DATA``...).
    """
    write_ms(
        path,
        antenna_itrf_m=np.array([5.1e6, 2.0e6, -3.0e6]) + np.arange(9).reshape(3, 3) * 100.0,
        antenna_names=["A", "B", "C"],
        antenna_diameter_m=np.full(3, diameter_m),
        telescope="TEST",
        time_s=np.full(3, 5.0e9),
        ant1=np.array([0, 0, 1]),
        ant2=np.array([1, 2, 2]),
        uvw_m=uvw_m,
        spectral_windows=[SpectralWindow(np.array([freq_hz]), 1e4)],
        data=np.ones((3, 1, 2), dtype=np.complex64),
        corr_types=("XX", "YY"),
        weight=np.ones((3, 2)),
        extra_columns=extra_columns,
    )
    return path


def new_run_store(cfg: RunConfig) -> tuple[RunStore, list[ChannelGroup]]:
    """A fresh store for ``cfg`` (as :func:`skarim.run.pipeline.run_imaging` makes it) and the
    run's output channels, for tests that call the grid and residual stages directly."""
    meta = open_ms(cfg.read)
    store = open_run_store(cfg, meta, overwrite=False)
    return store, channel_groups(len(meta.freq_hz), cfg.grid.channels_out)


#: The sky of :func:`point_sources_ms`: image size and cell of :func:`gridded_store`, and
#: each source's FITS ``(y, x)`` pixel and flux, Jy.
NPIX = 64
CELL_RAD = np.deg2rad(20 / 3600)
SOURCES = [(40, 20, 1.0), (10, 50, 0.5)]


def point_sources_ms(tmp_path: Path) -> Path:
    """Two point sources on pixel centres, 3 channels, non-coplanar baselines."""
    rng = np.random.default_rng(5)
    freq = np.array([1.0e9, 1.1e9, 1.2e9])
    uvw = random_uvw_m(rng, 400, max_m=400.0, w_frac=1.0)
    vis = sum(
        point_source_vis(uvw, freq, -(x - NPIX / 2) * CELL_RAD, (y - NPIX / 2) * CELL_RAD, flux)
        for y, x, flux in SOURCES
    )
    return write_stokes_i_ms(tmp_path / "points.ms", uvw, freq, vis.astype(np.complex128))


def gridded_store(
    tmp_path: Path,
    ms: Path,
    name: str,
    chunk_rows: int | None = 150,
    facet_pix: int = 32,
    reorder: bool = False,
) -> tuple[RunConfig, RunStore, list[ChannelGroup]]:
    """A run of :func:`point_sources_ms` in 32-pixel tiles and 4 facets (1 with ``facet_pix``
    64), gridded (Briggs); with ``reorder``, its store has reordered-visibility arrays before
    the gridding (:mod:`skarim.imaging.reorder`), as a reordering run's has."""
    cfg = RunConfig(
        read=ReadConfig(ms=ms, chunk_rows=chunk_rows),
        grid=GridConfig(
            npix_x=NPIX,
            npix_y=NPIX,
            cell_rad=CELL_RAD,
            tile=32,
            facet_pix=facet_pix,  # 4 facets: prediction and imaging cross facet edges
            channels_out=3,
            weighting=Weighting.briggs,
            epsilon=1e-10,
            double_precision=True,
        ),
        output=OutputConfig(name=str(tmp_path / name)),
    )
    store, groups = new_run_store(cfg)
    if reorder:
        meta = open_ms(cfg.read)
        store.add_reordered(meta.nrow, len(meta.freq_hz), read_step(meta, cfg.read), True)
    grid_channels(store, cfg.read, cfg.grid, groups)
    return cfg, store, groups
