"""``skarim simulate``: a Measurement Set of a random sky observed by a shipped array.

The visibilities are predicted exactly (to ducc0's ``epsilon = 1e-7``) from the truth cube
with :func:`skarim.imaging.wgridder.image_to_vis`, so the truth, the Measurement Set and skarim's
imaging share one sign convention. The sky is unpolarised Stokes I: the parallel hands
(``XX = YY`` or ``RR = LL``) hold I and the cross hands hold 0, before noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from astropy.time import Time
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from skarim import __version__
from skarim.errors import InputError, input_error
from skarim.imaging.wgridder import Block, image_to_vis
from skarim.io.correlations import FEED_CORRELATIONS
from skarim.io.fits import write_cube
from skarim.io.ms_write import SpectralWindow, write_ms
from skarim.io.wcs import ImageWCS
from skarim.sim.layouts import Layout, available_layouts, load_layout
from skarim.sim.sky import SkyModel, random_sky, render_sky, sky_visibilities
from skarim.sim.uvcoverage import SIDEREAL_RATE_RAD_S, baseline_pairs, hour_angles_rad, uvw_tracks_m

__all__ = ["SimulateConfig", "SimulationResult", "load_simulate_config", "simulate"]

EPOCH_MJD = 60000.0
"""Day (MJD, UTC; 2023-02-25) on which every simulated track is observed."""

_PREDICT_EPSILON = 1e-7
_ERA_TURNS_PER_DAY = 1.00273781191135448


class SimulateConfig(BaseModel):
    """What ``skarim simulate`` observes.

    Attributes
    ----------
    layout : str
        Shipped layout name (see :func:`skarim.sim.layouts.available_layouts`) or a ``.cfg`` path.
    ra_deg, dec_deg : float
        Phase centre (J2000), degrees.
    duration_h : float
        Track length in hours, centred on transit.
    integration_s : float
        Integration time in seconds.
    freq_start_hz : float
        Centre of the first channel, Hz.
    chan_width_hz : float
        Channel width and spacing, Hz.
    nchan : int
        Number of channels.
    feeds : {"linear", "circular"}
        Feed basis: correlations ``XX XY YX YY`` or ``RR RL LR LL``.
    noise_jy : float
        Standard deviation, Jy, of the real and of the imaginary part of the noise added to
        every correlation of every visibility; 0 for none.
    npix : int
        Side of the truth grid in pixels (even, at least 32).
    cell_rad : float
        Pixel size of the truth grid, radians (default 1.5 arcsec).
    n_points, n_gaussians : int
        Numbers of point sources and of elliptical Gaussians.
    brightest_jy : float
        Flux density of the brightest component, Jy.
    dynamic_range : float
        Brightest over faintest flux density.
    spectral_index_range : tuple of float or None
        ``(low, high)``: spectral indices drawn uniformly over it; None: about -0.7 (sd 0.2).
    curvature_range : tuple of float or None
        ``(low, high)``: curvatures ``beta`` of ``S(f) = S0 (f / f0)^(alpha + beta ln(f / f0))``
        drawn uniformly over it; None: power laws (``beta = 0``), the sky and noise of a
        seed exactly as without the field.
    seed : int
        Seed of the sky and the noise.
    max_antennas : int or None
        Keep only the first ``max_antennas`` antennas of the layout (small tests).
    predict : {"image", "components"}
        How the visibilities are computed: ``image`` renders the truth on the grid and
        predicts it with ducc0 (sources exactly on pixels, as the truth cube holds them);
        ``components`` computes each component's visibilities analytically
        (:func:`skarim.sim.sky.sky_visibilities`), so that a field of any size is observed
        in memory bounded by the visibilities (the truth cube is then rendered only when one
        is asked for).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    layout: str = "meerkat"
    ra_deg: float = Field(150.0, ge=0.0, lt=360.0)
    dec_deg: float = Field(-30.0, ge=-90.0, le=90.0)
    duration_h: float = Field(1.0, gt=0.0)
    integration_s: float = Field(60.0, gt=0.0)
    freq_start_hz: float = Field(1.3e9, gt=0.0)
    chan_width_hz: float = Field(2e6, gt=0.0)
    nchan: int = Field(4, ge=1)
    feeds: Literal["linear", "circular"] = "linear"
    noise_jy: float = Field(0.0, ge=0.0)
    npix: int = Field(256, ge=32)
    cell_rad: float = Field(math.radians(1.5 / 3600), gt=0.0)
    n_points: int = Field(12, ge=0)
    n_gaussians: int = Field(3, ge=0)
    brightest_jy: float = Field(1.0, gt=0.0)
    dynamic_range: float = Field(1000.0, ge=1.0)
    spectral_index_range: tuple[float, float] | None = None
    curvature_range: tuple[float, float] | None = None
    seed: int = Field(0, ge=0)
    max_antennas: int | None = Field(None, ge=2)
    predict: Literal["image", "components"] = "image"

    @model_validator(mode="after")
    def _check(self) -> SimulateConfig:
        if self.npix % 2:
            raise ValueError(f"npix={self.npix} must be even")
        for name in ("spectral_index_range", "curvature_range"):
            bounds = getattr(self, name)
            if bounds is not None and not bounds[0] <= bounds[1]:
                raise ValueError(f"{name}={list(bounds)} must be (low, high) with low <= high")
        if self.npix * self.cell_rad >= 1.0:
            raise ValueError(
                f"cell_rad={self.cell_rad} times npix={self.npix} must span less than 1 rad"
            )
        if not (self.layout in available_layouts() or Path(self.layout).suffix == ".cfg"):
            raise ValueError(
                f"layout={self.layout!r} is not one of {', '.join(available_layouts())} "
                "nor a .cfg file"
            )
        try:
            nant = len(load_layout(self.layout).names)
        except InputError as exc:
            raise ValueError(f"layout={self.layout!r}: {exc}") from None
        if self.max_antennas is not None and self.max_antennas > nant:
            raise ValueError(
                f"max_antennas={self.max_antennas} but layout {self.layout} has {nant}"
            )
        return self

    @property
    def freq_hz(self) -> np.ndarray:
        """``(nchan,)`` channel centres, Hz."""
        return self.freq_start_hz + self.chan_width_hz * np.arange(self.nchan)


