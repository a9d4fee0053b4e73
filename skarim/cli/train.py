"""``skarim train``: train the RIM on simulated problems from a recipe, resumably."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from skarim.cli.logs import setup_logging
from skarim.cli.options import opt
from skarim.errors import InputError

__all__ = ["train_command"]

log = logging.getLogger("skarim")


def train_command(
    config: Annotated[Path, typer.Option(help="Training recipe, pipelines/train/<name>.yaml.")],
    export: Annotated[Path | None, opt("Copy the best weights here at the end.", "none")] = None,
) -> None:
    """Train the RIM on simulated problems (resumes from the run directory's state.pt)."""
    from skarim.deconv.weights import export_weights
    from skarim.train.trainer import load_train_config
    from skarim.train.trainer import train as run_train

    setup_logging(False)
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
