"""Where the RIM runs and in what arithmetic: one device and one layer dtype for a name.

:func:`select_device` is the one place that turns a device name (``cpu``, ``cuda``,
``auto``) and a precision (``float32``, ``bfloat16``, ``auto``) into a torch device and the
dtype of the RIM's layers, for the command line's checks, the run's plan, the worker tasks
and training alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from skarim.errors import DeviceError

__all__ = ["ComputeDevice", "select_device"]


@dataclass(frozen=True)
class ComputeDevice:
    """A torch device and the arithmetic of the RIM's layers on it.

    Attributes
    ----------
    device : torch.device
        Where the network runs.
    dtype : torch.dtype
        Arithmetic of the network's layers (:meth:`skarim.deconv.rim.RIM.cast_layers`); the
        estimate, the operator and the FFTs stay float32.
    """

    device: torch.device
    dtype: torch.dtype


def select_device(
    name: str,
    precision: str = "float32",
    *,
    gpus: bool | None = None,
    worker: str | None = None,
) -> ComputeDevice:
    """The device and layer dtype for a device name and a precision.

    ``auto`` takes CUDA when there are GPUs, else the CPU. Whether there are GPUs is torch's
    view of this machine, or ``gpus`` when given (the workers of a cluster, which this
    process may not see). On CUDA a Dask worker whose name ends in a number ``n``
    (LocalCluster workers ``0, 1, ...``; dask-jobqueue's ``<job>-<process>``) takes GPU
    ``n`` modulo the GPUs it sees, so worker processes sharing a node spread over its GPUs;
    another worker name takes GPU 0, and outside a worker it is the current GPU.

    The precision ``auto`` is bfloat16 on a CPU with native bfloat16 arithmetic (AVX512-BF16
    or AMX), where it runs the RIM faster than float32 for the same pipeline SNR
    (docs/benchmarks.md), and float32 elsewhere: a CPU without it would emulate bfloat16
    slowly, and on GPUs its quality has not been measured.

    Parameters
    ----------
    name : str or Device
        ``cpu``, ``cuda`` or ``auto``.
    precision : str or Precision
        ``float32``, ``bfloat16`` or ``auto``.
    gpus : bool, optional
        Whether the workers that will run the RIM offer GPUs; None asks torch about this
        machine.
    worker : str, optional
        Name of the Dask worker process this runs in; None outside a worker.

    Returns
    -------
    ComputeDevice

    Raises
    ------
    DeviceError
        If CUDA is asked for and there is no GPU, or the name is unknown.
    ValueError
        If the precision is unknown.
    """
    name = getattr(name, "value", name)
    present = torch.cuda.is_available() if gpus is None else gpus
    if name == "auto":
        name = "cuda" if present else "cpu"
    if name == "cuda" and not present:
        where = (
            "torch sees no CUDA GPU on this machine"
            if gpus is None
            else "no worker of the cluster offers a GPU"
        )
        raise DeviceError(f"--device cuda asked for, but {where}")
    if name not in ("cpu", "cuda"):
        raise DeviceError(f"unknown device {name!r}; choose cpu, cuda or auto")
    device = torch.device(name)
    if name == "cuda" and worker is not None:
        index = re.search(r"(\d+)$", worker)
        gpu = int(index.group(1)) % torch.cuda.device_count() if index else 0
        device = torch.device("cuda", gpu)
    return ComputeDevice(device, _layer_dtype(precision, device))


def _layer_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The dtype of the RIM's layers for ``precision`` on ``device`` (:func:`select_device`)."""
    precision = getattr(precision, "value", precision)
    if precision == "float32":
        return torch.float32
    if precision == "bfloat16":
        return torch.bfloat16
    if precision != "auto":
        raise ValueError(f"unknown precision {precision!r}; choose auto, float32 or bfloat16")
    native = any(
        getattr(torch.cpu, probe, lambda: False)()
        for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    )
    return torch.bfloat16 if device.type == "cpu" and native else torch.float32