@dataclass(frozen=True)
class SimulationResult:
    """What :func:`simulate` made.

    Attributes
    ----------
    ms_path : pathlib.Path
        The Measurement Set written.
    truth_path : pathlib.Path or None
        The truth FITS cube, if one was written.
    sky : SkyModel
        The components of the sky.
    truth : numpy.ndarray or None
        ``(nchan, npix, npix)`` float32 truth cube, Jy/pixel, FITS order; None when the
        visibilities were predicted from the components and no truth file was asked for.
    freq_hz : numpy.ndarray
        ``(nchan,)`` channel centres, Hz.
    nrow : int
        Rows of the Measurement Set.
    """

    ms_path: Path
    truth_path: Path | None
    sky: SkyModel
    truth: np.ndarray | None
    freq_hz: np.ndarray
    nrow: int


def load_simulate_config(values: Mapping[str, Any]) -> SimulateConfig:
    """Build a :class:`SimulateConfig` from flag or YAML values.

    Raises
    ------
    InputError
        If a value is invalid; the message names the field.
    """
    try:
        return SimulateConfig.model_validate(dict(values))
    except ValidationError as exc:
        raise input_error(exc, "simulate configuration") from None


def simulate(
    cfg: SimulateConfig,
    ms_path: Path,
    truth_path: Path | None = None,
    *,
    overwrite: bool = False,
    nthreads: int = 1,
    sky: SkyModel | None = None,
) -> SimulationResult:
    """Simulate an observation of a random sky and write it as a Measurement Set.

    Parameters
    ----------
    cfg : SimulateConfig
        The observation and the sky.
    ms_path : pathlib.Path
        Measurement Set to create.
    truth_path : pathlib.Path, optional
        FITS file for the truth cube (Jy/pixel, the grid of ``cfg.npix`` and ``cfg.cell_rad``).
    overwrite : bool
        Replace an existing Measurement Set at ``ms_path``.
    nthreads : int
        Threads for ducc0's prediction.
    sky : SkyModel, optional
        The sky to observe, on the grid of ``cfg.npix`` and ``cfg.cell_rad``; None draws
        one from ``cfg`` (:func:`skarim.sim.sky.random_sky`).

    Returns
    -------
    SimulationResult

    Raises
    ------
    InputError
        If the Measurement Set exists (and ``overwrite`` is False) or a file cannot be written.
    """
    layout = _select_antennas(load_layout(cfg.layout), cfg.max_antennas)
    ra_rad, dec_rad = math.radians(cfg.ra_deg), math.radians(cfg.dec_deg)
    hour_angle_rad = hour_angles_rad(cfg.duration_h * 3600.0, cfg.integration_s)  # (ntime,)
    uvw_m = uvw_tracks_m(layout, dec_rad, hour_angle_rad).reshape(-1, 3)  # (ntime * nbl, 3)
    a1, a2 = baseline_pairs(len(layout.names))
    ntime = len(hour_angle_rad)
    nrow = ntime * len(a1)
    time_s = np.repeat(_track_times_mjd_s(hour_angle_rad, ra_rad, layout.lon_lat_rad[0]), len(a1))

    freq_hz = cfg.freq_hz
    rng = np.random.default_rng(cfg.seed)
    if sky is None:
        sky = random_sky(
            rng,
            cfg.npix,
            float(freq_hz.mean()),
            n_points=cfg.n_points,
            n_gaussians=cfg.n_gaussians,
            brightest_jy=cfg.brightest_jy,
            dynamic_range=cfg.dynamic_range,
            spectral_index_range=cfg.spectral_index_range,
            curvature_range=cfg.curvature_range,
        )
    truth = None
    if cfg.predict == "image" or truth_path is not None:
        planes = [render_sky(sky, cfg.npix, cfg.npix, f) for f in freq_hz]
        truth = np.stack(planes).astype(np.float32)  # (nchan, npix, npix)
    data = np.zeros((nrow, cfg.nchan, 4), dtype=np.complex64)  # (row, chan, corr)
    for c, f in enumerate(freq_hz):
        if cfg.predict == "components":
            vis = sky_visibilities(sky, uvw_m, freq_hz[c : c + 1], cfg.npix, cfg.cell_rad)[:, 0]
        else:
            vis = image_to_vis(
                uvw_m=uvw_m,
                freq_hz=np.array([f]),
                image=truth[c].astype(np.float64),
                block=Block.full(cfg.npix, cfg.npix, cfg.cell_rad),
                epsilon=_PREDICT_EPSILON,
                nthreads=nthreads,
            )[:, 0]  # (nrow,)
        data[:, c, 0] = vis
        data[:, c, 3] = vis
    if cfg.noise_jy > 0:
        for c in range(cfg.nchan):  # one channel at a time bounds the float64 temporaries
            noise = rng.standard_normal((nrow, 4)) + 1j * rng.standard_normal((nrow, 4))
            data[:, c, :] += (cfg.noise_jy * noise).astype(np.complex64)
    weight = 1.0 / cfg.noise_jy**2 if cfg.noise_jy > 0 else 1.0

    write_ms(
        ms_path,
        antenna_itrf_m=layout.itrf_m,
        antenna_names=layout.names,
        antenna_diameter_m=layout.diameter_m,
        telescope=layout.observatory,
        time_s=time_s,
        ant1=np.tile(a1, ntime),
        ant2=np.tile(a2, ntime),
        uvw_m=uvw_m,
        spectral_windows=[SpectralWindow(freq_hz, cfg.chan_width_hz)],
        data=data,
        corr_types=FEED_CORRELATIONS[cfg.feeds],
        weight=np.full((nrow, 4), weight, dtype=np.float32),
        field_names=("SIM",),
        phase_dirs_rad=np.array([[ra_rad, dec_rad]]),
        exposure_s=cfg.integration_s,
        overwrite=overwrite,
    )
    if truth_path is not None:
        wcs = ImageWCS(
            npix_x=cfg.npix,
            npix_y=cfg.npix,
            cell_rad=cfg.cell_rad,
            ra_rad=ra_rad,
            dec_rad=dec_rad,
            freq_hz=freq_hz,
            chan_width_hz=np.full(cfg.nchan, cfg.chan_width_hz),
            telescope=layout.observatory,
            date_obs=Time(time_s[0] / 86400.0, format="mjd", scale="utc").isot,
        )
        history = [
            f"skarim {__version__} simulate: truth sky of {Path(ms_path).name}",
            f"config {cfg.model_dump_json()}",
        ]
        write_cube(truth_path, truth, wcs, bunit="JY/PIXEL", history=history)
    truth_out = None if truth_path is None else Path(truth_path)
    return SimulationResult(Path(ms_path), truth_out, sky, truth, freq_hz, nrow)


