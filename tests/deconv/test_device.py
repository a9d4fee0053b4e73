"""Choosing the device and the layer dtype, and the command line's one-line device errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from skarim.deconv.device import select_device
from skarim.errors import DeviceError

NO_GPU = not torch.cuda.is_available()


@pytest.mark.skipif(not NO_GPU, reason="a GPU is present")
def test_cuda_without_gpu_is_refused():
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        select_device("cuda")
    assert select_device("auto").device.type == "cpu"


def test_the_clusters_gpus_decide_when_given():
    assert select_device("auto", gpus=True).device.type == "cuda"
    assert select_device("auto", gpus=False).device.type == "cpu"
    with pytest.raises(DeviceError, match="no worker of the cluster offers a GPU"):
        select_device("cuda", gpus=False)
    with pytest.raises(DeviceError, match="unknown device"):
        select_device("tpu")


@pytest.mark.skipif(NO_GPU, reason="no GPU")
def test_a_dask_worker_takes_the_gpu_its_name_ends_in():
    n = torch.cuda.device_count()
    assert select_device("cuda", worker="job-3").device == torch.device("cuda", 3 % n)
    assert select_device("cuda", worker="scheduler").device == torch.device("cuda", 0)
    assert select_device("cuda").device == torch.device("cuda")
    assert select_device("cpu", worker="7").device == torch.device("cpu")


def test_precision_picks_the_layer_dtype():
    assert select_device("cpu", "float32").dtype == torch.float32
    assert select_device("cpu", "bfloat16").dtype == torch.bfloat16
    assert select_device("cpu", "auto").dtype in (torch.float32, torch.bfloat16)
    with pytest.raises(ValueError, match="unknown precision"):
        select_device("cpu", "float16")


@pytest.mark.skipif(not NO_GPU, reason="a GPU is present")
@pytest.mark.parametrize("flags", [["--device", "cuda"], ["--weights", "/nonexistent/rim.pt"]])
def test_cli_device_and_weights_errors_are_one_line(tmp_path, flags):
    from msfactory import point_source_vis, random_uvw_m, write_stokes_i_ms

    rng = np.random.default_rng(0)
    uvw = random_uvw_m(rng, 100, 300.0)
    freq = np.array([1.4e9])
    ms = write_stokes_i_ms(tmp_path / "d.ms", uvw, freq, point_source_vis(uvw, freq, 0, 0))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "skarim",
            "image",
            str(ms),
            "--size",
            "64",
            "--scale",
            "5asec",
            *flags,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("skarim: error:"), r.stderr
    assert not (tmp_path / "skarim.zarr").exists()  # refused before any gridding
