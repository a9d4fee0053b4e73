"""``skarim train``: training the RIM on simulated problems, resumable (a bare GPU node runs
:mod:`skarim.train.gpu` instead, which needs torch and numpy alone).

A run lives in one directory: ``state.pt`` (model, optimiser, step, random states: resume
from it; a training checkpoint, read and written here, not a weights file), ``best.pt``
(weights of the best validation score so far, in the format of
:func:`skarim.deconv.weights.save_weights`), ``log.jsonl`` (one line per log interval),
``baselines.json`` (classical methods on the validation set) and ``quality.json`` (the best
checkpoint's validation scores). Validation uses a fixed set of problems drawn from a seed
the training stream never uses.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from skarim.beam import beam_area
from skarim.deconv.clean import hogbom, projected_gradient
from skarim.deconv.device import select_device
from skarim.deconv.rim import RIM, RIMConfig, expand_terms
from skarim.deconv.weights import atomic_save, read_weights, save_weights
from skarim.metrics import smoothed_snr_db, snr_db
from skarim.train.objective import faint_terms, smooth_images, warm_starts
from skarim.train.problems import ProblemBatch, ProblemConfig, make_batch
from skarim.train.spectral_problems import SpectralBatch, SpectralConfig, make_spectral_batch

__all__ = [
    "Problems",
    "TrainConfig",
    "draw_problems",
    "evaluate",
    "load_train_config",
    "rim_loss",
    "train",
]

_VAL_SEED_OFFSET = 1_000_003


@dataclass(frozen=True)
class TrainConfig:
    """One training recipe (``pipelines/train/<name>.yaml``).

    Attributes
    ----------
    run_dir : str
        Directory of the run's checkpoints and logs.
    rim : RIMConfig
        Network sizes.
    problems : ProblemConfig
        Ranges of the simulated problems.
    batch : int
        Problems per optimiser step.
    lr : float
        Adam learning rate: linear warm-up over ``warmup_steps``, then cosine-decayed to
        10 % at ``total_steps``.
    warmup_steps : int
        Steps of the linear warm-up.
    total_steps : int
        Optimiser steps of the whole run.
    val_problems : int
        Size of the fixed validation set.
    val_every : int
        Steps between validations (and checkpoints).
    smooth_loss_weight : float
        Weight of the loss term on beam-smoothed images.
    faint_loss_weight : float
        Weight of the loss term on beam-smoothed images compressed by ``asinh`` at a few
        times the noise (:func:`~skarim.train.objective.faint_loss`): 0 leaves it out.
    sharp_loss_weight : float
        Weight of the same term on the images unsmoothed (``faint_loss(smoothed=False)``),
        which rewards putting faint point sources on their pixels: 0 leaves it out.
    ema_decay : float
        Validation, ``best.pt`` and ``quality.json`` take an exponential moving average of
        the weights over the steps (``torch.optim.swa_utils``, this decay per step; it
        starts at the weights the run starts or resumes from without one); 0 takes the
        weights of the last step.
    seed : int
        Seed of the training stream; validation uses ``seed + 1000003``.
    device : str
        ``cpu``, ``cuda`` or ``auto``.
    threads : int
        CPU threads for torch.
    warm_start : float
        Fraction of each batch that starts from the network's own (detached) estimate of the
        same problem instead of zero: the second and later major cycles of the pipeline,
        where the RIM refines a previous model. With ``warm_start > 0`` validation scores two
        passes (cold, then warm) and the best checkpoint is chosen on the second.
    init_from : str or None
        Weights (:func:`skarim.deconv.weights.save_weights` format) to start a new run from;
        ignored on resume. A one-term network of the same sizes starts a spectral run
        (:func:`skarim.deconv.rim.expand_terms`).
    spectral : SpectralConfig or None
        Train on joined-channel problems (:mod:`skarim.train.spectral_problems`) with
        ``rim.terms = spectral.terms``; None: one channel per problem.
    """

    run_dir: str = "training-runs/rim"
    rim: RIMConfig = field(default_factory=RIMConfig)
    problems: ProblemConfig = field(default_factory=ProblemConfig)
    batch: int = 8
    lr: float = 3e-4
    warmup_steps: int = 200
    total_steps: int = 20000
    val_problems: int = 48
    val_every: int = 250
    smooth_loss_weight: float = 1.0
    faint_loss_weight: float = 0.0
    sharp_loss_weight: float = 0.0
    ema_decay: float = 0.0
    seed: int = 0
    device: str = "auto"
    threads: int = 2
    warm_start: float = 0.0
    init_from: str | None = None
    spectral: SpectralConfig | None = None

    def __post_init__(self) -> None:
        terms = self.spectral.terms if self.spectral else 1
        if self.rim.terms != terms:
            raise ValueError(f"rim.terms is {self.rim.terms}, the problems have {terms} term(s)")

    @property
    def passes(self) -> int:
        """RIM passes per validation problem: 2 when training warm starts, else 1."""
        return 2 if self.warm_start > 0 else 1

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-able form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a mapping (unknown keys raise ``ValueError`` naming them)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown training config keys: {', '.join(sorted(unknown))}")
        data = dict(data)
        if "rim" in data:
            data["rim"] = RIMConfig(**data["rim"])
        if "problems" in data:
            data["problems"] = ProblemConfig(**_tuples(data["problems"]))
        if data.get("spectral") is not None:
            data["spectral"] = SpectralConfig(**_tuples(data["spectral"]))
        return cls(**data)


def _tuples(section: dict[str, Any]) -> dict[str, Any]:
    """A YAML section with its lists as tuples (the frozen configs' ranges)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in section.items()}


Problems = ProblemBatch | SpectralBatch
"""A batch the trainer draws: one channel per problem, or joined channels."""


def draw_problems(rng: np.random.Generator, n: int, cfg: TrainConfig) -> Problems:
    """``n`` problems of the recipe: joined-channel ones when ``cfg.spectral`` is set."""
    if cfg.spectral is not None:
        return make_spectral_batch(rng, n, cfg.problems, cfg.spectral)
    return make_batch(rng, n, cfg.problems)


def load_train_config(path: Path) -> TrainConfig:
    """Read a training recipe from YAML."""
    import yaml

    return TrainConfig.from_dict(yaml.safe_load(Path(path).read_text()) or {})


def rim_loss(
    estimates: list[torch.Tensor],
    batch: ProblemBatch,
    smooth_weight: float,
    raw_weight: float = 0.25,
    faint_weight: float = 0.0,
    sharp_weight: float = 0.0,
) -> torch.Tensor:
    """Negative SNR (dB) against truth, beam-smoothed and raw, averaged over problems and steps.

    The loss is the validation metric itself: scale-free, so faint and bright skies count
    alike, and every unrolled step is scored. ``faint_weight`` adds
    :func:`~skarim.train.objective.faint_loss`, which counts faint sources beside a bright
    one in the same tile, and ``sharp_weight`` the same on unsmoothed images.
    """
    truth_s = smooth_images(batch.truth, batch.beam_fwhm_pix)  # (b, t, t)
    sig_raw = (batch.truth**2).sum(dim=(-2, -1))  # (b,)
    sig_s = (truth_s**2).sum(dim=(-2, -1))
    total = batch.dirty.new_zeros(())
    for x in estimates:
        err_raw = ((x - batch.truth) ** 2).sum(dim=(-2, -1))
        err_s = ((smooth_images(x, batch.beam_fwhm_pix) - truth_s) ** 2).sum(dim=(-2, -1))
        total = (
            total + raw_weight * (10 * torch.log10((err_raw + 1e-12 * sig_raw) / sig_raw)).mean()
        )
        total = total + smooth_weight * (10 * torch.log10((err_s + 1e-12 * sig_s) / sig_s)).mean()
        total = total + faint_terms(
            x, batch.truth, batch.sigma, batch.beam_fwhm_pix, faint_weight, sharp_weight
        )
    return total / len(estimates)


def _scores(est: np.ndarray, batch: ProblemBatch) -> dict[str, float]:
    raw, smooth = [], []
    for i in range(est.shape[0]):
        x = batch.truth[i].numpy()
        raw.append(snr_db(est[i], x))
        smooth.append(smoothed_snr_db(est[i], x, float(batch.beam_fwhm_pix[i])))
    return {"snr_db": float(np.mean(raw)), "smoothed_snr_db": float(np.mean(smooth))}


@torch.no_grad()
def evaluate(
    model: RIM, batch: Problems, device: torch.device, passes: int = 1
) -> dict[str, float]:
    """Mean SNR (raw and smoothed) of the RIM's last estimate on a batch, per channel.

    With ``passes > 1`` the RIM runs again from its previous estimate (as in the pipeline's
    major cycles) and the scores of the last pass are returned.
    """
    model.eval()
    on_dev = batch.to(device)
    op = on_dev.operator()
    est = None
    for _ in range(passes):
        est = model(on_dev.dirty, on_dev.sigma, op, x0=est)[-1]
    model.train()
    images = on_dev.channel_images(est)
    return _scores(images.double().cpu().numpy(), batch.per_channel)


def classical_baselines(batch: ProblemBatch) -> dict[str, dict[str, float]]:
    """Scores of the scaled dirty image, Hogbom CLEAN and projected gradient on a batch."""
    dirty, psf, sigma = batch.dirty.numpy(), batch.psf.numpy(), batch.sigma.numpy()
    pixels_per_beam = beam_area(batch.beam_fwhm_pix.numpy())  # (b,)
    scaled = dirty / pixels_per_beam[:, None, None]
    clean = np.stack([hogbom(dirty[i], psf[i], float(sigma[i])) for i in range(len(dirty))])
    pgd = np.stack(
        [projected_gradient(dirty[i], psf[i], n_iter=30, damping=0.3) for i in range(len(dirty))]
    )
    return {
        "dirty_scaled": _scores(scaled, batch),
        "hogbom_gain0.1_3sigma": _scores(clean, batch),
        "projected_gradient_30it": _scores(pgd, batch),
    }


def _lr_factor(step: int, cfg: TrainConfig) -> float:
    warm = min(1.0, (step + 1) / max(cfg.warmup_steps, 1))
    return warm * (0.1 + 0.45 * (1 + np.cos(np.pi * min(step, cfg.total_steps) / cfg.total_steps)))


def train(cfg: TrainConfig, log: Callable[[dict[str, Any]], None] = lambda rec: None) -> Path:
    """Train (or resume) a RIM; returns the run directory.

    Resumes from ``run_dir/state.pt`` when it exists, continuing the same random stream.
    """
    run = Path(cfg.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    device = select_device(cfg.device).device
    (run / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))

    val = draw_problems(np.random.default_rng(cfg.seed + _VAL_SEED_OFFSET), cfg.val_problems, cfg)
    model = RIM(cfg.rim).to(device)
    if cfg.init_from and not (run / "state.pt").exists():
        model = _initial_model(cfg, device)
    if not (run / "baselines.json").exists():
        baselines = classical_baselines(val.per_channel)
        if cfg.init_from:
            baselines["init_from"] = evaluate(model, val, device, cfg.passes)
        (run / "baselines.json").write_text(json.dumps(baselines, indent=2))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: _lr_factor(i, cfg))
    rng = np.random.default_rng(cfg.seed)
    step, best, elapsed = 0, -np.inf, 0.0
    state_path = run / "state.pt"
    if state_path.exists():
        state = torch.load(state_path, weights_only=False, map_location=device)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        rng.bit_generator.state = state["rng"]
        step, best, elapsed = state["step"], state["best"], state["elapsed_s"]
    ema = _averaged(model, cfg.ema_decay)
    if ema is not None and state_path.exists() and "ema" in state:
        ema.load_state_dict(state["ema"])
    scored = model if ema is None else ema.module  # what validation and best.pt take

    amp = device.type == "cuda"
    t_start = time.time() - elapsed
    losses: list[float] = []
    while step < cfg.total_steps:
        batch = draw_problems(rng, cfg.batch, cfg).to(device)
        op = batch.operator()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            x0 = warm_starts(model, batch, cfg.warm_start)
            est = model(batch.dirty, batch.sigma, op, x0=x0)
            images = [batch.channel_images(e).float() for e in est]
            loss = rim_loss(
                images,
                batch.per_channel,
                cfg.smooth_loss_weight,
                faint_weight=cfg.faint_loss_weight,
                sharp_weight=cfg.sharp_loss_weight,
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if ema is not None:
            ema.update_parameters(model)
        step += 1
        losses.append(float(loss.detach()))
        if step % cfg.val_every == 0 or step == cfg.total_steps:
            scores = evaluate(scored, val, device, cfg.passes)
            rec = {
                "step": step,
                "loss": float(np.mean(losses)),
                "val": scores,
                "lr": sched.get_last_lr()[0],
                "elapsed_s": time.time() - t_start,
            }
            losses = []
            if scores["smoothed_snr_db"] > best:
                best = scores["smoothed_snr_db"]
                save_weights(scored, run / "best.pt")
                quality = {
                    "step": step,
                    "validation_problems": cfg.val_problems,
                    "passes": cfg.passes,
                    "rim": scores,
                    "baselines": json.loads((run / "baselines.json").read_text()),
                    "hardware": f"{device.type}: {_hardware(device)}",
                    "train_wall_s": rec["elapsed_s"],
                }
                (run / "quality.json").write_text(json.dumps(quality, indent=2))
            atomic_save(
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "rng": rng.bit_generator.state,
                    "step": step,
                    "best": best,
                    "elapsed_s": time.time() - t_start,
                    **({} if ema is None else {"ema": ema.state_dict()}),
                },
                state_path,
            )
            with open(run / "log.jsonl", "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            log(rec)
    return run


def _averaged(model: RIM, decay: float) -> AveragedModel | None:
    """An exponential moving average of ``model``'s weights, starting at them; None for 0."""
    if not decay:
        return None
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))
    ema.update_parameters(model)  # the first update copies the weights as they are
    return ema


def _initial_model(cfg: TrainConfig, device: torch.device) -> RIM:
    """The network ``cfg.init_from`` holds, expanded to the recipe's spectral terms."""
    init, weights = read_weights(cfg.init_from, device)
    model = RIM(init).to(device)
    model.load_state_dict(weights)
    if init.terms == 1 and cfg.rim.terms > 1:
        model = expand_terms(model, cfg.rim.terms)
    if model.config != cfg.rim:
        raise ValueError(f"init_from {cfg.init_from} holds a RIM of another size")
    return model


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
