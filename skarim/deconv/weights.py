"""RIM weights files: reading, loading, saving and exporting them.

A weights file is a torch file of a plain mapping, ``{"rim_config": RIMConfig as a dict,
"state_dict": the network's tensors}``, read with ``torch.load(weights_only=True)``, so
loading one runs no code. :func:`load_rim` gives a network ready for inference (the
shipped weights by default), :func:`cached_rim` the same once per process (a worker runs
many tile passes), :func:`save_weights` writes a file and :func:`export_weights` ships a
training run's best one into the package. Which file a run uses, and its digest, is
:mod:`skarim.deconv.weights_id`'s (no torch needed). A training run's full checkpoint (``state.pt``:
optimiser, scheduler and random states besides the network) is not a weights file:
:func:`skarim.train.trainer.train` reads and writes it itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from skarim.deconv.rim import RIM, RIMConfig
from skarim.deconv.weights_id import shipped_weights_path
from skarim.errors import WeightsError

__all__ = [
    "read_weights",
    "load_rim",
    "cached_rim",
    "atomic_save",
    "save_weights",
    "export_weights",
]

#: Loaded networks of this process, keyed by (weights path, device, layer dtype).
_RIMS: dict[tuple[str, str, torch.dtype], RIM] = {}


def _read_blob(path: Path, device: torch.device | None = None) -> dict[str, Any]:
    return torch.load(path, map_location=device, weights_only=True)


def read_weights(
    path: Path, device: torch.device | None = None
) -> tuple[RIMConfig, dict[str, torch.Tensor]]:
    """The network sizes and tensors of a weights file, read without running code.

    Parameters
    ----------
    path : Path
        Weights file (:func:`save_weights`).
    device : torch.device, optional
        Where the tensors go; None keeps the device they were saved from.

    Returns
    -------
    tuple of (RIMConfig, dict)
        The network's sizes and its state dict.
    """
    blob = _read_blob(path, device)
    return RIMConfig(**blob["rim_config"]), blob["state_dict"]


def load_rim(path: Path | None, device: torch.device, dtype: torch.dtype = torch.float32) -> RIM:
    """Load RIM weights saved by :func:`save_weights`, ready for inference.

    Parameters
    ----------
    path : Path or None
        Weights file; None takes the weights shipped in the package.
    device : torch.device
        Where the network runs.
    dtype : torch.dtype
        Arithmetic of the network's layers (:func:`skarim.deconv.device.select_device`,
        :meth:`skarim.deconv.rim.RIM.cast_layers`); the estimate, the operator and the FFTs
        stay float32.

    Returns
    -------
    RIM
        The network in evaluation mode, on ``device``.

    Raises
    ------
    WeightsError
        If the file is missing, not a torch file, or does not fit the network.
    """
    path = shipped_weights_path() if path is None else Path(path)
    if not path.is_file():
        raise WeightsError(f"RIM weights file {path} does not exist")
    try:
        config, state = read_weights(path, device)
        model = RIM(config)
        model.load_state_dict(state)
    except Exception as exc:  # any failure to unpickle or to fit the network
        raise WeightsError(
            f"RIM weights file {path} is corrupt or not skarim weights ({type(exc).__name__})"
        ) from None
    # channels-last convolutions: faster on the CPU, equal to the default layout to float32
    # round-off (docs/benchmarks.md)
    return model.to(device, memory_format=torch.channels_last).cast_layers(dtype).eval()


def cached_rim(
    weights: Path | None, device: torch.device, dtype: torch.dtype = torch.float32
) -> RIM:
    """The RIM of ``weights`` on ``device``, layers in ``dtype``, loaded once per process.

    The arguments are those of :func:`load_rim` (``weights`` its ``path``).

    Returns
    -------
    RIM
        As :func:`load_rim` gives it; the same object for the same arguments.
    """
    key = (str(weights), str(device), dtype)
    if key not in _RIMS:
        _RIMS[key] = load_rim(weights, device, dtype)
    return _RIMS[key]


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then renamed over it.

    A reader never sees a half-written file, even when the writer is killed.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_weights(model: RIM, path: Path) -> None:
    """Save weights as a plain state dict plus config, loadable with ``weights_only=True``.

    Parameters
    ----------
    model : RIM
        The network.
    path : Path
        Weights file written (atomically, :func:`atomic_save`).
    """
    atomic_save({"rim_config": model.config.to_dict(), "state_dict": model.state_dict()}, path)


def export_weights(run_dir: Path, dest: Path, config_path: Path) -> None:
    """Ship a run's best weights: ``dest`` plus the recipe and the measured quality beside it.

    Writes ``dest`` (weights), ``dest.stem + "-train.yaml"`` (a copy of the recipe) and
    ``dest.stem + "-quality.json"`` (validation scores, baselines, hardware, wall time).

    Parameters
    ----------
    run_dir : Path
        Training run directory, holding ``best.pt`` and ``quality.json``.
    dest : Path
        Weights file written; its directory is made when missing.
    config_path : Path
        The run's training recipe (YAML).
    """
    run_dir, dest = Path(run_dir), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    torch.save(_read_blob(run_dir / "best.pt"), dest)
    dest.with_name(f"{dest.stem}-train.yaml").write_text(Path(config_path).read_text())
    dest.with_name(f"{dest.stem}-quality.json").write_text((run_dir / "quality.json").read_text())
