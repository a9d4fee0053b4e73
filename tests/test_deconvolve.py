"""Loading weights, choosing the device, and deconvolving tiles."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from skarim.deconvolve import deconvolve_tiles, load_rim, resolve_device
from skarim.errors import DeviceError, WeightsError
from skarim.rim import RIM

NO_GPU = not torch.cuda.is_available()


def test_shipped_weights_load_safely():
    rim = load_rim(None, torch.device("cpu"))
    assert isinstance(rim, RIM) and not rim.training
    assert sum(p.numel() for p in rim.parameters()) > 10_000


def test_missing_and_corrupt_weights(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        load_rim(tmp_path / "nope.pt", torch.device("cpu"))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="corrupt"):
        load_rim(bad, torch.device("cpu"))
    wrong = tmp_path / "wrong.pt"
    torch.save(
        {"rim_config": {"hidden": 4, "steps": 2}, "state_dict": {"x": torch.zeros(1)}}, wrong
    )
    with pytest.raises(WeightsError, match="corrupt"):
        load_rim(wrong, torch.device("cpu"))


@pytest.mark.skipif(not NO_GPU, reason="a GPU is present")
def test_cuda_without_gpu_is_refused():
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


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


def test_deconvolve_tiles_recovers_an_isolated_point_source():
    t = 64
    yy, xx = np.mgrid[0 : 2 * t, 0 : 2 * t]
    psf = np.exp(-0.5 * ((yy - t) ** 2 + (xx - t) ** 2) / 2.0**2)  # a clean Gaussian PSF
    x = np.zeros((t, t))
    x[30, 20] = 2.0
    from skarim.operator import TileOperator

    dirty = TileOperator(torch.from_numpy(psf)).normal(torch.from_numpy(x)[None]).numpy()
    model = deconvolve_tiles(
        load_rim(None, torch.device("cpu")), dirty, psf, 1e-3, torch.device("cpu")
    )
    assert model.shape == (1, t, t) and model.min() >= 0
    assert np.unravel_index(np.argmax(model[0]), (t, t)) == (30, 20)
    assert model[0, 27:34, 17:24].sum() == pytest.approx(2.0, rel=0.3)
    assert model[0].sum() == pytest.approx(2.0, rel=0.3)
