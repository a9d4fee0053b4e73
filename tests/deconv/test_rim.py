"""The RIM network and its training loop (CPU, small sizes)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from skarim.deconv.operator import TileOperator
from skarim.deconv.rim import RIM, RIMConfig
from skarim.train.problems import ProblemConfig, make_batch
from skarim.train.trainer import TrainConfig, rim_loss, train

SMALL = ProblemConfig(tile=32, layouts=("vla.c", "meerkat"), duration_h=(1.0, 2.0))


@pytest.mark.parametrize("tile", [32, 40, 64])
def test_rim_runs_on_any_tile_size_and_stays_non_negative(tile):
    torch.manual_seed(0)
    batch = make_batch(np.random.default_rng(0), 2, ProblemConfig(tile=tile)).to("cpu")
    rim = RIM(RIMConfig(hidden=8, steps=3))
    est = rim(batch.dirty, batch.sigma, TileOperator(batch.psf))
    assert len(est) == 3
    assert all(
        e.shape == (2, tile, tile) and torch.all(e >= 0) and torch.isfinite(e).all() for e in est
    )


@torch.no_grad()
def test_untrained_rim_improves_on_the_scaled_dirty_image():
    batch = make_batch(np.random.default_rng(1), 8, SMALL).to("cpu")
    est = RIM(RIMConfig(hidden=8, steps=6))(batch.dirty, batch.sigma, TileOperator(batch.psf))
    beam_area = (1.1331 * batch.beam_fwhm_pix**2).reshape(-1, 1, 1)
    dirty_loss = rim_loss([batch.dirty / beam_area], batch, smooth_weight=1.0)
    assert float(rim_loss(est[-1:], batch, smooth_weight=1.0)) < float(dirty_loss) - 3.0  # dB


def test_a_few_training_steps_reduce_the_loss():
    torch.manual_seed(0)
    batch = make_batch(np.random.default_rng(2), 4, SMALL).to("cpu")
    rim = RIM(RIMConfig(hidden=8, steps=3))
    opt = torch.optim.Adam(rim.parameters(), lr=3e-3)
    op = TileOperator(batch.psf)
    losses = []
    for _ in range(25):
        loss = rim_loss(rim(batch.dirty, batch.sigma, op), batch, smooth_weight=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.5  # dB


def test_training_checkpoints_and_resumes(tmp_path):
    cfg = TrainConfig(
        run_dir=str(tmp_path / "run"), rim=RIMConfig(hidden=4, steps=2), problems=SMALL, batch=2,
        total_steps=4, val_problems=2, val_every=2, warmup_steps=1, threads=1, device="cpu",
    )  # fmt: skip
    records = []
    train(cfg, log=records.append)
    assert [r["step"] for r in records] == [2, 4]
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=False)
    assert state["step"] == 4
    resumed = []
    train(TrainConfig(**{**cfg.__dict__, "total_steps": 6}), log=resumed.append)
    assert [r["step"] for r in resumed] == [6]  # continued from step 4, not from 0
    quality = json.loads((tmp_path / "run" / "quality.json").read_text())
    assert set(quality["baselines"]) == {
        "dirty_scaled",
        "hogbom_gain0.1_3sigma",
        "projected_gradient_30it",
    }
    blob = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert blob["rim_config"] == {"hidden": 4, "steps": 2}
