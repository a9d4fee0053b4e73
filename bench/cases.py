"""The benchmark's simulated observations: a registry of cases and their simulation.

Every case is simulated with :func:`skarim.sim.simulate.simulate`, which writes the Measurement
Set and the truth cube (Jy/pixel) on the grid the case is imaged on, so a model image and
the truth compare pixel by pixel.

Choices made here, per case:

- the cell is ``1 / (4 uv_max)`` (four pixels across the synthesised beam, as
  ``skarim info`` suggests), computed from the layout's longest projected baseline at the
  highest frequency before simulating, and rounded down to 0.01 arcsec so that the same
  string is handed to skarim and WSClean; a case may fix it instead (``spectral``: 2 arcsec);
- the visibility noise is set from a target noise of the natural-weighted Stokes I image
  per output channel, ``sigma_img = noise_jy / sqrt(2 N)`` with ``N`` visibilities per
  output channel (``I = (XX + YY) / 2`` halves the variance of each hand; the dirty image is
  the mean of ``N`` real projections). Briggs 0 images are somewhat noisier.
- ``spectral`` (``joined``) spans 0.9-1.7 GHz in 16 channels (8 with ``--quick``) at a low
  signal-to-noise per channel (the faintest source about 4 sigma per channel, 16 in the
  MFS), with spectral indices uniform over -2..+1 and curvatures over -0.5..+0.2: the case
  on which the joined-channel methods run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skarim.constants import SPEED_OF_LIGHT_M_S
from skarim.sim.layouts import load_layout
from skarim.sim.simulate import SimulateConfig, SimulationResult, simulate
from skarim.sim.uvcoverage import baseline_pairs, hour_angles_rad, uvw_tracks_m

__all__ = ["Case", "FULL_CASES", "QUICK_CASES", "select_cases", "simulate_case"]

_PIXELS_PER_BEAM = 4.0


@dataclass(frozen=True)
class Case:
    """One simulated observation and how it is imaged.

    Attributes
    ----------
    name : str
        Registry key.
    description : str
        One line for the report.
    layout : str
        Shipped layout (``meerkat``, ``vla.c``...).
    npix : int
        Side of the image and truth grid, pixels.
    nchan, channels_out : int
        Simulated channels and output channels (equal groups, as WSClean splits them).
    duration_h, integration_s : float
        Track length (hours, centred on transit) and integration time (s).
    dec_deg : float
        Declination of the phase centre, degrees.
    n_points, n_gaussians : int
        Sky components.
    dynamic_range : float
        Brightest over faintest component flux.
    noise_image_jy : float
        Target natural-weighted Stokes I image noise per output channel, Jy/beam.
    freq_start_hz, chan_width_hz : float
        First channel centre and channel spacing, Hz.
    speed_only : bool
        The case is there for timings and memory; its scores are reported but not the point.
    joined : bool
        The joined-channel methods run on this case, and its report has the joined table.
    scale_arcsec : float or None
        Pixel size, arcsec; None: ``1 / (4 uv_max)`` (the module docstring).
    spectral_index_range, curvature_range : tuple of float or None
        Bounds of the sky's spectral indices and curvatures
        (:class:`~skarim.sim.simulate.SimulateConfig`); None: the simulator's defaults.
    seed : int
        Seed of sky and noise.
    """

    name: str
    description: str
    layout: str
    npix: int
    nchan: int
    channels_out: int
    duration_h: float
    integration_s: float
    dec_deg: float
    n_points: int
    n_gaussians: int
    dynamic_range: float
    noise_image_jy: float
    freq_start_hz: float = 1.3e9
    chan_width_hz: float = 20e6
    speed_only: bool = False
    joined: bool = False
    scale_arcsec: float | None = None
    spectral_index_range: tuple[float, float] | None = None
    curvature_range: tuple[float, float] | None = None
    seed: int = 1

    @property
    def freq_max_hz(self) -> float:
        """Highest channel centre, Hz."""
        return self.freq_start_hz + (self.nchan - 1) * self.chan_width_hz

    def _hour_angles_rad(self) -> np.ndarray:
        return hour_angles_rad(self.duration_h * 3600.0, self.integration_s)  # (ntime,)

    @property
    def nrow(self) -> int:
        """Rows of the simulated Measurement Set."""
        nant = len(load_layout(self.layout).names)
        return len(self._hour_angles_rad()) * len(baseline_pairs(nant)[0])

    @property
    def cell_arcsec(self) -> float:
        """Pixel size, arcsec: :attr:`scale_arcsec`, else ``1 / (4 uv_max)`` rounded down to
        0.01 arcsec."""
        if self.scale_arcsec is not None:
            return self.scale_arcsec
        uvw_m = uvw_tracks_m(
            load_layout(self.layout), math.radians(self.dec_deg), self._hour_angles_rad()
        ).reshape(-1, 3)  # (ntime * nbl, 3)
        uv_max_m = float(np.hypot(uvw_m[:, 0], uvw_m[:, 1]).max())
        uv_max_lambda = uv_max_m * self.freq_max_hz / SPEED_OF_LIGHT_M_S
        cell = math.degrees(1.0 / (_PIXELS_PER_BEAM * uv_max_lambda)) * 3600.0
        return math.floor(cell * 100.0) / 100.0

    @property
    def cell_rad(self) -> float:
        """Pixel size, radians (exactly the value of :attr:`cell_arcsec`)."""
        return math.radians(self.cell_arcsec / 3600.0)

    @property
    def noise_jy(self) -> float:
        """Noise per real/imaginary part of each correlation giving :attr:`noise_image_jy`."""
        nvis_per_output = self.nrow * self.nchan / self.channels_out
        return self.noise_image_jy * math.sqrt(2.0 * nvis_per_output)

    def simulate_config(self) -> SimulateConfig:
        """The :class:`~skarim.sim.simulate.SimulateConfig` of this case."""
        return SimulateConfig(
            layout=self.layout,
            dec_deg=self.dec_deg,
            duration_h=self.duration_h,
            integration_s=self.integration_s,
            freq_start_hz=self.freq_start_hz,
            chan_width_hz=self.chan_width_hz,
            nchan=self.nchan,
            noise_jy=self.noise_jy,
            npix=self.npix,
            cell_rad=self.cell_rad,
            n_points=self.n_points,
            n_gaussians=self.n_gaussians,
            brightest_jy=1.0,
            dynamic_range=self.dynamic_range,
            spectral_index_range=self.spectral_index_range,
            curvature_range=self.curvature_range,
            seed=self.seed,
        )


def _cases(*cases: Case) -> dict[str, Case]:
    return {c.name: c for c in cases}


_SPECTRAL = {"layout": "meerkat", "integration_s": 60.0, "dec_deg": -30.0,
             "dynamic_range": 50.0, "noise_image_jy": 5e-3, "joined": True, "scale_arcsec": 2.0,
             "spectral_index_range": (-2.0, 1.0), "curvature_range": (-0.5, 0.2)}  # fmt: skip
"""What the full and quick ``spectral`` cases share: 1 Jy down to 20 mJy, noise 5 mJy/beam
per channel (natural weighting): the faintest source is 4 sigma per channel."""


FULL_CASES = _cases(
    Case("meerkat", "MeerKAT-like 4 h track, points and a few Gaussians",
         layout="meerkat", npix=1024, nchan=4, channels_out=4, duration_h=4.0,
         integration_s=60.0, dec_deg=-30.0, n_points=40, n_gaussians=5,
         dynamic_range=1e3, noise_image_jy=1e-4),
    Case("vla_snapshot", "VLA-C-like 6 min snapshot: sparse uv, strong sidelobes",
         layout="vla.c", npix=512, nchan=4, channels_out=4, duration_h=0.1,
         integration_s=10.0, dec_deg=40.0, n_points=30, n_gaussians=3,
         dynamic_range=1e3, noise_image_jy=1e-4),
    Case("vla_short", "VLA-B-like 1 h at 3 GHz, 0.5 arcsec cells: sparse short track",
         layout="vla.b", npix=512, nchan=4, channels_out=4, duration_h=1.0,
         integration_s=10.0, dec_deg=40.0, n_points=30, n_gaussians=3,
         dynamic_range=1e3, noise_image_jy=1e-4, freq_start_hz=3.0e9, scale_arcsec=0.5),
    Case("extended", "MeerKAT-like 2 h, dominated by extended Gaussians, few points",
         layout="meerkat", npix=1024, nchan=4, channels_out=4, duration_h=2.0,
         integration_s=60.0, dec_deg=-30.0, n_points=4, n_gaussians=40,
         dynamic_range=1e2, noise_image_jy=1e-4),
    Case("hdr", "MeerKAT-like 2 h, 1 Jy source beside sources down to 0.1 mJy (DR 1e4)",
         layout="meerkat", npix=1024, nchan=4, channels_out=4, duration_h=2.0,
         integration_s=60.0, dec_deg=-30.0, n_points=40, n_gaussians=2,
         dynamic_range=1e4, noise_image_jy=1e-5),
    Case("large", "MeerKAT-like 1 h at 4096^2: speed and memory",
         layout="meerkat", npix=4096, nchan=2, channels_out=2, duration_h=1.0,
         integration_s=60.0, dec_deg=-30.0, n_points=80, n_gaussians=8,
         dynamic_range=1e3, noise_image_jy=1e-4, speed_only=True),
    Case("spectral", "MeerKAT-like 2 h, 16 channels over 0.9-1.7 GHz, low SNR per channel",
         npix=512, nchan=16, channels_out=16, duration_h=2.0, n_points=30, n_gaussians=4,
         freq_start_hz=0.925e9, chan_width_hz=50e6, **_SPECTRAL),
)  # fmt: skip
"""The cases of a full run, by name."""

QUICK_CASES = _cases(
    Case("meerkat", "MeerKAT-like 30 min track at 512^2, 2 channels",
         layout="meerkat", npix=512, nchan=2, channels_out=2, duration_h=0.5,
         integration_s=60.0, dec_deg=-30.0, n_points=20, n_gaussians=3,
         dynamic_range=1e3, noise_image_jy=1e-4),
    Case("hdr", "MeerKAT-like 30 min at 256^2, DR 1e4, 2 channels",
         layout="meerkat", npix=256, nchan=2, channels_out=2, duration_h=0.5,
         integration_s=60.0, dec_deg=-30.0, n_points=20, n_gaussians=1,
         dynamic_range=1e4, noise_image_jy=1e-5),
    Case("spectral", "MeerKAT-like 30 min at 256^2, 8 channels over 0.9-1.7 GHz, low SNR",
         npix=256, nchan=8, channels_out=8, duration_h=0.5, n_points=12, n_gaussians=2,
         freq_start_hz=0.95e9, chan_width_hz=100e6, **_SPECTRAL),
)  # fmt: skip
"""The cases of ``--quick``: a few minutes on 2 cores."""


def select_cases(quick: bool, names: list[str] | None) -> list[Case]:
    """The cases to run, in registry order unless ``names`` orders them.

    Raises
    ------
    ValueError
        If a name is not a case of the chosen registry.
    """
    registry = QUICK_CASES if quick else FULL_CASES
    if not names:
        return list(registry.values())
    unknown = [n for n in names if n not in registry]
    if unknown:
        kind = "--quick" if quick else "full"
        raise ValueError(
            f"unknown case(s) {', '.join(unknown)} for a {kind} run; "
            f"choose from: {', '.join(registry)}"
        )
    return [registry[n] for n in names]


def simulate_case(case: Case, workdir: Path, nthreads: int) -> SimulationResult:
    """Write ``<workdir>/<case>.ms`` and ``<workdir>/<case>-truth.fits``."""
    workdir.mkdir(parents=True, exist_ok=True)
    return simulate(
        case.simulate_config(),
        workdir / f"{case.name}.ms",
        workdir / f"{case.name}-truth.fits",
        overwrite=True,
        nthreads=nthreads,
    )
