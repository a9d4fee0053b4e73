"""``skarim demo``: simulate a small MeerKAT observation, image it, score it against the truth."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from astropy.io import fits

from skarim.config import (
    ClusterConfig,
    DeconvConfig,
    GridConfig,
    OutputConfig,
    ReadConfig,
    RunConfig,
    Weighting,
)
from skarim.io.store_lock import output_directory
from skarim.metrics import smoothed_snr_db, snr_db
from skarim.run.pipeline import run_imaging
from skarim.sim.simulate import SimulateConfig, simulate

__all__ = ["DEMO_SIMULATION", "run_demo"]

log = logging.getLogger("skarim")

#: The embedded default observation: MeerKAT, 2 h, 4 channels at 1.3 GHz, 256^2 at 2 arcsec.
DEMO_SIMULATION = SimulateConfig(
    layout="meerkat",
    dec_deg=-30.0,
    duration_h=2.0,
    integration_s=120.0,
    nchan=4,
    chan_width_hz=5e6,
    noise_jy=0.5,
    npix=256,
    cell_rad=float(np.deg2rad(2.0 / 3600)),
    n_points=15,
    n_gaussians=3,
    dynamic_range=300.0,
    seed=1,
)


def run_demo(
    out: Path,
    device: str = "auto",
    *,
    simulation: SimulateConfig = DEMO_SIMULATION,
    major_cycles: int = 3,
    cluster: ClusterConfig | None = None,
) -> dict[str, Path]:
    """Simulate an observation, image it with the shipped RIM weights, score the model.

    Parameters
    ----------
    out : Path
        Directory for the Measurement Set (``demo.ms``), the true sky (``demo-truth.fits``),
        the run's store (``demo.zarr``) and the products (``demo-*.fits``).
    device : str
        ``cpu``, ``cuda`` or ``auto``.
    simulation : SimulateConfig
        The observation; the default is :data:`DEMO_SIMULATION` (a smaller one makes a
        quick demo, e.g. for the notebooks' tests). The image has the truth's size and cell,
        Briggs 0 weighting and one output channel per simulated channel.
    major_cycles : int
        Major cycles of the deconvolution.
    cluster : ClusterConfig, optional
        Where the run's tasks execute; default: a local Dask cluster sized to this machine.
        ``ClusterConfig(kind="sync")`` runs them in this process, which starts faster for a
        small observation.

    Returns
    -------
    dict
        Product name to FITS path (:func:`skarim.run.pipeline.run_imaging`).

    Notes
    -----
    The Measurement Set is simulated once; a second call with the same ``out`` resumes
    from the run's store.
    """
    out = output_directory(Path(out), "skarim demo --out")
    ms, truth = out / "demo.ms", out / "demo-truth.fits"
    sim = simulation
    if not ms.exists():
        simulate(sim, ms, truth)
        log.info("simulated %s and the true sky %s", ms, truth)
    cfg = RunConfig(
        read=ReadConfig(ms=ms),
        grid=GridConfig(
            npix_x=sim.npix, npix_y=sim.npix, cell_rad=sim.cell_rad, weighting=Weighting.briggs,
            robust=0.0, channels_out=sim.nchan, tile=min(128, sim.npix),
        ),
        deconv=DeconvConfig(device=device, major_cycles=major_cycles),
        output=OutputConfig(name=str(out / "demo")),
        cluster=ClusterConfig() if cluster is None else cluster,
    )  # fmt: skip
    result = run_imaging(cfg)
    true_sky = fits.getdata(truth)[0]  # (chan, y, x) Jy/pixel
    model = fits.getdata(result.products["model"])[0]
    beam_pix = fits.getheader(result.products["image"])["BMAJ"] / np.rad2deg(sim.cell_rad)
    for c in range(model.shape[0]):
        log.info(
            "channel %d: model SNR against truth %.1f dB raw, %.1f dB smoothed to the beam",
            c, snr_db(model[c], true_sky[c]), smoothed_snr_db(model[c], true_sky[c], beam_pix),
        )  # fmt: skip
    for name, path in result.products.items():
        log.info("%s: %s", name, path)
    return result.products
