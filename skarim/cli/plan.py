"""``skarim plan``: what a run will need before it runs, per stage, as text or JSON.

:func:`plan_command` makes the command from ``skarim image``'s own parameters (every flag
of ``image``, the Measurement Set optional) and the planner's: the workers
(``--worker-memory``, ``--gpus``), a target observation that need not exist
(``--target-channels``, ``--antennas``, ``--hours``, ``--integration``,
``--max-baseline-km``, ``--freq-ghz``; without a Measurement Set, an SKA-Mid-like one,
:data:`skarim.run.observation.SKA_MID`), the fraction of tiles deconvolved (``--busy``),
the costs (``--costs FILE``; ``--calibrate`` measures and saves them) and ``--json``.
:func:`format_budget` and :func:`budget_json` turn a :class:`~skarim.run.budget.RunBudget`
into the table and the JSON; the JSON's top level holds ``worker_mib`` and ``wall_s``.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Annotated, Any

import typer

from skarim.errors import InputError

__all__ = ["budget_json", "format_budget", "parse_bytes", "plan_command"]

_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_bytes(text: str) -> int:
    """``16GiB``, ``16G``, ``1.5 TB`` or ``512MiB`` to bytes (powers of 1024).

    Raises
    ------
    InputError
        If the text is not a number with an optional unit.
    """
    match = re.fullmatch(r"\s*([0-9.]+)\s*([kmgt]?)i?b?\s*", text.lower())
    if not match:
        raise InputError(f"--worker-memory expects a size such as 16GiB, got {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


_Opt = typer.Option
_TARGET = "the MS's, else SKA-Mid-like"
_EXTRA = {
    "worker_memory": (
        Annotated[str | None, _Opt(help="Memory per worker, e.g. 16GiB.",
                                   show_default="the run's workers'")], None),
    "gpus": (Annotated[int | None, _Opt(help="GPUs of the machine.", show_default="torch's")],
             None),
    "target_channels": (
        Annotated[int | None, _Opt(help="Channels of the target observation.",
                                   show_default=_TARGET)], None),
    "antennas": (
        Annotated[int | None, _Opt(help="Antennas of the target array.", show_default=_TARGET)],
        None),
    "hours": (Annotated[float | None, _Opt(help="Track length of the target, hours.",
                                           show_default=_TARGET)], None),
    "integration": (Annotated[float | None, _Opt(help="Target's dump time, seconds.",
                                                 show_default=_TARGET)], None),
    "max_baseline_km": (
        Annotated[float | None, _Opt(help="Target's longest baseline, km.", show_default=_TARGET)],
        None),
    "freq_ghz": (Annotated[float | None, _Opt(help="Target's highest frequency, GHz.",
                                              show_default=_TARGET)], None),
    "busy": (
        Annotated[float, _Opt(help="Fraction of tiles deconvolved in each cycle.")], 1.0),
    "costs": (Annotated[Path | None, _Opt(help="Costs JSON.",
                                          show_default="calibrated, else shipped")], None),
    "calibrate": (
        Annotated[bool, _Opt("--calibrate", help="Measure this machine's costs, save them.",
                             show_default="off")],
        False),
    "json_out": (Annotated[bool, _Opt("--json", help="Print JSON.", show_default="off")], False),
}  # fmt: skip


def plan_command(image: Callable[..., None]) -> Callable[..., None]:
    """The ``plan`` command: ``image``'s parameters, its Measurement Set optional, and the
    planner's (module docstring)."""
    params = []
    for p in inspect.signature(image, eval_str=True).parameters.values():
        if p.name == "ms":
            arg = typer.Argument(help="Measurement Set (default: a target, --target-*).")
            p = p.replace(annotation=Annotated[Path | None, arg], default=None)
        elif p.name == "quiet":
            continue
        params.append(p)
    kind = inspect.Parameter.KEYWORD_ONLY
    for name, (annotation, default) in _EXTRA.items():
        params.append(inspect.Parameter(name, kind, annotation=annotation, default=default))

    def plan(**kw: Any) -> None:
        """Plan a run of skarim image: tasks, memory, I/O, storage and time per stage."""
        typer.echo(_plan(kw))

    plan.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [p.replace(kind=kind) for p in params]
    )
    return plan


