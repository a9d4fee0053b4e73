"""The ``skarim`` command line: parses flags into a :class:`~skarim.config.RunConfig` and calls.

Flags follow WSClean where one exists (``--size 1024 1024``, ``--scale 1.5asec``,
``--weight briggs 0``, ``--channels-out 4``, ``--name``, ``--data-column``). Every
:class:`~skarim.errors.SkarimError` and every usage error ends the program with one line on
stderr and exit status 2.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from skarim.cli.plan import plan_command
from skarim.config import RunConfig, RunFlags
from skarim.errors import InputError, SkarimError

__all__ = ["app", "main"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="skarim: radio-interferometric imaging with a learned deconvolver.",
)
_err = Console(stderr=True)
log = logging.getLogger("skarim")


def _setup_logging(quiet: bool) -> None:
    if not log.handlers:
        handler = RichHandler(console=_err, show_path=False, show_time=True, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


def _run_with_progress(cfg: RunConfig, quiet: bool) -> None:
    from skarim.run.pipeline import run_imaging

    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    progress = Progress(*columns, console=_err, disable=quiet)
    task = progress.add_task("tiles", total=None)

    def plan(total: int) -> None:
        progress.update(task, total=total)
        progress.start()

    try:
        result = run_imaging(cfg, on_tiles=lambda n: progress.advance(task, n), on_plan=plan)
    finally:
        progress.stop()
    for name, path in result.products.items():
        log.info("%s: %s", name, path)


@app.command()
def image(
    ms: Annotated[Path, typer.Argument(help="Measurement Set to image.")],
    size: Annotated[
        str | None, typer.Option(help="Image size in pixels: N or 'N M' (x, y).")
    ] = None,
    scale: Annotated[str | None, typer.Option(help="Pixel size with units, e.g. 1.5asec.")] = None,
    weight: Annotated[str | None, typer.Option(help="natural | uniform | 'briggs R'.")] = None,
    channels_out: Annotated[int | None, typer.Option(help="Output channels.")] = None,
    tile: Annotated[int | None, typer.Option(help="Tile side in pixels.")] = None,
    facet_pix: Annotated[
        int | None,
        typer.Option(help="Largest side gridded by one ducc0 call, pixels (whole tiles)."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Prefix of the products.")] = None,
    data_column: Annotated[str | None, typer.Option(help="Visibility column.")] = None,
    field: Annotated[str | None, typer.Option(help="FIELD id or name.")] = None,
    spw: Annotated[int | None, typer.Option(help="SPECTRAL_WINDOW id.")] = None,
    channel_range: Annotated[str | None, typer.Option(help="Input channels 'START STOP'.")] = None,
    dirty_only: Annotated[
        bool, typer.Option("--dirty-only", help="Grid dirty and PSF only.")
    ] = False,
    config: Annotated[Path | None, typer.Option(help="YAML run configuration.")] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            "--threads-per-worker",
            help="Threads each task hands to ducc0 and torch, under every scheduler "
            "(default: the cores shared among the workers).",
        ),
    ] = None,
    chunk_rows: Annotated[int | None, typer.Option(help="Rows read at a time.")] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a mismatched store.")
    ] = False,
    major_cycles: Annotated[int | None, typer.Option(help="Exact major cycles of the RIM.")] = None,
    polish_cycles: Annotated[
        int | None,
        typer.Option(help="Major cycles of Hogbom CLEAN on the RIM's residual (0: none)."),
    ] = None,
    weights: Annotated[Path | None, typer.Option(help="RIM weights (default: shipped).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu | cuda | auto.")] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Address of a running Dask scheduler to join, or 'sync' to run in this "
            "process without Dask (default: a local cluster sized to this machine)."
        ),
    ] = None,
    cluster: Annotated[
        str | None, typer.Option(help="slurm | pbs: start workers as batch jobs.")
    ] = None,
    cluster_config: Annotated[
        Path | None, typer.Option(help="Job recipe for --cluster, e.g. pipelines/slurm.yaml.")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes, local cluster.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="Warnings only.")] = False,
) -> None:
    """Image a Measurement Set into FITS cubes (WSClean-like flags); deconvolves by default."""
    _setup_logging(quiet)
    flags = RunFlags(
        ms=ms, size=size, scale=scale, weight=weight, channels_out=channels_out, tile=tile,
        facet_pix=facet_pix,
        name=name, data_column=data_column, field=field, spw=spw, channel_range=channel_range,
        dirty_only=dirty_only, threads=threads, chunk_rows=chunk_rows, overwrite=overwrite,
        major_cycles=major_cycles, polish_cycles=polish_cycles, weights=weights, device=device,
        scheduler=scheduler, cluster=cluster, cluster_config=cluster_config, workers=workers,
    )  # fmt: skip
    cfg = RunConfig.from_flags(flags, config)
    _run_with_progress(cfg, quiet)


app.command(name="plan")(plan_command(image))


@app.command()
def simulate(
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
    max_antennas: Annotated[int | None, typer.Option(help="Use the first N antennas.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    truth: Annotated[
        Path | None, typer.Option(help="Truth FITS (default MS stem-truth.fits).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing MS.")] = False,
) -> None:
    """Simulate an observation of a random sky: a Measurement Set plus the true sky as FITS."""
    from skarim.config import parse_angle_rad
    from skarim.sim.simulate import load_simulate_config
    from skarim.sim.simulate import simulate as run_simulate

    _setup_logging(False)
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


@app.command()
def train(
    config: Annotated[Path, typer.Option(help="Training recipe, pipelines/train/<name>.yaml.")],
    export: Annotated[
        Path | None, typer.Option(help="Copy the best weights here at the end.")
    ] = None,
) -> None:
    """Train the RIM on simulated problems (resumes from the run directory's state.pt)."""
    from skarim.deconv.weights import export_weights
    from skarim.train.trainer import load_train_config
    from skarim.train.trainer import train as run_train

    _setup_logging(False)
    if not config.is_file():
        raise InputError(f"training config {config} does not exist")
    cfg = load_train_config(config)

    def show(rec: dict) -> None:
        log.info(
            "step %d loss %.3f val SNR %.2f dB (smoothed %.2f dB)",
            rec["step"], rec["loss"], rec["val"]["snr_db"], rec["val"]["smoothed_snr_db"],
        )  # fmt: skip

    run = run_train(cfg, log=show)
    if export is not None:
        export_weights(run, export, config)
        log.info("exported weights to %s", export)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Directory for the demo's MS and products.")] = Path(
        "skarim-demo"
    ),
    device: Annotated[str, typer.Option(help="cpu | cuda | auto.")] = "auto",
) -> None:
    """Simulate a small MeerKAT observation and image it with the shipped RIM weights."""
    from skarim.cli.demo import run_demo

    _setup_logging(False)
    run_demo(out, device)


