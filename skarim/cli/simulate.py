"""``skarim simulate``: a Measurement Set of a random sky, and the sky as FITS."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from skarim.cli.logs import setup_logging
from skarim.cli.options import opt

__all__ = ["simulate_command"]

log = logging.getLogger("skarim")


def simulate_command(
    ms: Annotated[Path, typer.Argument(help="Measurement Set to write.")],
    layout: Annotated[
        str, typer.Option(help="Shipped layout (meerkat, vla.a...) or .cfg.")
    ] = "meerkat",
    dec: Annotated[float, typer.Option(help="Declination, degrees.")] = -30.0,
    ra: Annotated[float, typer.Option(help="Right ascension, degrees.")] = 150.0,
    duration_h: Annotated[float, typer.Option(help="Track length, hours.")] = 1.0,
    integration_s: Annotated[float, typer.Option(help="Integration time, s.")] = 60.0,
    freq_hz: Annotated[float, typer.Option(help="First channel, Hz.")] = 1.3e9,
    chan_width_hz: Annotated[float, typer.Option(help="Channel width, Hz.")] = 2e6,
    nchan: Annotated[int, typer.Option(help="Channels.")] = 4,
    feeds: Annotated[str, typer.Option(help="linear | circular.")] = "linear",
    noise_jy: Annotated[float, typer.Option(help="Noise per visibility, Jy.")] = 0.0,
    size: Annotated[int, typer.Option(help="Truth image size, pixels.")] = 256,
    scale: Annotated[str, typer.Option(help="Truth pixel size, e.g. 1.5asec.")] = "1.5asec",
    points: Annotated[int, typer.Option(help="Point sources.")] = 12,
    gaussians: Annotated[int, typer.Option(help="Gaussian sources.")] = 3,
    dynamic_range: Annotated[float, typer.Option(help="Brightest / faintest.")] = 1000.0,
    max_antennas: Annotated[int | None, opt("Use the first N antennas.", "all")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    truth: Annotated[Path | None, opt("Truth FITS.", "the MS's stem + -truth.fits")] = None,
    overwrite: Annotated[bool, opt("Replace an existing MS.", "off", "--overwrite")] = False,
) -> None:
    """Simulate an observation of a random sky: a Measurement Set plus the true sky as FITS."""
    from skarim.config import parse_angle_rad
    from skarim.sim.simulate import load_simulate_config
    from skarim.sim.simulate import simulate as run_simulate

    setup_logging(False)
    cfg = load_simulate_config({
        "layout": layout, "ra_deg": ra, "dec_deg": dec, "duration_h": duration_h,
        "integration_s": integration_s, "freq_start_hz": freq_hz, "chan_width_hz": chan_width_hz,
        "nchan": nchan, "feeds": feeds, "noise_jy": noise_jy, "npix": size,
        "cell_rad": parse_angle_rad(scale), "n_points": points, "n_gaussians": gaussians,
        "dynamic_range": dynamic_range, "max_antennas": max_antennas, "seed": seed,
    })  # fmt: skip
    truth_path = truth or ms.with_name(f"{ms.name.removesuffix('.ms')}-truth.fits")
    result = run_simulate(cfg, ms, truth_path, overwrite=overwrite)
    log.info("wrote %s (%d rows) and %s", result.ms_path, result.nrow, result.truth_path)