def _plan(kw: dict[str, Any]) -> str:
    from skarim.config import RunConfig, RunFlags
    from skarim.run.budget import plan_budget
    from skarim.run.costs import load_costs, save_costs
    from skarim.run.preflight import refusal, rim_steps, task_limit

    if kw["calibrate"]:
        from skarim.run.calibrate import calibrate

        path = save_costs(calibrate(), kw["costs"])
        return f"costs measured and saved to {path}"
    if not 0 <= kw["busy"] <= 1:
        raise InputError(f"--busy is a fraction of the tiles, 0 to 1; got {kw['busy']}")
    memory = None if kw["worker_memory"] is None else parse_bytes(kw["worker_memory"])
    costs = load_costs(kw["costs"])
    given = {f.name: kw[f.name] for f in fields(RunFlags) if f.name in kw}
    flags = RunFlags(**{**given, "ms": kw["ms"] or Path("target.ms")})
    cfg = RunConfig.from_flags(flags, kw["config"])
    obs = _observation(cfg, kw)
    plan, n_workers = _workers(cfg, kw["gpus"], memory)
    steps = rim_steps(cfg)
    budget = plan_budget(cfg, obs, plan, n_workers, costs, busy=kw["busy"], rim_steps=steps)
    limit = task_limit(cfg, plan)
    verdict = refusal(cfg, obs, plan, n_workers, costs, budget, limit, steps) if limit else None
    if kw["json_out"]:
        return json.dumps(budget_json(budget, obs.source, verdict), indent=1)
    return format_budget(budget, obs.source, verdict)


def _observation(cfg: Any, kw: dict[str, Any]) -> Any:
    """The MS's counts, or the target's; target flags given with an MS replace its counts."""
    from skarim.io.ms_meta import open_ms
    from skarim.run.observation import SKA_MID, observation_of_ms, target_observation

    changes = {
        "channels": kw["target_channels"], "antennas": kw["antennas"], "hours": kw["hours"],
        "integration_s": kw["integration"],
        "max_baseline_m": None if kw["max_baseline_km"] is None else kw["max_baseline_km"] * 1e3,
        "max_freq_hz": None if kw["freq_ghz"] is None else kw["freq_ghz"] * 1e9,
    }  # fmt: skip
    changes = {k: v for k, v in changes.items() if v is not None}
    if any(not v > 0 for v in changes.values()):
        raise InputError("target flags (channels, antennas, hours, ...) must be positive")
    if kw["ms"] is None:
        return target_observation(replace(SKA_MID, **changes))
    obs = observation_of_ms(open_ms(cfg.read))
    if "channels" in changes:
        obs = obs.with_channels(int(changes.pop("channels")))
    if {"antennas", "hours", "integration_s"} & set(changes):
        rows = replace(SKA_MID, **changes, channels=obs.channels).rows
        obs = replace(obs, rows=rows, source=f"{obs.source}, {rows} rows")
    return obs


def _workers(cfg: Any, gpus: int | None, memory: int | None) -> tuple[Any, int]:
    """The run's workers (:func:`skarim.run.cluster.run_plan`), with ``--gpus`` and
    ``--worker-memory`` applied."""
    import os

    from skarim.config import ClusterKind
    from skarim.run.cluster import run_plan
    from skarim.run.workers import plan_workers

    plan, n_workers = run_plan(cfg)
    local = cfg.cluster.kind is ClusterKind.local and cfg.cluster.scheduler is None
    if gpus is not None and local:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        device = "cpu" if cfg.dirty_only else cfg.deconv.device.value
        cl = cfg.cluster
        cores = len(os.sched_getaffinity(0))
        plan = plan_workers(
            cores, total, gpus, device,
            n_workers=cl.n_workers, threads_per_worker=cl.threads_per_worker,
        )  # fmt: skip
        n_workers = plan.processes
    if memory is not None:
        plan = replace(plan, memory_per_worker=memory)
    return plan, n_workers


def _mib(nbytes: float) -> float:
    return round(nbytes / 2**20, 1)


