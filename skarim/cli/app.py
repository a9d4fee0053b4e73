"""The ``skarim`` command line: parses flags into a :class:`~skarim.config.RunConfig` and calls.

Flags follow WSClean where one exists (``--size 1024 1024``, ``--scale 1.5asec``,
``--weight briggs 0``, ``--channels-out 4``, ``--name``, ``--data-column``). Every
:class:`~skarim.errors.SkarimError` and every usage error ends the program with one line on
stderr and exit status 2; an interrupt with one line and 130 (SIGINT) or 143 (SIGTERM).
"""

from __future__ import annotations

import gc
import logging
import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from skarim.cli.logs import ERR as _err
from skarim.cli.logs import setup_logging as _setup_logging
from skarim.cli.options import opt as _opt
from skarim.cli.options import shown as _shown
from skarim.cli.plan import plan_command
from skarim.cli.simulate import simulate_command
from skarim.cli.train import train_command
from skarim.config import (
    DeconvConfig,
    GridConfig,
    OutputConfig,
    ReadConfig,
    RunConfig,
    RunFlags,
)
from skarim.errors import RunInterrupted, SkarimError
from skarim.run.signals import exit_status, interrupts, signal_name

__all__ = ["app", "main"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="skarim: radio-interferometric imaging with a learned deconvolver.",
)
log = logging.getLogger("skarim")


