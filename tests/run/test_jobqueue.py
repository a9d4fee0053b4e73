"""Job recipes' walltime and worker lifetime, the batch job record, a job's share of a node.

These run without a batch system: job scripts come from dask-jobqueue's ``job_script()``, the
batch job record from a real ``LocalCluster`` whose workers see a SLURM job id in their
environment (as the workers of ``pipelines/slurm-run.sbatch`` do). tests/run/test_slurm.py
runs the same code on a real SLURM.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from skarim.config import ClusterKind, load_run_config
from skarim.errors import InputError
from skarim.run.batch_jobs import BatchJobRecorder, batch_jobs
from skarim.run.cluster import open_cluster, run_plan
from skarim.run.jobqueue import WORKER_JOB_NAME, jobqueue_cluster, load_recipe

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"


def test_lifetime_defaults_to_a_share_of_the_walltime():
    recipe = load_recipe(PIPELINES / "slurm.yaml")  # walltime 04:00:00, lifetime null
    assert recipe.walltime_s == 4 * 3600
    assert recipe.lifetime_s == pytest.approx((0.9 * 4 * 3600, 0.05 * 4 * 3600))
    with jobqueue_cluster(ClusterKind.slurm, recipe, "cpu") as cluster:
        script = cluster.job_script()
    assert f"#SBATCH -J {WORKER_JOB_NAME}" in script
    assert "--lifetime=12960s --lifetime-stagger=720s" in script.splitlines()[-1]
    two_days = recipe.model_copy(update={"walltime": "2-00:00:00", "lifetime": "40 hours"})
    assert two_days.walltime_s == 48 * 3600
    assert two_days.lifetime_s == pytest.approx((40 * 3600, 0.05 * 48 * 3600))


def test_local_recipe_books_the_test_node(tmp_path):
    recipe = load_recipe(PIPELINES / "slurm-local.yaml").model_copy(
        update={"log_directory": str(tmp_path / "jobs")}
    )
    with jobqueue_cluster(ClusterKind.slurm, recipe, "auto") as cluster:
        header = set(cluster.job_header.splitlines())
    booked = {"-p debug", "--cpus-per-task=1", "--mem=3G", "-t 00:30:00"}
    booked.add(f"-o {tmp_path}/jobs/{WORKER_JOB_NAME}-%J.out")
    assert {f"#SBATCH {d}" for d in booked} <= header, header
    assert (recipe.min_jobs, recipe.max_jobs, recipe.processes) == (2, 2, 1)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"walltime": "4h"}, "not \\[D-\\]HH:MM:SS"),
        ({"walltime": "00:01:00", "lifetime": "70s"}, "before the walltime"),
        ({"walltime": "00:01:00", "lifetime": "50s", "lifetime_stagger": "10s"}, "before"),
        ({"lifetime": "3h30m"}, "cluster config"),
    ],
)
def test_bad_walltime_or_lifetime_is_one_line(tmp_path, changes, message):
    text = (PIPELINES / "slurm-local.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text + "".join(f"{k}: {v!r}\n" for k, v in changes.items()))
    with pytest.raises(InputError, match=message) as err:
        load_recipe(bad)
    assert "\n" not in str(err.value)


def test_workers_name_the_batch_job_they_run_in(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")  # inherited by the workers, as in a job
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(BatchJobRecorder())
        cluster.scale(2)  # a worker that joins later is recorded too
        client.wait_for_workers(2, timeout=60)
        assert batch_jobs(client) == ["4242"]
        assert len(client.get_events("skarim-batch-job")) == 2


def test_a_local_cluster_is_sized_to_the_slurm_job_it_runs_in(monkeypatch):
    cfg = load_run_config(
        None, {"read": {"ms": "x.ms"}, "grid": {"npix_x": 64, "npix_y": 64, "cell_rad": 1e-5}}
    )
    monkeypatch.setenv("SLURM_CPUS_ON_NODE", "1")
    monkeypatch.setenv("SLURM_MEM_PER_NODE", "3072")  # MiB
    plan, workers = run_plan(cfg)
    assert (workers, plan.threads_per_worker, plan.memory_per_worker) == (1, 1, 3 * 2**30)
    monkeypatch.delenv("SLURM_MEM_PER_NODE")
    monkeypatch.setenv("SLURM_MEM_PER_CPU", "2500")
    assert run_plan(cfg)[0].memory_per_worker == 2500 * 2**20


def test_a_cluster_outside_batch_jobs_records_none(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("PBS_JOBID", raising=False)
    cfg = load_run_config(
        None,
        {
            "read": {"ms": "x.ms"},
            "grid": {"npix_x": 64, "npix_y": 64, "cell_rad": 1e-5},
            "cluster": {"n_workers": 1, "threads_per_worker": 1},
        },
    )
    with open_cluster(cfg) as client:
        assert batch_jobs(client) == []
