"""The imaging runs the benchmark compares, each one separate measured process.

A registry maps a method name to the function that builds its command and finds its
products. Every run writes into ``<case dir>/<method>/``, a fresh directory, so skarim never
resumes from an earlier store and WSClean never finds old files.

- ``skarim_dirty``: ``python -m skarim image ... --dirty-only``: dirty cubes and no PSF, as
  ``wsclean_dirty`` and ``ducc0_raw`` make.
- ``skarim``: the same without ``--dirty-only``; scored when it wrote ``<name>-model.fits``,
  else recorded as "not available" (deconvolution not there yet).
- ``skarim_rim``: ``skarim`` with ``--polish-cycles 0``: the RIM's model alone (pruned), so
  that every run shows what the learned stage gives and what the CLEAN polish adds (not run
  on speed-only cases).
- ``wsclean_dirty``: WSClean with no iterations, the like-for-like speed baseline of
  ``skarim_dirty`` (an addition to the issue's list; it costs seconds).
- ``wsclean_hogbom``, ``wsclean_multiscale``: WSClean 3.x with auto-masking, as in the
  issue: ``-use-wgridder -niter 100000 -auto-threshold 1 -auto-mask 3 -mgain 0.8``.
  ``-wgridder-accuracy`` is set to skarim's epsilon (WSClean's default is 1e-4) so both
  grid to the same accuracy, and ``-j`` to the thread count.
- ``ducc0_raw``: ``bench/ducc0_grid.py``, one read and one ``vis2dirty`` per output channel.
- ``skarim_joined``, ``wsclean_joined`` (only on cases marked ``joined``,
  :func:`methods_for`): ``skarim`` plus ``--join-channels --fit-spectral-pol 2``, and
  ``wsclean_multiscale`` plus ``-join-channels -fit-spectral-pol 2``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cases import Case
from tools import Measured, log_tail, run_measured

from skarim.config import GridConfig

__all__ = [
    "RunSpec",
    "MethodRun",
    "METHODS",
    "JOINED_METHODS",
    "EPSILON",
    "command_line",
    "methods_for",
    "run_method",
]

EPSILON = GridConfig.model_fields["epsilon"].default
"""Gridding accuracy of every tool: skarim's default, which is also WSClean's."""

_BENCH_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class RunSpec:
    """What every method of one case is told.

    Attributes
    ----------
    case : Case
        The case.
    ms : Path
        Its Measurement Set.
    workdir : Path
        The case's directory.
    threads : int
        Threads handed to every tool.
    device : str
        ``cpu`` or ``cuda`` (skarim only).
    skarim_has_device_flag : bool
        Whether ``skarim image`` takes ``--device`` (it is passed only then).
    timeout_s : float or None
        Longest a run may take before it is killed and reported as ``timeout``.
    weights : Path or None
        RIM weights skarim deconvolves with (``--weights``); the shipped ones when None.
    joined_weights : Path or None
        RIM weights of ``skarim_joined`` (a spectral-term network's); ``weights`` when None.
    """

    case: Case
    ms: Path
    workdir: Path
    threads: int
    device: str
    skarim_has_device_flag: bool
    timeout_s: float | None = None
    weights: Path | None = None
    joined_weights: Path | None = None


@dataclass
class MethodRun:
    """One method's run of one case.

    Attributes
    ----------
    method : str
        Registry name.
    status : str
        ``ok``, ``not available``, ``timeout`` or ``failed``.
    measured : Measured or None
        The process's costs (None when it never ran).
    model, residual, psf : list of Path
        Products to score: Jy/pixel model planes, Jy/beam residual (or dirty) planes, PSF.
    note : str
        Why a run is not available or failed.
    extra : dict
        Method-specific numbers (ducc0's own read and grid times).
    """

    method: str
    status: str
    measured: Measured | None = None
    model: list[Path] = field(default_factory=list)
    residual: list[Path] = field(default_factory=list)
    psf: list[Path] = field(default_factory=list)
    note: str = ""
    extra: dict[str, object] = field(default_factory=dict)


def _fresh(spec: RunSpec, method: str) -> Path:
    out = spec.workdir / method
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    return out


def _skarim_cmd(
    spec: RunSpec, prefix: Path, dirty_only: bool, weights: Path | None = None
) -> list[str]:
    c = spec.case
    # skarim plans its workers from the cores it may use, as a user's run does: the run's
    # threads are those cores (``taskset`` when fewer than this process may use)
    cores = sorted(os.sched_getaffinity(0))
    pin = [] if spec.threads >= len(cores) else ["taskset", "-c", _cpu_list(cores[: spec.threads])]
    cmd = [*pin, sys.executable, "-m", "skarim", "image", str(spec.ms),
           "--size", str(c.npix), str(c.npix), "--scale", f"{c.cell_arcsec:g}asec",
           "--weight", "briggs", "0", "--channels-out", str(c.channels_out),
           "--name", str(prefix)]  # fmt: skip
    if spec.skarim_has_device_flag:
        cmd += ["--device", spec.device]
    if dirty_only:
        cmd.append("--dirty-only")
    elif (weights or spec.weights) is not None:
        cmd += ["--weights", str(weights or spec.weights)]
    return cmd


def _cpu_list(cpus: list[int]) -> str:
    return ",".join(str(c) for c in cpus)


def _finish(run: MethodRun, measured: Measured, needed: list[Path]) -> MethodRun:
    run.measured = measured
    missing = [p.name for p in needed if not p.exists()]
    if measured.returncode == -9:
        run.status = "timeout"
        run.note = f"killed after {measured.wall_s:.0f} s"
    elif measured.returncode != 0:
        run.status = "failed"
        run.note = f"exit {measured.returncode}: {log_tail(measured.log)}"
    elif missing:
        run.status = "failed"
        run.note = f"missing {', '.join(missing)}"
    return run


_CLEAN = ("-niter", "100000", "-auto-threshold", "1", "-auto-mask", "3", "-mgain", "0.8")

_SKARIM_EXTRA: dict[str, tuple[str, ...]] = {
    "skarim": (),
    "skarim_rim": ("--polish-cycles", "0"),
    "skarim_joined": ("--join-channels", "--fit-spectral-pol", "2"),
}
_WSCLEAN_EXTRA: dict[str, tuple[str, ...]] = {
    "wsclean_dirty": ("-niter", "0"),
    "wsclean_hogbom": _CLEAN,
    "wsclean_multiscale": (*_CLEAN, "-multiscale"),
    "wsclean_joined": (*_CLEAN, "-multiscale", "-join-channels", "-fit-spectral-pol", "2"),
}


def command_line(method: str, spec: RunSpec, prefix: Path) -> list[str]:
    """The command of a skarim or WSClean method, its products named ``<prefix>-...``.

    Raises
    ------
    KeyError
        If ``method`` is not a skarim or WSClean method.
    """
    if method == "skarim_dirty":
        return _skarim_cmd(spec, prefix, True)
    if method in _SKARIM_EXTRA:
        weights = spec.joined_weights if method == "skarim_joined" else None
        return [*_skarim_cmd(spec, prefix, False, weights), *_SKARIM_EXTRA[method]]
    return _wsclean_cmd(spec, prefix, _WSCLEAN_EXTRA[method])


def _skarim_dirty(spec: RunSpec) -> MethodRun:
    out = _fresh(spec, "skarim_dirty")
    prefix = out / "skarim"
    cmd = command_line("skarim_dirty", spec, prefix)
    m = run_measured(cmd, out, out / "run.log", spec.timeout_s)
    run = MethodRun("skarim_dirty", "ok", residual=[Path(f"{prefix}-dirty.fits")])
    return _finish(run, m, run.residual)


def _skarim(spec: RunSpec, method: str = "skarim") -> MethodRun:
    out = _fresh(spec, method)
    prefix = out / "skarim"
    m = run_measured(command_line(method, spec, prefix), out, out / "run.log", spec.timeout_s)
    model = Path(f"{prefix}-model.fits")
    run = MethodRun(
        method, "ok", model=[model], residual=[Path(f"{prefix}-residual.fits")],
        psf=[Path(f"{prefix}-psf.fits")],
    )  # fmt: skip
    if m.returncode == 0 and not model.exists():
        run.measured = m
        run.status = "not available"
        run.note = f"{model.name} not written (skarim deconvolution not available yet)"
        return run
    return _finish(run, m, run.model)


def _skarim_joined(spec: RunSpec) -> MethodRun:
    return _skarim(spec, "skarim_joined")


def _skarim_rim(spec: RunSpec) -> MethodRun:
    if spec.case.speed_only:
        return MethodRun("skarim_rim", "not available", note="speed-only case")
    return _skarim(spec, "skarim_rim")


def _wsclean_cmd(spec: RunSpec, prefix: Path, extra: tuple[str, ...]) -> list[str]:
    c = spec.case
    return ["wsclean", "-size", str(c.npix), str(c.npix), "-scale", f"{c.cell_arcsec:g}asec",
            "-weight", "briggs", "0", "-channels-out", str(c.channels_out), "-use-wgridder",
            "-wgridder-accuracy", f"{EPSILON:g}", "-j", str(spec.threads), *extra,
            "-name", str(prefix), str(spec.ms)]  # fmt: skip


def _wsclean_products(prefix: Path, channels_out: int, product: str) -> list[Path]:
    if channels_out == 1:
        return [Path(f"{prefix}-{product}.fits")]
    return [Path(f"{prefix}-{k:04d}-{product}.fits") for k in range(channels_out)]


def _wsclean(spec: RunSpec, method: str, deconvolve: bool = True) -> MethodRun:
    if shutil.which("wsclean") is None:
        return MethodRun(method, "not available", note="wsclean not on PATH")
    out = _fresh(spec, method)
    prefix = out / "wsclean"
    m = run_measured(command_line(method, spec, prefix), out, out / "run.log", spec.timeout_s)
    k = spec.case.channels_out
    run = MethodRun(method, "ok", psf=_wsclean_products(prefix, k, "psf"))
    if deconvolve:
        run.model = _wsclean_products(prefix, k, "model")
        run.residual = _wsclean_products(prefix, k, "residual")
    else:
        run.residual = _wsclean_products(prefix, k, "dirty")
    return _finish(run, m, run.model + run.residual)


def _wsclean_dirty(spec: RunSpec) -> MethodRun:
    return _wsclean(spec, "wsclean_dirty", deconvolve=False)


def _wsclean_hogbom(spec: RunSpec) -> MethodRun:
    return _wsclean(spec, "wsclean_hogbom")


def _wsclean_multiscale(spec: RunSpec) -> MethodRun:
    return _wsclean(spec, "wsclean_multiscale")


def _wsclean_joined(spec: RunSpec) -> MethodRun:
    return _wsclean(spec, "wsclean_joined")


def _ducc0_raw(spec: RunSpec) -> MethodRun:
    out = _fresh(spec, "ducc0_raw")
    stats = out / "ducc0.json"
    c = spec.case
    cmd = [sys.executable, str(_BENCH_DIR / "ducc0_grid.py"), str(spec.ms), str(c.npix),
           repr(c.cell_rad), str(c.channels_out), f"{EPSILON:g}", str(spec.threads),
           str(stats)]  # fmt: skip
    m = run_measured(cmd, out, out / "run.log", spec.timeout_s)
    run = _finish(MethodRun("ducc0_raw", "ok"), m, [stats])
    if run.status == "ok":
        run.extra = json.loads(stats.read_text())
    return run


METHODS: dict[str, Callable[[RunSpec], MethodRun]] = {
    "skarim_dirty": _skarim_dirty,
    "skarim": _skarim,
    "skarim_rim": _skarim_rim,
    "skarim_joined": _skarim_joined,
    "wsclean_dirty": _wsclean_dirty,
    "wsclean_hogbom": _wsclean_hogbom,
    "wsclean_multiscale": _wsclean_multiscale,
    "wsclean_joined": _wsclean_joined,
    "ducc0_raw": _ducc0_raw,
}
"""Every method, in the order it runs and is reported."""

JOINED_METHODS = frozenset({"skarim_joined", "wsclean_joined"})
"""The methods that run only on cases marked ``joined``."""


def methods_for(case: Case) -> list[str]:
    """The methods run on ``case``, in registry order: all but the joined ones unless it is
    a joined case."""
    return [name for name in METHODS if case.joined or name not in JOINED_METHODS]


def run_method(name: str, spec: RunSpec) -> MethodRun:
    """Run one method of the registry on one case."""
    return METHODS[name](spec)
