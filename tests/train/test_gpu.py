"""The GPU training command, run on the CPU at tiny sizes so that it cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from skarim.deconv.rim import RIM, RIMConfig
from skarim.deconv.weights import load_rim, read_weights, save_weights
from skarim.train.gpu import main
from skarim.train.gpu_problems import WindowConfig
from skarim.train.gpu_validation import evaluate, validation_windows

#: Tiny windows, a few steps at most: a budget that never runs out before the steps do.
TINY = (
    "--device cpu --core 16 --halo 4 --context 4 --batch 2 --val-problems 3 --minutes 600".split()
)


@pytest.fixture
def init_weights(tmp_path):
    """A tiny RIM with a non-trivial learned correction, saved as a weights file."""
    torch.manual_seed(0)
    rim = RIM(RIMConfig(hidden=4, steps=2))
    torch.nn.init.normal_(rim.out.weight, std=1e-2)
    save_weights(rim, tmp_path / "init.pt")
    return rim, tmp_path / "init.pt"


def _run(out, *flags: str) -> None:
    assert main([*TINY, "--out", str(out), *flags]) == 0


def test_a_run_resumed_from_its_folder_ends_where_an_unbroken_run_does(tmp_path, init_weights):
    rim, init = init_weights
    _run(tmp_path / "whole", "--init", str(init), "--max-steps", "2")
    _run(tmp_path / "split", "--init", str(init), "--max-steps", "1")
    _run(tmp_path / "split", "--max-steps", "1")  # resumed: --init is not read again

    whole = torch.load(tmp_path / "whole" / "state.pt", weights_only=True)
    split = torch.load(tmp_path / "split" / "state.pt", weights_only=True)
    assert whole["step"] == split["step"] == 2
    for name, tensor in whole["model"].items():
        torch.testing.assert_close(split["model"][name], tensor, rtol=1e-4, atol=1e-6)
    assert not torch.equal(
        whole["model"]["gru1.gates.weight"], rim.state_dict()["gru1.gates.weight"]
    )
    lines = (tmp_path / "split" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]

    # the best weights are a weights file that loads without running code
    sizes, state = read_weights(tmp_path / "split" / "best.pt")
    assert sizes == RIMConfig(hidden=4, steps=2) and set(state) == set(rim.state_dict())
    assert load_rim(tmp_path / "split" / "best.pt", torch.device("cpu")).config == sizes

    # the first command scored the --init network on the validation windows
    quality = json.loads((tmp_path / "whole" / "quality.json").read_text())
    cfg = WindowConfig(core=16, halo=4, context=4)
    val = validation_windows(0, 3, cfg, torch.device("cpu"))
    assert quality["baselines"]["start"] == pytest.approx(evaluate(rim, val, passes=2))
    assert set(quality["rim"]) == {"snr_db", "smoothed_snr_db", "flux_ratio", "quiet_flux_sigma"}


def test_flags_that_disagree_with_the_stored_run_are_refused_in_one_line(tmp_path, capsys):
    _run(tmp_path / "run", "--hidden", "4", "--steps", "2", "--max-steps", "0")
    capsys.readouterr()
    assert main([*TINY, "--out", str(tmp_path / "run"), "--hidden", "8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--hidden 8 (the run has 4)" in err[0]
    assert main([*TINY, "--out", str(tmp_path / "new"), "--init", str(tmp_path / "no.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([*TINY, "--out", str(tmp_path / "new"), "--core", "4"]) == 2
    assert capsys.readouterr().err.strip() == "skarim.train.gpu: --core must be at least 8"


def test_the_gpu_node_needs_torch_and_numpy_alone():
    """The device script runs the GPU training and the RIM's throughput bench on a node with
    torch and numpy and nothing else of ours."""
    modules = "skarim.train.gpu, skarim.deconv.rim_deconvolver"
    probe = f"import sys, json, {modules}; print(json.dumps(sorted(sys.modules)))"
    run = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    loaded = {name.split(".")[0] for name in json.loads(run.stdout)}
    foreign = {
        "ducc0",
        "casacore",
        "dask",
        "distributed",
        "zarr",
        "numcodecs",
        "astropy",
        "pydantic",
        "yaml",
        "scipy",
        "pandas",
        "matplotlib",
    }
    assert "torch" in loaded and not loaded & foreign


def test_the_bright_sky_and_faint_loss_flags_are_the_stored_recipe(tmp_path, capsys):
    _run(tmp_path / "run", "--hidden", "4", "--steps", "2", "--max-steps", "1",
         "--bright-prob", "0.5", "--faint-loss-weight", "0.7",
         "--sharp-loss-weight", "0.3")  # fmt: skip
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["faint_loss_weight"] == 0.7
    assert stored["sharp_loss_weight"] == 0.3
    assert stored["problems"]["bright_prob"] == 0.5
    capsys.readouterr()
    assert main([*TINY, "--out", str(tmp_path / "run"), "--bright-prob", "0.2"]) == 2
    assert "--bright-prob 0.2 (the run has 0.5)" in capsys.readouterr().err
    assert main([*TINY, "--out", str(tmp_path / "new"), "--bright-prob", "2"]) == 2
    assert main([*TINY, "--out", str(tmp_path / "new"), "--sharp-loss-weight", "-1"]) == 2
