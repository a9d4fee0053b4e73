"""Running one tool as a measured process, and describing the machine it ran on.

Wall time is taken around the child with :func:`time.perf_counter`. Peak memory and CPU
time come from GNU ``/usr/bin/time`` (``%M``: "Maximum resident set size", KiB; ``%U``,
``%S``), which forks the tool from its own small process. Reading ``ru_maxrss`` of a child
forked straight from the benchmark (``os.wait4`` or ``getrusage(RUSAGE_CHILDREN)``) is wrong
on Linux: the kernel keeps the high-water mark of the address space the child had before
``exec`` (a copy of the benchmark's), so every small tool would report at least the
benchmark's own resident size (measured: 170 MiB for WSClean, skarim and ducc0 alike).
Without ``/usr/bin/time`` the peak memory is left unknown and the CPU time comes from
``getrusage(RUSAGE_CHILDREN)`` (a sum, so that one is exact).
"""

from __future__ import annotations

import math
import os
import platform
import resource
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

__all__ = ["Measured", "run_measured", "machine_info", "tool_versions", "ensure_table_locks"]

_GNU_TIME = "/usr/bin/time" if Path("/usr/bin/time").is_file() else None


@dataclass(frozen=True)
class Measured:
    """What one process cost.

    Attributes
    ----------
    cmd : list of str
        The command line.
    returncode : int
        Exit status (-9: killed at the timeout).
    wall_s : float
        Wall-clock seconds, start to exit.
    cpu_s : float
        User plus system CPU seconds of the process.
    peak_rss_mb : float
        Maximum resident set size, MiB.
    peak_rss_source : str
        Where the peak memory came from (``/usr/bin/time``), or why it is unknown.
    log : str
        File holding the process's stdout and stderr.
    """

    cmd: list[str]
    returncode: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    peak_rss_source: str
    log: str

    def as_dict(self) -> dict[str, object]:
        """Plain values for JSON."""
        return asdict(self)


def run_measured(
    cmd: list[str], cwd: Path, log_path: Path, timeout_s: float | None = None
) -> Measured:
    """Run ``cmd`` to completion in ``cwd``, output to ``log_path``, and measure it.

    A run longer than ``timeout_s`` seconds is killed (its whole process group, which this
    function started) and reported with ``returncode`` -9 and no peak memory.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    usage_path = log_path.with_suffix(".time")
    wrapper = [_GNU_TIME, "-f", "%M %U %S", "-o", str(usage_path)] if _GNU_TIME else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with log_path.open("w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [*wrapper, *cmd], cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            returncode = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            returncode = -9  # CPU time of the killed tool is lost with /usr/bin/time
            log.write(f"\nbench: killed after {timeout_s} s\n")
        wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if returncode == -9:
        cpu_s = math.nan
    peak_mb, source = math.nan, "unavailable (no /usr/bin/time)"
    if _GNU_TIME and returncode != -9:
        try:
            # GNU time prefixes "Command exited with non-zero status N" when the tool fails
            kib, user, system = usage_path.read_text().split()[-3:]
            peak_mb, cpu_s, source = float(kib) / 1024.0, float(user) + float(system), _GNU_TIME
        except (OSError, ValueError):
            source = "unavailable (unreadable /usr/bin/time output)"
    return Measured(
        cmd=list(cmd),
        returncode=returncode,
        wall_s=wall,
        cpu_s=cpu_s,
        peak_rss_mb=peak_mb,
        peak_rss_source=source,
        log=str(log_path),
    )


def log_tail(path: str | Path, lines: int = 5) -> str:
    """Last lines of a log file, for a failure message."""
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(device: str) -> dict[str, object]:
    """CPU model, core counts, load, and the GPU's name when ``device`` is ``cuda``."""
    info: dict[str, object] = {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "loadavg_1_5_15": list(os.getloadavg()),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "device": device,
        "gpu": None,
    }
    if device == "cuda":
        import torch

        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def tool_versions() -> dict[str, str | None]:
    """Versions of skarim, torch, ducc0, python-casacore, numpy and WSClean."""
    versions = {d: _version(d) for d in ("skarim", "torch", "ducc0", "python-casacore", "numpy")}
    wsclean = shutil.which("wsclean")
    versions["wsclean"] = None
    if wsclean:
        out = subprocess.run([wsclean, "--version"], capture_output=True, text=True, check=False)
        first = next((ln for ln in out.stdout.splitlines() if "version" in ln.lower()), "")
        versions["wsclean"] = first.strip() or None
    return versions


def ensure_table_locks(ms: Path) -> list[str]:
    """Give every table of a Measurement Set a ``table.lock`` (WSClean wants them).

    casacore writes the lock file when a table is opened for writing; a table written
    without one is opened and closed writable here. Returns the tables that lacked one.
    """
    from casacore.tables import table

    missing = [
        d for d in [ms, *sorted(p for p in ms.iterdir() if p.is_dir())]
        if (d / "table.dat").exists() and not (d / "table.lock").exists()
    ]  # fmt: skip
    for d in missing:
        table(str(d), readonly=False, ack=False).close()
    return [str(d) for d in missing]
