"""Training the RIM on a GPU in one command of a few minutes, resumable from its folder.

``python -m skarim.train.gpu --out DIR --minutes 9 [--init WEIGHTS] [--hidden N --steps T]``

Needs torch and numpy alone (and skarim modules that need nothing more), so it runs on a bare
GPU node from a source tree; on a CPU it runs the same steps, slowly (the tests take one).
The loop is :func:`skarim.train.gpu_trainer.train_gpu`.

``DIR`` holds the run: ``config.json`` (the recipe; a resumed run keeps it, only ``--batch``
may change, and a recipe flag that disagrees with it is refused), ``state.pt`` (model,
optimiser, random states, step; loadable with ``weights_only=True``), ``best.pt`` (the best
validation weights, a :func:`skarim.deconv.weights.save_weights` file that ships through
:func:`skarim.deconv.weights.export_weights`), ``quality.json`` (the best weights' validation
scores beside the projected-gradient baseline and the network the command started from) and
``log.jsonl`` (one line per checkpoint: validation scores, their gain over the baseline,
throughput). Each checkpoint's line is printed too. Bad input ends with one line on stderr
and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from skarim.deconv.device import select_device
from skarim.deconv.rim import RIMConfig
from skarim.deconv.weights import load_rim
from skarim.errors import InputError, SkarimError
from skarim.train.gpu_problems import WindowConfig
from skarim.train.gpu_trainer import Budget, GpuTrainConfig, train_gpu

__all__ = ["config_from_flags", "main"]

#: Flags of the recipe, and where each sits in :class:`GpuTrainConfig`.
_RECIPE_FLAGS = {
    "hidden": ("rim", "hidden"),
    "steps": ("rim", "steps"),
    "core": ("problems", "core"),
    "halo": ("problems", "halo"),
    "context": ("problems", "context"),
    "lr": (None, "lr"),
    "warm_start": (None, "warm_start"),
    "val_problems": (None, "val_problems"),
    "seed": (None, "seed"),
    "init": (None, "init"),
    "faint_loss_weight": (None, "faint_loss_weight"),
    "sharp_loss_weight": (None, "sharp_loss_weight"),
    "bright_prob": ("problems", "bright_prob"),
}


def _recipe_value(cfg: GpuTrainConfig, flag: str) -> Any:
    part, name = _RECIPE_FLAGS[flag]
    return getattr(getattr(cfg, part) if part else cfg, name)


def config_from_flags(args: argparse.Namespace) -> GpuTrainConfig:
    """The run's recipe: the stored one when ``--out`` holds a run, else built from the flags.

    Raises
    ------
    InputError
        If a recipe flag disagrees with the run stored in ``--out``.
    WeightsError
        If ``--init`` is missing or not a weights file.
    """
    given = {k: getattr(args, k) for k in _RECIPE_FLAGS if getattr(args, k) is not None}
    stored = Path(args.out) / "config.json"
    if stored.exists():
        cfg = GpuTrainConfig.from_dict(json.loads(stored.read_text()))
        clash = [
            f"--{k.replace('_', '-')} {v} (the run has {_recipe_value(cfg, k)})"
            for k, v in given.items()
            if _recipe_value(cfg, k) != v
        ]
        if clash:
            raise InputError(f"{args.out} holds another run: {', '.join(clash)}")
        return replace(cfg, out=str(args.out), batch=args.batch or cfg.batch)
    low = {"hidden": 1, "steps": 1, "core": 8, "halo": 0, "context": 0, "val_problems": 1}
    for flag, least in low.items():
        if given.get(flag, least) < least:
            raise InputError(f"--{flag.replace('_', '-')} must be at least {least}")
    if not 0 <= given.get("warm_start", 0) <= 1 or given.get("lr", 1) <= 0:
        raise InputError("--warm-start must be within [0, 1] and --lr positive")
    if not 0 <= given.get("bright_prob", 0) <= 1:
        raise InputError("--bright-prob must be within [0, 1]")
    if min(given.get("faint_loss_weight", 0), given.get("sharp_loss_weight", 0)) < 0:
        raise InputError("--faint-loss-weight and --sharp-loss-weight must be >= 0")
    rim = RIMConfig()
    if args.init:  # the sizes of the network it holds, read without running code
        rim = load_rim(Path(args.init), torch.device("cpu")).config
    rim = RIMConfig(hidden=given.pop("hidden", rim.hidden), steps=given.pop("steps", rim.steps))
    window = {k: given.pop(k) for k in ("core", "halo", "context", "bright_prob") if k in given}
    return GpuTrainConfig(
        out=str(args.out),
        rim=rim,
        problems=WindowConfig(**window),
        batch=args.batch or GpuTrainConfig.batch,
        **given,
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m skarim.train.gpu", description=__doc__.splitlines()[0]
    )
    p.add_argument("--out", required=True, help="the run's folder (resumed when it holds one)")
    p.add_argument("--minutes", type=float, default=9.0, help="wall time of this command")
    p.add_argument("--checkpoint-minutes", type=float, default=2.0)
    p.add_argument("--max-steps", type=int, default=None, help="optimiser steps at most")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    p.add_argument("--batch", type=int, default=None, help="windows per step (default 32)")
    p.add_argument("--init", default=None, help="weights a new run starts from")
    for flag, kind in (
        ("hidden", int),
        ("steps", int),
        ("core", int),
        ("halo", int),
        ("context", int),
        ("lr", float),
        ("warm-start", float),
        ("val-problems", int),
        ("seed", int),
        ("faint-loss-weight", float),
        ("sharp-loss-weight", float),
        ("bright-prob", float),
    ):
        p.add_argument(f"--{flag}", type=kind, default=None)
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse the flags and train; bad input ends with one line on stderr and status 2."""
    args = _parser().parse_args(argv)
    try:
        if min(args.minutes, args.checkpoint_minutes) <= 0 or (args.batch or 1) < 1:
            raise InputError("--minutes, --checkpoint-minutes and --batch must be positive")
        device = select_device(args.device).device
        train_gpu(
            config_from_flags(args),
            Budget(args.minutes, args.checkpoint_minutes, args.max_steps),
            device,
        )
    except SkarimError as exc:
        print(f"skarim.train.gpu: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
