"""Worker planning, cluster settings, the SLURM/PBS recipes and the ``image`` cluster flags."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

import skarim.run.workers
from skarim.cli.app import main
from skarim.config import ClusterConfig, ClusterKind, load_run_config
from skarim.errors import InputError
from skarim.run.jobqueue import jobqueue_cluster, load_recipe
from skarim.run.workers import MIN_WORKER_MEMORY, plan_workers

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"
GIB = 2**30


def test_doctests_of_the_planner():
    assert doctest.testmod(skarim.run.workers).failed == 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((2, 8 * GIB), (2, 1, 4 * GIB, 0)),
        ((2, 8 * GIB, 1, "cpu"), (2, 1, 4 * GIB, 0)),  # a GPU the RIM is told not to use
        ((32, 16 * GIB), (8, 4, 2 * GIB, 0)),  # memory, not cores, bounds the processes
        ((1, GIB), (1, 1, GIB, 0)),  # below the minimum memory: still one worker
        ((8, 64 * GIB, 4, "cuda"), (4, 2, 16 * GIB, 1)),
        ((8, 64 * GIB, 4, "auto"), (4, 2, 16 * GIB, 1)),
    ],
)
def test_plan_workers(args, expected):
    plan = plan_workers(*args)
    got = (plan.processes, plan.threads_per_worker, plan.memory_per_worker, plan.gpus_per_worker)
    assert got == expected
    assert plan.processes * plan.threads_per_worker <= args[0]
    assert plan.resources == ({"GPU": 1} if expected[3] else {})


def test_plan_workers_overrides_and_bad_counts():
    plan = plan_workers(16, 64 * GIB, n_workers=2)
    assert (plan.processes, plan.threads_per_worker) == (2, 8)
    plan = plan_workers(16, 64 * GIB, threads_per_worker=4)
    assert (plan.processes, plan.threads_per_worker) == (4, 4)
    assert plan.memory_per_worker >= MIN_WORKER_MEMORY
    with pytest.raises(InputError, match="threads per worker"):
        plan_workers(16, 64 * GIB, threads_per_worker=0)
    with pytest.raises(InputError, match="cannot plan"):
        plan_workers(0, 64 * GIB)


def test_cluster_settings_are_validated_and_not_fingerprinted():
    with pytest.raises(ValueError, match="needs --cluster-config"):
        ClusterConfig(kind="slurm")
    with pytest.raises(ValueError, match="only used with"):
        ClusterConfig(cluster_config=PIPELINES / "slurm.yaml")
    with pytest.raises(ValueError, match="joins a running cluster"):
        ClusterConfig(kind="sync", scheduler="tcp://localhost:8786")
    with pytest.raises(ValueError, match="n_workers must be >= 1"):
        ClusterConfig(n_workers=0)
    base = {"read": {"ms": "x.ms"}, "grid": {"npix_x": 64, "npix_y": 64, "cell_rad": 1e-5}}
    local = load_run_config(None, base)
    elsewhere = load_run_config(
        None,
        {
            **base,
            "cluster": {
                "kind": "slurm",
                "cluster_config": PIPELINES / "slurm.yaml",
                "threads_per_worker": 8,
            },
        },
    )
    assert elsewhere.cluster.kind is ClusterKind.slurm
    assert local.fingerprint_dict() == elsewhere.fingerprint_dict()  # resumable elsewhere


def test_local_recipe_is_a_run_config_fragment():
    cfg = load_run_config(
        PIPELINES / "local.yaml",
        {"read": {"ms": "x.ms"}, "grid": {"npix_x": 64, "npix_y": 64, "cell_rad": 1e-5}},
    )
    assert cfg.cluster.kind is ClusterKind.local and cfg.cluster.n_workers is None


def test_slurm_recipe_job_script():
    recipe = load_recipe(PIPELINES / "slurm.yaml")
    with jobqueue_cluster(ClusterKind.slurm, recipe, "auto") as cluster:
        script = cluster.job_script()
    for line in (
        "#SBATCH -p gpu",
        "#SBATCH --cpus-per-task=16",
        "#SBATCH --mem=64G",
        "#SBATCH -t 04:00:00",
        "#SBATCH --gres=gpu:1",
        "source ~/venvs/skarim/bin/activate",
    ):
        assert line in script, script
    worker = script.splitlines()[-1]
    # one GPU worker per job, one task at a time, the job's memory, resource GPU=1
    assert "--nthreads 1" in worker and "--nworkers" not in worker
    assert "--memory-limit 64.00GiB" in worker and "--resources=GPU=1" in worker
    assert "--preload-nanny=skarim.run.workers" in worker


def test_pbs_recipe_job_script():
    recipe = load_recipe(PIPELINES / "pbs.yaml")
    with jobqueue_cluster(ClusterKind.pbs, recipe, "auto") as cluster:
        script = cluster.job_script()
    for line in (
        "#PBS -q workq",
        "#PBS -l select=1:ncpus=32:mem=128GB",
        "#PBS -l walltime=08:00:00",
        "module load python/3.11",
    ):
        assert line in script, script
    worker = script.splitlines()[-1]
    # no GPU: one single-threaded worker per core, 4 GiB each
    assert "--nworkers 32" in worker and "--nthreads 1" in worker
    assert "--memory-limit 4.00GiB" in worker and "GPU" not in worker


def test_pbs_gpus_and_bad_recipes(tmp_path):
    recipe = load_recipe(PIPELINES / "pbs.yaml").model_copy(update={"gpus": 2})
    with jobqueue_cluster(ClusterKind.pbs, recipe, "cuda") as cluster:
        script = cluster.job_script()
    assert "#PBS -l select=1:ncpus=32:mem=128GB:ngpus=2" in script
    assert "--nworkers 2" in script and "--resources=GPU=1" in script
    bad = tmp_path / "bad.yaml"
    bad.write_text("cores: 4\nwalltime: '01:00:00'\n")
    with pytest.raises(InputError, match="memory"):
        load_recipe(bad)
    bad.write_text("cores: 4\nmemory: lots\nwalltime: '01:00:00'\n")
    with pytest.raises(InputError, match="lots"):
        load_recipe(bad)
    with pytest.raises(InputError, match="cannot read"):
        load_recipe(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], (ClusterKind.local, None, None, None, None)),
        (["--scheduler", "sync"], (ClusterKind.sync, None, None, None, None)),
        (
            ["--scheduler", "tcp://head:8786", "--threads-per-worker", "4"],
            (ClusterKind.local, "tcp://head:8786", None, None, 4),
        ),
        (["--workers", "3"], (ClusterKind.local, None, None, 3, None)),
        (
            ["--cluster", "slurm", "--cluster-config", str(PIPELINES / "slurm.yaml")],
            (ClusterKind.slurm, None, PIPELINES / "slurm.yaml", None, None),
        ),
    ],
)
def test_image_cluster_flags(monkeypatch, flags, expected):
    seen = []
    monkeypatch.setattr("skarim.cli.app._run_with_progress", lambda cfg, quiet: seen.append(cfg))
    main(["image", "x.ms", "--size", "64", "--scale", "2asec", *flags])
    c = seen[0].cluster
    assert (c.kind, c.scheduler, c.cluster_config, c.n_workers, c.threads_per_worker) == expected


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--scheduler", "sync", "--cluster", "slurm"], "exclude each other"),
        (["--cluster", "slurm"], "needs --cluster-config"),
        (["--cluster", "lsf", "--cluster-config", "x.yaml"], "cluster.kind"),
        (["--workers", "0"], "n_workers"),
    ],
)
def test_bad_cluster_flags_are_one_line(capsys, flags, message):
    with pytest.raises(SystemExit) as exit_:
        main(["image", "x.ms", "--size", "64", "--scale", "2asec", *flags])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("skarim: error:") and message in err and "\n" not in err, err