def _run_with_progress(cfg: RunConfig, quiet: bool) -> None:
    """Run the imaging, with a progress bar of tiles on an interactive terminal.

    Where stderr is not a terminal (a batch job's log, a pipe) Rich would draw nothing, so no
    bar is made and ``rich.progress`` is not imported (0.05 s of a small job)."""
    from skarim.run.pipeline import run_imaging

    if quiet or not _err.is_terminal:
        result = run_imaging(cfg)
    else:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        columns = (
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        progress = Progress(*columns, console=_err)
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
    size: Annotated[str | None, _opt("Image size in pixels: N or 'N M' (x, y); required.")] = None,
    scale: Annotated[
        str | None, _opt("Pixel size with units, e.g. 1.5asec (bare: degrees).", "0.01deg")
    ] = None,
    weight: Annotated[
        str | None, _opt("natural | uniform | 'briggs R'.", _shown(GridConfig, "weighting"))
    ] = None,
    taper_gaussian: Annotated[
        str | None, _opt("FWHM of a Gaussian uv taper, e.g. 30asec (bare: arcsec).", "none")
    ] = None,
    minuv_l: Annotated[
        float | None, _opt("Shortest uv distance imaged, wavelengths.", "none", "--minuv-l")
    ] = None,
    maxuv_l: Annotated[
        float | None, _opt("Longest uv distance imaged, wavelengths.", "none", "--maxuv-l")
    ] = None,
    channels_out: Annotated[
        int | None, _opt("Output channels.", _shown(GridConfig, "channels_out"))
    ] = None,
    tile: Annotated[
        int | None, _opt("Tile side in pixels.", "256, or the image's side if smaller")
    ] = None,
    facet_pix: Annotated[
        int | None,
        _opt("Largest side gridded by one ducc0 call, pixels.", _shown(GridConfig, "facet_pix")),
    ] = None,
    name: Annotated[
        str | None,
        _opt(
            "Prefix of the products (not WSClean's 'wsclean': skarim's never overwrite "
            "WSClean's products in the same directory).",
            _shown(OutputConfig, "name"),
        ),
    ] = None,
    data_column: Annotated[
        str | None, _opt("Visibility column.", "CORRECTED_DATA if present, else DATA")
    ] = None,
    field: Annotated[str | None, _opt("FIELD id or name.", _shown(ReadConfig, "field"))] = None,
    spw: Annotated[
        int | None,
        _opt("SPECTRAL_WINDOW id (one; not WSClean's -spws list).", _shown(ReadConfig, "spw")),
    ] = None,
    channel_range: Annotated[str | None, _opt("Input channels 'START STOP'.", "all")] = None,
    dirty_only: Annotated[
        bool, _opt("Grid the dirty images only (WSClean's -niter 0).", "off", "--dirty-only")
    ] = False,
    make_psf: Annotated[
        bool,
        _opt("Make the PSF of a --dirty-only run too (WSClean's -make-psf).", "off", "--make-psf"),
    ] = False,
    config: Annotated[Path | None, _opt("YAML run configuration.", "none")] = None,
    threads: Annotated[
        int | None,
        _opt(
            "Threads each task hands to ducc0 and torch, under every scheduler.",
            "the cores shared among the workers",
            "--threads",
            "--threads-per-worker",
        ),
    ] = None,
    chunk_rows: Annotated[
        int | None, _opt("Rows read at a time.", f"those of {_shown(ReadConfig, 'chunk_mb')} MiB")
    ] = None,
    reorder: Annotated[
        bool | None,
        _opt(
            "Keep Stokes I and the imaging weights in the run's store, by channel, for the "
            "major cycles to read instead of the Measurement Set; removed at the end "
            "(WSClean's -reorder / -no-reorder).",
            "on when deconvolving more than one output channel, as WSClean",
            "--reorder/--no-reorder",
        ),
    ] = None,
    overwrite: Annotated[bool, _opt("Replace a mismatched store.", "off", "--overwrite")] = False,
    apply_primary_beam: Annotated[
        bool,
        _opt(
            "Also write the primary beam <name>-pb.fits and the image corrected for it, "
            "<name>-image-pb.fits (katbeam for MeerKAT, else the Airy pattern of the dishes).",
            "off",
            "--apply-primary-beam",
        ),
    ] = False,
    primary_beam_limit: Annotated[
        float | None,
        _opt(
            "The corrected image is NaN where the beam is below this fraction of its peak.",
            _shown(OutputConfig, "primary_beam_limit"),
            "--primary-beam-limit",
        ),
    ] = None,
    major_cycles: Annotated[
        int | None, _opt("Exact major cycles of the RIM.", _shown(DeconvConfig, "major_cycles"))
    ] = None,
    polish_cycles: Annotated[
        int | None,
        _opt(
            "Major cycles of Hogbom CLEAN on the RIM's residual (0: none).",
            _shown(DeconvConfig, "polish_cycles"),
        ),
    ] = None,
    fits_mask: Annotated[
        Path | None, _opt("FITS mask: deconvolve only where it is non-zero.", "none")
    ] = None,
    auto_mask: Annotated[
        float | None,
        _opt(
            "Prune the RIM's model below N noise and polish only where it is kept.",
            "none (prune at 5, polish everywhere)",
        ),
    ] = None,
    auto_threshold: Annotated[
        float | None,
        _opt(
            "The polish's minor iterations stop at N noise.", _shown(DeconvConfig, "polish_sigma")
        ),
    ] = None,
    local_rms: Annotated[
        bool, _opt("Thresholds against the noise around each tile.", "off", "--local-rms")
    ] = False,
    local_rms_window: Annotated[
        float | None,
        _opt("Side of the local noise box, beams.", _shown(DeconvConfig, "local_rms_window")),
    ] = None,
    join_channels: Annotated[
        bool,
        _opt(
            "Deconvolve the output channels together: one MFS model with fitted spectra.",
            "off",
            "--join-channels",
        ),
    ] = False,
    fit_spectral_pol: Annotated[
        int | None,
        _opt(
            "With --join-channels, a polynomial of this many terms in frequency per pixel "
            "(0: each channel free); 2 takes the shipped joined-channel RIM.",
            _shown(DeconvConfig, "fit_spectral_pol"),
        ),
    ] = None,
    deconvolution_channels: Annotated[
        int | None,
        _opt(
            "With --join-channels, deconvolve this many averaged channels and fit the output "
            "channels with --fit-spectral-pol (0: every output channel).",
            _shown(DeconvConfig, "deconvolution_channels"),
        ),
    ] = None,
    save_source_list: Annotated[
        bool,
        _opt(
            "Also write the model's components as a WSClean source list <name>-sources.txt.",
            "off",
            "--save-source-list",
        ),
    ] = False,
    weights: Annotated[Path | None, _opt("RIM weights.", "shipped; see --fit-spectral-pol")] = None,
    device: Annotated[
        str | None, _opt("cpu | cuda | auto.", _shown(DeconvConfig, "device"))
    ] = None,
    scheduler: Annotated[
        str | None,
        _opt(
            "Address of a running Dask scheduler to join, or 'sync' to run in this process "
            "without Dask.",
            "a local cluster sized to this machine",
        ),
    ] = None,
    cluster: Annotated[
        str | None, _opt("slurm | pbs: start workers as batch jobs.", "none")
    ] = None,
    cluster_config: Annotated[
        Path | None, _opt("Job recipe for --cluster, e.g. pipelines/slurm.yaml.", "none")
    ] = None,
    workers: Annotated[
        int | None, _opt("Worker processes, local cluster.", "one per core, or per GPU")
    ] = None,
    quiet: Annotated[bool, _opt("Warnings only.", "off", "--quiet")] = False,
) -> None:
    """Image a Measurement Set into FITS cubes (WSClean-like flags); deconvolves by default."""
    _setup_logging(quiet)
    flags = RunFlags(
        ms=ms, size=size, scale=scale, weight=weight, taper_gaussian=taper_gaussian,
        minuv_l=minuv_l, maxuv_l=maxuv_l, channels_out=channels_out, tile=tile,
        facet_pix=facet_pix,
        name=name, data_column=data_column, field=field, spw=spw, channel_range=channel_range,
        dirty_only=dirty_only, make_psf=make_psf, threads=threads, chunk_rows=chunk_rows,
        reorder=reorder, overwrite=overwrite,
        apply_primary_beam=apply_primary_beam, primary_beam_limit=primary_beam_limit,
        major_cycles=major_cycles, polish_cycles=polish_cycles, weights=weights, device=device,
        fits_mask=fits_mask, auto_mask=auto_mask, auto_threshold=auto_threshold,
        local_rms=local_rms, local_rms_window=local_rms_window, join_channels=join_channels,
        fit_spectral_pol=fit_spectral_pol, deconvolution_channels=deconvolution_channels,
        save_source_list=save_source_list,
        scheduler=scheduler, cluster=cluster, cluster_config=cluster_config, workers=workers,
    )  # fmt: skip
    cfg = RunConfig.from_flags(flags, config)
    _run_with_progress(cfg, quiet)


