"""Loading weights, choosing the device, and deconvolving tiles."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from skarim.deconv.operator import TileOperator
from skarim.deconv.rim import RIM
from skarim.deconv.rim_tiles import deconvolve_tiles, load_rim, resolve_device
from skarim.errors import DeviceError, WeightsError

NO_GPU = not torch.cuda.is_available()


def _gaussian_psf(t: int, ripple: float = 0.0) -> np.ndarray:
    """``(2t, 2t)`` Gaussian PSF (width 2 pixels) peaked at ``(t, t)``, times ``cos(ripple x)``."""
    yy, xx = np.mgrid[0 : 2 * t, 0 : 2 * t]
    psf = np.exp(-0.5 * ((yy - t) ** 2 + (xx - t) ** 2) / 2.0**2) * np.cos(ripple * (xx - t))
    return psf.astype(np.float32)


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
    psf = _gaussian_psf(t)  # a clean Gaussian PSF
    x = np.zeros((t, t))
    x[30, 20] = 2.0
    dirty = TileOperator(torch.from_numpy(psf)).normal(torch.from_numpy(x)[None]).numpy()
    model = deconvolve_tiles(
        load_rim(None, torch.device("cpu")), dirty, psf, 1e-3, torch.device("cpu")
    )
    assert model.shape == (1, t, t) and model.min() >= 0
    assert np.unravel_index(np.argmax(model[0]), (t, t)) == (30, 20)
    assert model[0, 27:34, 17:24].sum() == pytest.approx(2.0, rel=0.3)
    assert model[0].sum() == pytest.approx(2.0, rel=0.3)


def test_a_batch_of_tiles_equals_the_network_run_on_all_at_once():
    """The CPU path runs a batch one window at a time; the result is the batched network's."""
    t = 64
    psf = _gaussian_psf(t)
    rng = np.random.default_rng(3)
    truth = np.zeros((3, t, t), dtype=np.float32)
    for k, (y, x) in enumerate([(10, 50), (32, 32), (40, 8)]):
        truth[k, y, x] = 1.0 + k
    op = TileOperator(torch.from_numpy(psf))
    dirty = op.normal(torch.from_numpy(truth)).numpy() + rng.normal(0, 1e-3, truth.shape)
    x0 = 0.5 * truth
    residual = dirty - op.normal(torch.from_numpy(x0)).numpy()
    rim = load_rim(None, torch.device("cpu"))
    got = deconvolve_tiles(rim, residual, psf, 1e-3, torch.device("cpu"), x0=x0)
    with torch.no_grad():
        d = torch.from_numpy(dirty.astype(np.float32))
        want = rim(d, torch.full((3,), 1e-3), op, x0=torch.from_numpy(x0))[-1].numpy()
    assert got.shape == (3, t, t)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())
    assert np.abs(want[0] - want[1]).max() > 0.1  # the tiles differ: no tile was repeated


def test_bfloat16_layers_give_the_float32_model_to_a_per_cent():
    from skarim.deconv.rim_tiles import resolve_precision

    cpu = torch.device("cpu")
    assert resolve_precision("float32", cpu) == torch.float32
    assert resolve_precision("bfloat16", cpu) == torch.bfloat16
    assert resolve_precision("auto", cpu) in (torch.float32, torch.bfloat16)
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_precision("float16", cpu)
    t = 64
    psf = _gaussian_psf(t, ripple=0.3)
    truth = np.zeros((1, t, t))
    truth[0, 30, 20], truth[0, 12, 45] = 2.0, 0.05
    dirty = TileOperator(torch.from_numpy(psf)).normal(torch.from_numpy(truth)).numpy()
    f32 = deconvolve_tiles(load_rim(None, cpu), dirty, psf, 1e-3, cpu)
    rim = load_rim(None, cpu, torch.bfloat16)
    assert rim.gru1.gates.weight.dtype == torch.bfloat16
    assert rim.step_size.dtype == torch.float32  # the gradient step stays float32
    b16 = deconvolve_tiles(rim, dirty, psf, 1e-3, cpu)
    assert b16.dtype == np.float32 and not np.array_equal(b16, f32)  # it did run in bfloat16
    for y, x in ((30, 20), (12, 45)):  # each source's flux within 1%
        box = (0, slice(y - 3, y + 4), slice(x - 3, x + 4))
        assert b16[box].sum() == pytest.approx(f32[box].sum(), rel=0.01)
