"""``skarim plan``: the stages of a small run as text and JSON, the SKA case without a
Measurement Set, and ``skarim image`` refusing a run whose tasks cannot fit, in one line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from msfactory import point_sources_ms

from skarim.run.costs import SHIPPED_COSTS

STAGES = ["grid", "tile passes", "residuals", "products"]


def _skarim(*args, cwd):
    cmd = [sys.executable, "-m", "skarim", *map(str, args)]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def small_ms(tmp_path_factory):
    return point_sources_ms(tmp_path_factory.mktemp("plan"))  # 400 rows, 3 channels


def test_plan_prints_every_stage_of_a_small_run(small_ms, tmp_path):
    r = _skarim("plan", small_ms, "--size", 256, 256, "--scale", "6asec", "--tile", 64,
                "--weight", "briggs", "0", "--costs", SHIPPED_COSTS, cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = [line.split()[0] for line in r.stdout.splitlines()[3:7]]
    assert rows == ["grid", "tile", "residuals", "products"]
    assert "fits: every task within a worker's memory" in r.stdout
    assert "wall estimate" in r.stdout and "CPU-hours" in r.stdout
    assert list(tmp_path.iterdir()) == []  # a plan writes nothing


def test_plan_json_has_the_worker_memory_and_wall_at_the_top(small_ms, tmp_path):
    r = _skarim("plan", small_ms, "--size", 256, "--scale", "6asec", "--tile", 64,
                "--channels-out", 3, "--workers", 3, "--worker-memory", "4GiB", "--json",
                cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert [s["name"] for s in plan["stages"]] == STAGES
    assert plan["workers"] == 3 and plan["limit_mib"] == 4096
    assert plan["fits"] is True and plan["refusal"] is None
    grid = plan["stages"][0]
    assert plan["worker_mib"] == max(s["memory_mib"] for s in plan["stages"][:3]) > 0
    assert grid["tasks"] == 3  # one channel per batch: the batches spread over the workers
    assert grid["memory_mib"] >= grid["arrays_mib"]["process"]
    assert plan["wall_s"] > 0 and plan["store_gib"] > 0
    # 3 channels: the store holds 5 planes and a 128^2 PSF each, float32
    assert plan["store_gib"] * 2**30 == 3 * (5 * 256**2 + 128**2) * 4


def test_the_ska_case_plans_without_a_measurement_set(tmp_path):
    args = ["plan", "--size", 120000, "--scale", "0.06asec", "--channels-out", 1000,
            "--workers", 64, "--worker-memory", "64GiB", "--threads", 16]  # fmt: skip
    r = _skarim(*args, "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan["observation"].startswith("target: 197 antennas, 8 h at 1 s, 1000 channels")
    grid, tiles, residuals, products = plan["stages"]
    assert grid["tasks"] == 1000 and residuals["tasks"] == 1000
    assert plan["store_gib"] * 2**30 == 1000 * (5 * 120000**2 + 512**2) * 4
    assert plan["fits"] is True and 0 < plan["worker_mib"] < 64 * 1024
    text = _skarim(*args, cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert "target: 197 antennas" in text.stdout and "wall estimate" in text.stdout


def test_image_refuses_a_run_whose_tasks_cannot_fit_in_one_line(small_ms, tmp_path):
    r = _skarim("image", small_ms, "--size", 200000, "--facet-pix", 200000, "--scale", "1asec",
                "--scheduler", "sync", "--name", "huge", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("skarim: error: a "), r.stderr
    assert "task needs" in lines[0] and "--facet-pix" in lines[0]
    assert "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []  # no store, no FITS


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--worker-memory", "lots"], "--worker-memory"),
        (["--busy", "2"], "--busy"),
        (["--costs", "missing.json"], "cannot read costs"),
    ],
)
def test_bad_plan_flags_are_one_line_and_exit_2(small_ms, tmp_path, args, message):
    r = _skarim("plan", small_ms, "--size", 256, "--scale", "6asec", *args, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], r.stderr
