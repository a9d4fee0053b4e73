"""Joined-channel training problems, and a spectral training run on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from skarim.deconv.rim import RIM, RIMConfig, expand_terms
from skarim.deconv.weights import read_weights, save_weights
from skarim.train.problems import ProblemConfig
from skarim.train.spectral_problems import SpectralConfig, make_spectral_batch
from skarim.train.trainer import TrainConfig, evaluate, load_train_config, train

SMALL = ProblemConfig(tile=32, layouts=("meerkat",), duration_h=(1.0, 2.0))
SPECTRAL = SpectralConfig(terms=2, channels=(4, 6))


def _noise_free(cfg: ProblemConfig) -> ProblemConfig:
    return ProblemConfig(**{**cfg.__dict__, "dynamic_range": (1e12, 1e12)})


def test_channels_follow_one_spectral_index_map_and_their_own_psfs():
    batch = make_spectral_batch(np.random.default_rng(0), 3, _noise_free(SMALL), SPECTRAL)
    b, c = batch.weight.shape
    assert b == 3 and c >= 3 and batch.dirty.shape == (3, 2, 32, 32)
    assert batch.channel_truth.shape == batch.channel_dirty.shape == (3, c, 32, 32)
    torch.testing.assert_close(batch.weight.sum(dim=1), torch.ones(3, dtype=torch.float64))
    # the MFS noise is the weighted channels' noise
    mfs_sigma = ((batch.weight * batch.channel_sigma) ** 2).sum(dim=1).sqrt()
    torch.testing.assert_close(mfs_sigma, batch.sigma)
    # the dirty tiles are each channel's PSF over its truth (no noise), and the RIM sees
    # their back-projected terms
    op = batch.operator()
    channels = batch.per_channel
    sampling = torch.fft.fft2(torch.fft.ifftshift(channels.psf, dim=(-2, -1))).real.clamp_min(0)
    spec = torch.fft.fft2(torch.nn.functional.pad(channels.truth, (0, 32, 0, 32)))
    convolved = torch.fft.ifft2(sampling * spec).real[..., :32, :32]
    assert (channels.dirty - convolved).abs().amax() < 1e-9 * channels.dirty.abs().amax()
    torch.testing.assert_close(op.terms_of(batch.channel_dirty), batch.dirty)
    # PSFs narrow with frequency; the spectrum of a pixel is a curved power law of the
    # reference sky (truth_c / truth_0 = (f_c / f_0)^(alpha + beta ln(f_c / f_0)))
    assert not torch.allclose(batch.psf[:, 0], batch.psf[:, -1])
    bright = batch.channel_truth[0, 0] > 0.1 * batch.channel_truth[0, 0].max()
    ratio = batch.channel_truth[0, -1][bright] / batch.channel_truth[0, 0][bright]
    assert ratio.std() > 0  # the spectral index varies over the tile
    assert 0.1 < float(ratio.min()) and float(ratio.max()) < 10


def test_a_spectral_run_starts_from_one_term_weights_and_trains(tmp_path):
    torch.manual_seed(0)
    one = RIM(RIMConfig(hidden=4, steps=2))
    torch.nn.init.normal_(one.out.weight, std=1e-2)
    save_weights(one, tmp_path / "init.pt")
    cfg = TrainConfig(
        run_dir=str(tmp_path / "run"), rim=RIMConfig(hidden=4, steps=2, terms=2),
        problems=SMALL, spectral=SPECTRAL, batch=2, total_steps=2, val_problems=2,
        val_every=2, warmup_steps=1, threads=1, device="cpu", warm_start=0.5,
        init_from=str(tmp_path / "init.pt"),
    )  # fmt: skip
    train(cfg)
    run = tmp_path / "run"
    baselines = json.loads((run / "baselines.json").read_text())
    val = make_spectral_batch(np.random.default_rng(cfg.seed + 1_000_003), 2, SMALL, SPECTRAL)
    start = evaluate(expand_terms(one, 2), val, torch.device("cpu"), 2)
    assert baselines["init_from"] == pytest.approx(start)
    trained, state = read_weights(run / "best.pt")
    assert trained == cfg.rim
    assert state["out.weight"].shape == (2, 4, 1, 1)
    assert not torch.equal(state["embed.weight"], expand_terms(one, 2).embed.weight)
    assert json.loads((run / "config.json").read_text())["spectral"]["terms"] == 2


def test_a_recipe_whose_network_and_problems_disagree_on_terms_is_refused():
    with pytest.raises(ValueError, match="rim.terms is 1, the problems have 2"):
        TrainConfig(problems=SMALL, spectral=SPECTRAL)


@pytest.mark.parametrize("recipe", ["rim-robust.yaml", "rim-spectral.yaml"])
def test_the_committed_recipes_load(recipe):
    root = Path(__file__).resolve().parents[2]
    cfg = load_train_config(root / "pipelines" / "train" / recipe)
    assert cfg.rim.terms == (cfg.spectral.terms if cfg.spectral else 1)
    assert (root / cfg.init_from).is_file()