app.command(name="plan")(plan_command(image))


app.command(name="simulate")(simulate_command)


app.command(name="train")(train_command)


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
    """Summarise a Measurement Set: rows per field, antennas, channels, feeds, data columns,
    flagged fraction, suggested cell and size (at most to the horizon)."""
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


def _exit(line: str, status: int) -> None:
    _err.print(line, markup=False, highlight=False, soft_wrap=True)
    sys.exit(status)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``skarim`` console script.

    Exit status (README, "Exit statuses"): 0 done; 2 one line naming the problem (bad input,
    an output that cannot be written, a store in use, an I/O error); 130 or 143 stopped by
    SIGINT or SIGTERM (:mod:`skarim.run.signals`), with one line saying what the store keeps;
    1 with a traceback only for a bug.

    Run as the program (``argv`` None), it hands the garbage collector's objects to the
    permanent generation on its way out (:func:`gc.freeze`): the interpreter's exit then
    skips a collection over every imported library's objects, a tenth of a second that a
    small job would otherwise spend after its products are written.
    """
    try:
        _main(argv)
    finally:
        if argv is None:
            gc.freeze()


def _main(argv: list[str] | None) -> None:
    args = _normalise_argv(list(sys.argv[1:] if argv is None else argv))
    with interrupts() as received:
        try:
            status = app(args=args, prog_name="skarim", standalone_mode=False)
            if status == 130:  # typer's answer to a KeyboardInterrupt outside a run
                raise KeyboardInterrupt
            if isinstance(status, int) and status:
                sys.exit(status)
        except KeyboardInterrupt:
            _exit(f"skarim: interrupted by {signal_name(received)}", exit_status(received))
        except RunInterrupted as exc:
            _exit(f"skarim: interrupted by {signal_name(received)}: {exc}", exit_status(received))
        except SkarimError as exc:
            _exit(f"skarim: error: {exc}", 2)
        except OSError as exc:  # a write error outside a run: a full disk, a read-only folder
            _exit(f"skarim: error: {exc}", 2)
        except typer.Exit as exc:
            sys.exit(exc.exit_code)
        except typer.Abort:
            _exit(f"skarim: interrupted by {signal_name(received)}", exit_status(received))
        except typer.TyperException as exc:  # usage errors: unknown option, missing argument
            _exit(f"skarim: error: {exc.format_message()}", 2)
