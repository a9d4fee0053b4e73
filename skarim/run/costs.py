"""What one unit of each kind of work costs on a machine: the inputs of :mod:`skarim.run.budget`.

A :class:`Costs` record holds seconds per unit of work (a visibility gridded, an image pixel
of a ducc0 call, a RIM window pixel and step, a Hogbom pixel and iteration, a byte read from
a Measurement Set, a pixel through the store or into a FITS file) and bytes of the parts no
array size predicts (the process of a run, an idle Dask worker, ducc0's working memory per
pixel, the RIM's activations per window pixel). ``skarim plan --calibrate``
(:func:`skarim.run.calibrate.calibrate`) measures them on the machine and saves them as JSON
(:func:`save_costs`); :func:`load_costs` reads, in order, the file named, the user's file
(:func:`user_costs_path`), or the defaults shipped in the package (``costs.json`` beside this
module, measured on a 2-core machine). Seconds are for one thread; a task with more threads
is planned faster by :attr:`Costs.thread_efficiency`.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from skarim.errors import InputError

__all__ = ["SHIPPED_COSTS", "Costs", "load_costs", "save_costs", "user_costs_path"]

log = logging.getLogger("skarim")

SHIPPED_COSTS = Path(__file__).with_name("costs.json")
"""The defaults shipped in the package."""


@dataclass(frozen=True)
class Costs:
    """Seconds and bytes per unit of work on one machine (one thread).

    Attributes
    ----------
    machine : str
        The machine measured (CPU model, cores), for the record.
    measured : str
        When and with which skarim version, for the record.
    epsilon : float
        ducc0 accuracy the gridding costs were measured at.
    ducc_vis_s : float
        Seconds per visibility of a ducc0 call (gridding or degridding).
    ducc_pixel_s : float
        Seconds per image pixel of a ducc0 call whose w-planes are the kernel's least number
        (a call with ``k`` times the planes costs ``k`` times this).
    ducc_pixel_bytes : float
        Working memory of a ducc0 call per image pixel (its oversampled complex grid and the
        image it returns), single precision, bytes.
    ducc_vis_bytes : float
        Working memory of a ducc0 call per visibility (its index), bytes.
    weights_vis_s : float
        Seconds per visibility of the imaging weights (a Briggs grid's sums and lookups).
    read_byte_s : float
        Seconds per byte of whole data, flag and weight cells read from a Measurement Set,
        Stokes I included.
    store_pixel_s : float
        Seconds per float32 pixel written to the run's store and read back.
    fits_pixel_s : float
        Seconds per pixel of a product read from the store and written to FITS.
    restore_pixel_s : float
        Seconds per pixel of restoring a band (the beam's FFT convolution), on top of
        ``fits_pixel_s``.
    rim_pixel_step_s : float
        Seconds per window pixel and RIM step on the CPU.
    rim_gpu_pixel_step_s : float
        The same on one GPU; 0 where no GPU was measured.
    rim_pixel_bytes : float
        The RIM's activations per window pixel on the CPU, bytes.
    hogbom_pixel_iteration_s : float
        Seconds per window pixel and Hogbom minor iteration.
    thread_efficiency : float
        What each thread beyond the first adds to a task's speed, 0 to 1: ``n`` threads run
        ``1 + (n - 1) * thread_efficiency`` times as fast as one (one thread's CPU time over
        that of ducc0's threads on every core: their overhead, not other work's load).
    run_s : float
        Seconds a run takes whatever its size: imports, opening the Measurement Set, the
        store's creation, the RIM's weights.
    cluster_start_s : float
        Seconds to start a local Dask cluster and load skarim's tasks in a worker.
    process_bytes : int
        Peak resident memory of a smallest run in one process (``--scheduler sync``), bytes.
    worker_bytes : int
        Resident memory of an idle Dask worker with skarim's tasks imported, bytes.
    worker_torch_bytes : int
        What torch and the RIM's weights add to a worker (a deconvolving run's), bytes.
    """

    machine: str
    measured: str
    epsilon: float
    ducc_vis_s: float
    ducc_pixel_s: float
    ducc_pixel_bytes: float
    ducc_vis_bytes: float
    weights_vis_s: float
    read_byte_s: float
    store_pixel_s: float
    fits_pixel_s: float
    restore_pixel_s: float
    rim_pixel_step_s: float
    rim_gpu_pixel_step_s: float
    rim_pixel_bytes: float
    hogbom_pixel_iteration_s: float
    thread_efficiency: float
    run_s: float
    cluster_start_s: float
    process_bytes: int
    worker_bytes: int
    worker_torch_bytes: int

    def to_dict(self) -> dict:
        """JSON-able form (:func:`save_costs`)."""
        return asdict(self)


def user_costs_path() -> Path:
    """Where ``skarim plan --calibrate`` saves costs by default.

    ``$XDG_CONFIG_HOME/skarim/costs.json``, else ``~/.config/skarim/costs.json``.
    """
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "skarim" / "costs.json"


def load_costs(path: Path | None = None) -> Costs:
    """The costs of ``path``; without it the user's calibration, else the shipped defaults.

    A user's calibration that cannot be used (another version's fields) is passed over for
    the shipped defaults, with a warning.

    Raises
    ------
    InputError
        If the file cannot be read or does not hold exactly the fields of :class:`Costs`.
    """
    if path is None:
        if user_costs_path().is_file():
            try:
                return load_costs(user_costs_path())
            except InputError as exc:
                log.warning("%s; the shipped costs are used", exc)
        path = SHIPPED_COSTS
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read costs {path}: {exc}") from None
    names = {f.name for f in fields(Costs)}
    if not isinstance(data, dict) or set(data) != names:
        raise InputError(
            f"costs {path} do not hold the fields of this skarim version; "
            "run skarim plan --calibrate to measure them again"
        )
    return Costs(**data)


def save_costs(costs: Costs, path: Path | None = None) -> Path:
    """Write ``costs`` as JSON to ``path`` (default :func:`user_costs_path`); returns the path."""
    path = Path(path) if path is not None else user_costs_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(costs.to_dict(), indent=1) + "\n")
    except OSError as exc:
        raise InputError(f"cannot write costs {path}: {exc}") from None
    return path
