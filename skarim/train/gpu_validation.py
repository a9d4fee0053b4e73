"""Validation of the GPU training script: a fixed set of windows, scores and a baseline.

Torch and numpy only. The validation windows are drawn once per run from a seed the
training stream never uses, on the training device (the same set for every run of a seed on
one kind of device). Scores are those of :mod:`skarim.train.trainer` (mean SNR against truth,
raw and smoothed with the PSF's beam, :mod:`skarim.metrics`), taken on the windows' cores,
plus two that tell invented flux from real: the median ratio of model to true flux in the
cores that hold sky, and the mean model flux in the cores that hold only noise, in units of
the noise ``sigma`` (a point source of ``sigma`` Jy scores 1).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from skarim.deconv.operator import TileOperator
from skarim.deconv.rim import RIM
from skarim.metrics import smoothed_snr_db, snr_db
from skarim.train.gpu_problems import WindowConfig, WindowProblems, draw_windows

__all__ = [
    "VAL_SEED_OFFSET",
    "VAL_CHUNK",
    "validation_windows",
    "scores",
    "evaluate",
    "projected_gradient",
]

#: Added to the run's seed for the validation windows.
VAL_SEED_OFFSET = 1_000_003

#: Validation windows drawn and run at a time (the set does not depend on the batch).
VAL_CHUNK = 16


def validation_windows(
    seed: int, n: int, cfg: WindowConfig, device: torch.device
) -> list[WindowProblems]:
    """The run's ``n`` validation windows, in batches of at most ``VAL_CHUNK``."""
    rng = np.random.default_rng(seed + VAL_SEED_OFFSET)
    gen = torch.Generator(device).manual_seed(seed + VAL_SEED_OFFSET)
    sizes = [min(VAL_CHUNK, n - i) for i in range(0, n, VAL_CHUNK)]
    return [draw_windows(rng, gen, size, cfg, device) for size in sizes]


def scores(estimates: list[torch.Tensor], windows: list[WindowProblems]) -> dict[str, float]:
    """Validation scores of ``(b, w, w)`` estimates of the batches of ``windows``.

    Returns
    -------
    dict
        ``snr_db``, ``smoothed_snr_db`` (means over the windows that hold sky; NaN when
        none does), ``flux_ratio`` (median model over true flux in those cores) and
        ``quiet_flux_sigma`` (mean model flux over ``sigma`` in the noise-only cores; 0 when
        there are none).
    """
    raw, smooth, ratio, invented = [], [], [], []
    for est, win in zip(estimates, windows, strict=True):
        core = win.core
        x = est[:, core, core].double().cpu().numpy()
        t = win.truth[:, core, core].double().cpu().numpy()
        fwhm = win.beam_fwhm_pix.cpu().numpy()
        sigma = win.sigma.double().cpu().numpy()
        for i, quiet in enumerate(win.quiet.cpu().numpy()):
            if quiet:
                invented.append(x[i].sum() / sigma[i])
                continue
            raw.append(snr_db(x[i], t[i]))
            smooth.append(smoothed_snr_db(x[i], t[i], float(fwhm[i])))
            ratio.append(x[i].sum() / t[i].sum())
    return {
        "snr_db": float(np.mean(raw)) if raw else math.nan,
        "smoothed_snr_db": float(np.mean(smooth)) if smooth else math.nan,
        "flux_ratio": float(np.median(ratio)) if ratio else math.nan,
        "quiet_flux_sigma": float(np.mean(invented)) if invented else 0.0,
    }


@torch.no_grad()
def projected_gradient(windows: WindowProblems, n_iter: int = 30) -> torch.Tensor:
    """``n_iter`` non-negative preconditioned gradient steps from zero on ``||A x - y||^2``:
    :func:`skarim.deconv.clean.projected_gradient` (damping 0.3, the CPU trainer's baseline),
    batched."""
    op = TileOperator(windows.psf)
    x = torch.zeros_like(windows.dirty)  # (b, w, w)
    for _ in range(n_iter):
        x = torch.relu(x - op.precondition(op.adjoint(op.forward(x)) - windows.dirty))
    return x


@torch.no_grad()
def evaluate(model: RIM, windows: list[WindowProblems], passes: int) -> dict[str, float]:
    """:func:`scores` of the RIM's last estimate, float32, after ``passes`` passes.

    Each pass after the first starts from the previous one's estimate (the pipeline's later
    major cycles).
    """
    was_training = model.training
    model.eval()
    estimates = []
    for win in windows:
        op = TileOperator(win.psf)
        est = None
        for _ in range(passes):
            est = model(win.dirty, win.sigma, op, x0=est)[-1]
        estimates.append(est)
    model.train(was_training)
    return scores(estimates, windows)