def _select_antennas(layout: Layout, max_antennas: int | None) -> Layout:
    if max_antennas is None:
        return layout
    keep = slice(0, max_antennas)
    return replace(
        layout,
        itrf_m=layout.itrf_m[keep],
        diameter_m=layout.diameter_m[keep],
        names=layout.names[keep],
    )


def _track_times_mjd_s(hour_angle_rad: np.ndarray, ra_rad: float, lon_rad: float) -> np.ndarray:
    """Mid-integration times (MJD seconds, UTC) at which the hour angle of ``ra_rad`` seen
    from longitude ``lon_rad`` is ``hour_angle_rad``, on day :data:`EPOCH_MJD`.

    Local mean sidereal time from the Earth rotation angle plus the leading precession term
    of GMST (IERS Conventions 2010, eq. 5.32), taking UT1 = UTC, good to about a second; the
    hour angle is that of the J2000 right ascension, as in :func:`uvw_tracks_m`, so the
    apparent hour angle casacore derives from ``TIME`` differs by precession (0.3 deg in 2023).
    """
    days = EPOCH_MJD - 51544.5  # since J2000.0
    era_rad = 2 * np.pi * (0.7790572732640 + _ERA_TURNS_PER_DAY * days)
    gmst_rad = era_rad + np.deg2rad((0.014506 + 4612.156534 * days / 36525) / 3600)
    wait_rad = (ra_rad + hour_angle_rad[0] - gmst_rad - lon_rad) % (2 * np.pi)
    start_s = EPOCH_MJD * 86400.0 + wait_rad / (2 * np.pi * _ERA_TURNS_PER_DAY) * 86400.0
    return start_s + (hour_angle_rad - hour_angle_rad[0]) / SIDEREAL_RATE_RAD_S
