"""The GPU training loop: one budget of minutes on a run folder, resumable from it.

:func:`train_gpu` runs the command ``python -m skarim.train.gpu`` (:mod:`skarim.train.gpu`
describes the run folder and the flags). Problems are drawn on the device in batches
(:mod:`skarim.train.gpu_problems`); a fraction of each batch starts from the network's own
estimate (:func:`skarim.train.objective.warm_starts`); the loss is
:func:`skarim.train.objective.window_loss`, under bfloat16 autocast on CUDA (float32 master
weights; validation runs float32, as the pipeline does on a GPU). The learning rate warms up
over the run's first steps, then each command decays it along a cosine to 10% over its own
budget (a resumed command restarts the cosine). A checkpoint (validation, ``state.pt``,
``log.jsonl``, and ``best.pt`` with ``quality.json`` when the validation improves) is taken
every ``checkpoint_minutes`` and at the end, which comes before the budget is up. On CUDA an
out-of-memory step halves the batch and goes on. Torch and numpy only.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skarim.deconv.operator import TileOperator
from skarim.deconv.rim import RIM, RIMConfig
from skarim.deconv.weights import atomic_save, read_weights, save_weights
from skarim.errors import WeightsError
from skarim.train.gpu_problems import WindowConfig, WindowProblems, draw_windows
from skarim.train.gpu_sky import SkyConfig
from skarim.train.gpu_validation import evaluate, projected_gradient, scores, validation_windows
from skarim.train.objective import warm_starts, window_loss

__all__ = ["GpuTrainConfig", "Budget", "train_gpu"]


@dataclass(frozen=True)
class GpuTrainConfig:
    """The recipe of a GPU run (stored as ``config.json`` in its folder).

    Attributes
    ----------
    out : str
        The run's folder.
    rim : RIMConfig
        Network sizes.
    problems : WindowConfig
        Window problems.
    batch : int
        Windows per optimiser step.
    lr : float
        Adam learning rate after warm-up.
    warmup_steps : int
        Steps of the linear warm-up at the start of the run.
    warm_start : float
        Fraction of each batch that starts from the network's own detached estimate;
        validation then scores a second pass.
    val_problems : int
        Validation windows.
    seed : int
        Seed of the training stream and, offset, of the validation windows.
    init : str or None
        Weights file a new run starts from.
    faint_loss_weight : float
        Weight of the loss term that counts sources near the noise
        (:func:`skarim.train.objective.faint_loss`); 0 leaves it out.
    sharp_loss_weight : float
        Weight of the same term on unsmoothed images (``faint_loss(smoothed=False)``); 0
        leaves it out.
    """

    out: str
    rim: RIMConfig = field(default_factory=RIMConfig)
    problems: WindowConfig = field(default_factory=WindowConfig)
    batch: int = 32
    lr: float = 2e-4
    warmup_steps: int = 50
    warm_start: float = 0.5
    val_problems: int = 64
    seed: int = 0
    init: str | None = None
    faint_loss_weight: float = 0.0
    sharp_loss_weight: float = 0.0

    @property
    def passes(self) -> int:
        """RIM passes per validation window: 2 when training warm starts, else 1."""
        return 2 if self.warm_start > 0 else 1

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GpuTrainConfig:
        """Rebuild from :func:`dataclasses.asdict` output (lists back to tuples)."""

        def tuples(d: dict[str, Any]) -> dict[str, Any]:
            return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}

        problems = tuples(data["problems"])
        problems["sky"] = SkyConfig(**tuples(problems["sky"]))
        return cls(
            **{**data, "rim": RIMConfig(**data["rim"]), "problems": WindowConfig(**problems)}
        )


@dataclass(frozen=True)
class Budget:
    """What one command may spend.

    Attributes
    ----------
    minutes : float
        Wall time of the command, minutes: the last checkpoint is written before it is up.
    checkpoint_minutes : float
        Minutes between checkpoints.
    max_steps : int or None
        Optimiser steps of this command at most (None: as many as the time allows); the
        learning rate follows the time budget all the same.
    """

    minutes: float = 9.0
    checkpoint_minutes: float = 2.0
    max_steps: int | None = None


def _lr(cfg: GpuTrainConfig, step: int, progress: float) -> float:
    warm = min(1.0, (step + 1) / max(cfg.warmup_steps, 1))
    return cfg.lr * warm * (0.1 + 0.45 * (1 + math.cos(math.pi * min(progress, 1.0))))


def _train_step(
    model: RIM, opt: torch.optim.Optimizer, win: WindowProblems, cfg: GpuTrainConfig, lr: float
) -> torch.Tensor:
    """One optimiser step on a batch; returns the (detached) loss, dB."""
    for group in opt.param_groups:
        group["lr"] = lr
    device = win.dirty.device
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        x0 = warm_starts(model, win, cfg.warm_start)
        est = model(win.dirty, win.sigma, TileOperator(win.psf), x0=x0)
        loss = window_loss(
            [e.float() for e in est],
            win,
            faint_weight=cfg.faint_loss_weight,
            sharp_weight=cfg.sharp_loss_weight,
        )
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss.detach()


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {torch.get_num_threads()} threads"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _print_json(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def train_gpu(
    cfg: GpuTrainConfig,
    budget: Budget,
    device: torch.device,
    log: Callable[[dict[str, Any]], None] = _print_json,
) -> Path:
    """Train, or resume, the run in ``cfg.out`` for one budget; returns the folder.

    Raises
    ------
    WeightsError
        If ``cfg.init`` is not a weights file of the recipe's network.
    """
    start = time.monotonic()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    state_path = out / "state.pt"
    torch.manual_seed(cfg.seed)
    model = RIM(cfg.rim)
    if cfg.init and not state_path.exists():
        sizes, weights = read_weights(Path(cfg.init))
        if sizes != cfg.rim:
            raise WeightsError(f"--init {cfg.init} holds a RIM of {sizes}, the run is {cfg.rim}")
        model.load_state_dict(weights)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        model = model.to(device, memory_format=torch.channels_last)
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator(device).manual_seed(cfg.seed)
    step, best, elapsed, batch = 0, -math.inf, 0.0, cfg.batch
    if state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]
        step, elapsed = state["step"], state["elapsed_s"]
        if state["device"] == device.type:  # the same validation windows: the best still holds
            gen.set_state(state["gen"].cpu())  # a generator's state is a CPU byte tensor
            best = state["best"]
        else:
            gen.manual_seed(cfg.seed + step)

    val = validation_windows(cfg.seed, cfg.val_problems, cfg.problems, device)
    baselines = {
        "projected_gradient_30it": scores([projected_gradient(v) for v in val], val),
        "start": evaluate(model, val, cfg.passes),
    }
    log({"event": "start", "step": step, "hardware": _hardware(device), "baselines": baselines})
    window = cfg.problems.window
    budget_s = budget.minutes * 60.0
    tally = {"loss": [], "pixel_steps": 0.0, "problem_s": 0.0, "since": time.monotonic()}
    ckpt_s = time.monotonic() - start  # the start's validation: what a checkpoint costs
    step_s, steps_run, saved_step = 0.0, 0, -1

    def checkpoint() -> None:
        nonlocal best, ckpt_s, saved_step
        t0 = time.monotonic()
        saved_step = step
        _sync(device)
        val_scores = evaluate(model, val, cfg.passes)
        wall = t0 - tally["since"]
        rec = {
            "step": step,
            "loss": float(torch.stack(tally["loss"]).mean()) if tally["loss"] else None,
            "val": val_scores,
            "gain_over_pgd_db": val_scores["smoothed_snr_db"]
            - baselines["projected_gradient_30it"]["smoothed_snr_db"],
            "lr": opt.param_groups[0]["lr"],
            "batch": batch,
            "pixel_steps_per_s": tally["pixel_steps"] / max(wall, 1e-9),
            "problem_time_frac": tally["problem_s"] / max(wall, 1e-9),
            "elapsed_s": elapsed + t0 - start,
        }
        if val_scores["smoothed_snr_db"] > best or not (out / "best.pt").exists():
            best = val_scores["smoothed_snr_db"]
            save_weights(model, out / "best.pt")
            quality = {
                "step": step,
                "validation_problems": cfg.val_problems,
                "passes": cfg.passes,
                "window": {
                    "core": cfg.problems.core,
                    "halo": cfg.problems.halo,
                    "context": cfg.problems.context,
                },
                "rim": val_scores,
                "baselines": baselines,
                "hardware": _hardware(device),
                "train_wall_s": rec["elapsed_s"],
            }
            (out / "quality.json").write_text(json.dumps(quality, indent=2))
        state = {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "rng": rng.bit_generator.state,
            "gen": gen.get_state(),
            "device": device.type,
            "step": step,
            "best": best,
            "elapsed_s": rec["elapsed_s"],
        }
        atomic_save(state, state_path)
        with open(out / "log.jsonl", "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        log(rec)
        tally.update(loss=[], pixel_steps=0.0, problem_s=0.0, since=time.monotonic())
        ckpt_s = time.monotonic() - t0

    next_ckpt = time.monotonic() + budget.checkpoint_minutes * 60.0
    while budget.max_steps is None or steps_run < budget.max_steps:
        used = time.monotonic() - start
        if used + 1.5 * step_s + 1.5 * ckpt_s >= budget_s:
            break
        t0 = time.monotonic()
        out_of_memory = False
        try:
            win = draw_windows(rng, gen, batch, cfg.problems, device)
            _sync(device)
            t1 = time.monotonic()
            loss = _train_step(model, opt, win, cfg, _lr(cfg, step, used / budget_s))
            _sync(device)
        except torch.cuda.OutOfMemoryError:
            if batch == 1:
                raise
            out_of_memory = True  # handled below, once the exception lets go of the activations
        if out_of_memory:
            win = None
            opt.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            batch //= 2
            log({"event": "out of memory", "step": step, "batch": batch})
            continue
        step, steps_run = step + 1, steps_run + 1
        warm = int(round(cfg.warm_start * batch))
        tally["loss"].append(loss)
        tally["pixel_steps"] += (batch + warm) * window**2 * cfg.rim.steps
        tally["problem_s"] += t1 - t0
        step_s = time.monotonic() - t0
        if time.monotonic() >= next_ckpt:
            checkpoint()
            next_ckpt = time.monotonic() + budget.checkpoint_minutes * 60.0
    if saved_step != step:
        checkpoint()
    return out