def budget_json(budget: Any, source: str, verdict: str | None) -> dict[str, Any]:
    """The plan as JSON-able data: ``worker_mib``, ``wall_s`` and the rest at the top level."""
    return {
        "worker_mib": _mib(budget.worker_bytes),
        "driver_mib": _mib(budget.driver_bytes),
        "limit_mib": _mib(budget.limit_bytes),
        "wall_s": round(budget.wall_s, 1),
        "cpu_hours_per_cycle": budget.cycle_hours("cpu"),
        "gpu_hours_per_cycle": budget.cycle_hours("gpu"),
        "store_gib": budget.store_bytes / 2**30,
        "fits_gib": budget.fits_bytes / 2**30,
        "workers": budget.workers,
        "threads": budget.threads,
        "cycles": budget.cycles,
        "residuals_per_channel": budget.residuals,
        "fits": (verdict is None) if budget.limit_bytes else None,  # None: not checked
        "refusal": verdict,
        "observation": source,
        "notes": list(budget.notes),
        "stages": [
            {
                "name": s.name, "process": s.process, "tasks": s.tasks, "per_cycle": s.per_cycle,
                "memory_mib": _mib(s.memory_bytes),
                "arrays_mib": {k: _mib(v) for k, v in s.arrays},
                "vis_read_gib": s.vis_read_bytes / 2**30, "cpu_hours": s.cpu_s / 3600,
                "gpu_hours": s.gpu_s / 3600, "wall_s": s.wall_s,
            }
            for s in budget.stages
        ],
    }  # fmt: skip


def _size(nbytes: float) -> str:
    units = (("EiB", 2**60), ("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20))
    for unit, scale in units:
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes / 2**10:.0f} KiB"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.3g} h" if seconds >= 360 else f"{seconds:.3g} s"


def _verdict(budget: Any, verdict: str | None) -> str:
    if verdict is not None:
        return f"refused: {verdict}"
    if not budget.limit_bytes:
        return "fits: not checked, the workers' memory is not known here (--worker-memory)"
    return "fits: every task within a worker's memory"


def format_budget(budget: Any, source: str, verdict: str | None) -> str:
    """The plan as a table per stage, then totals, notes and whether it fits."""
    head = (
        f"{'stage':<12} {'per':>5} {'tasks':>9} {'memory/task':>12} {'vis read':>10} "
        f"{'CPU':>9} {'GPU':>8} {'wall':>9}  largest arrays of a task"
    )
    lines = [f"observation: {source}", head, "-" * len(head)]
    for s in budget.stages:
        parts = sorted((p for p in s.arrays if p[0] != "process"), key=lambda p: -p[1])[:3]
        arrays = ", ".join(f"{k} {_size(v)}" for k, v in parts)
        lines.append(
            f"{s.name:<12} {'cycle' if s.per_cycle else 'run':>5} {s.tasks:>9,} "
            f"{_size(s.memory_bytes):>12} {_size(s.vis_read_bytes):>10} {_hours(s.cpu_s):>9} "
            f"{_hours(s.gpu_s):>8} {_hours(s.wall_s):>9}  {arrays}"
        )
    limit = _size(budget.limit_bytes) if budget.limit_bytes else "not known"
    gpu = "GPU" if budget.gpus else "CPU"
    lines += [
        "",
        f"workers: {budget.workers} x {budget.threads} thread(s), {limit} each; RIM on {gpu}; "
        f"{budget.cycles} major cycles, {budget.residuals} exact residuals per channel",
        f"per worker {_size(budget.worker_bytes)}, driver {_size(budget.driver_bytes)}; store "
        f"{_size(budget.store_bytes)} (uncompressed, at most), FITS {_size(budget.fits_bytes)}",
        f"per major cycle: {budget.cycle_hours('cpu'):.3g} CPU-hours, "
        f"{budget.cycle_hours('gpu'):.3g} GPU-hours; wall estimate {_hours(budget.wall_s)}",
        *(f"note: {n}" for n in budget.notes),
        _verdict(budget, verdict),
    ]
    return "\n".join(lines)