@app.command()
def info(ms: Annotated[Path, typer.Argument(help="Measurement Set.")]) -> None:
    """Summarise a Measurement Set: rows, antennas, channels, feeds, fields, suggested cell."""
    from skarim.io.ms_summary import format_summary, summarise_ms

    typer.echo(format_summary(summarise_ms(ms)))


def _normalise_argv(argv: list[str]) -> list[str]:
    """Join WSClean-style multi-value flags into one token (``--size 1024 1024`` -> ``1024x1024``).

    Typer options take one value; WSClean users type ``--size N M`` and ``--weight briggs R``.
    """
    out: list[str] = []
    i = 0
    number = re.compile(r"^[-+]?\d+(\.\d*)?([eE][-+]?\d+)?$")
    while i < len(argv):
        tok = argv[i]
        out.append(tok)
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        after = argv[i + 2] if i + 2 < len(argv) else None
        if tok in ("--size", "--channel-range") and nxt is not None and after and after.isdigit():
            out.append(f"{nxt}x{after}")
            i += 3
            continue
        if tok == "--weight" and nxt == "briggs" and after is not None and number.match(after):
            out.append(f"briggs:{after}")
            i += 3
            continue
        i += 1
    return out


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``skarim`` console script."""
    args = _normalise_argv(list(sys.argv[1:] if argv is None else argv))
    try:
        app(args=args, prog_name="skarim", standalone_mode=False)
    except SkarimError as exc:
        _err.print(f"skarim: error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        _err.print("skarim: interrupted", markup=False)
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: unknown option, missing argument
        _err.print(
            f"skarim: error: {exc.format_message()}", markup=False, highlight=False, soft_wrap=True
        )
        sys.exit(2)
