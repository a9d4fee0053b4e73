"""Training options for pipeline-like problems: warm starts and starting from weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from skarim.deconv.operator import TileOperator
from skarim.deconv.rim import RIM, RIMConfig
from skarim.deconv.weights import save_weights
from skarim.train.objective import warm_starts
from skarim.train.problems import ProblemConfig, make_batch
from skarim.train.trainer import TrainConfig, evaluate, train

SMALL = ProblemConfig(tile=32, layouts=("vla.c", "meerkat"), duration_h=(1.0, 2.0))


def _trained_a_little() -> RIM:
    torch.manual_seed(0)
    rim = RIM(RIMConfig(hidden=4, steps=2))
    torch.nn.init.normal_(rim.out.weight, std=1e-2)  # a non-trivial learned correction
    return rim


def _run_from_init(tmp_path, rim: RIM, **changes) -> TrainConfig:  # noqa: ANN001
    """A two-step run of a tiny network that starts from ``rim`` (saved as its init)."""
    save_weights(rim, tmp_path / "init.pt")
    recipe = dict(
        run_dir=str(tmp_path / "run"), rim=RIMConfig(hidden=4, steps=2), problems=SMALL,
        batch=2, total_steps=2, val_problems=2, val_every=2, warmup_steps=1, threads=1,
        device="cpu", init_from=str(tmp_path / "init.pt"),
    )  # fmt: skip
    return TrainConfig(**{**recipe, **changes})


@torch.no_grad()
def test_warm_starts_are_the_networks_own_estimates_for_the_first_part_of_the_batch():
    batch = make_batch(np.random.default_rng(0), 4, SMALL).to("cpu")
    rim = _trained_a_little()
    x0 = warm_starts(rim, batch, 0.5)
    first = rim(batch.dirty[:2], batch.sigma[:2], TileOperator(batch.psf[:2]))[-1]
    assert torch.allclose(x0[:2], first)
    assert torch.count_nonzero(x0[2:]) == 0
    assert warm_starts(rim, batch, 0.0) is None


def test_two_pass_validation_scores_the_second_pass():
    batch = make_batch(np.random.default_rng(1), 3, SMALL)
    rim = _trained_a_little()
    one = evaluate(rim, batch, torch.device("cpu"), passes=1)
    two = evaluate(rim, batch, torch.device("cpu"), passes=2)
    assert one != two
    with torch.no_grad():
        op = TileOperator(batch.psf.float())
        d, s = batch.dirty.float(), batch.sigma.float()
        again = rim(d, s, op, x0=rim(d, s, op)[-1])[-1]
    x = again.double().numpy()
    snr = np.mean([10 * np.log10((t**2).sum() / ((e - t) ** 2).sum())
                   for e, t in zip(x, batch.truth.numpy(), strict=True)])  # fmt: skip
    assert two["snr_db"] == pytest.approx(snr, abs=1e-4)


def test_a_run_starts_from_init_weights_and_scores_them_first(tmp_path):
    rim = _trained_a_little()
    cfg = _run_from_init(tmp_path, rim, warm_start=0.5)
    train(cfg)
    baselines = json.loads((tmp_path / "run" / "baselines.json").read_text())
    val = make_batch(np.random.default_rng(cfg.seed + 1_000_003), 2, SMALL)
    assert baselines["init_from"] == pytest.approx(evaluate(rim, val, torch.device("cpu"), 2))
    quality = json.loads((tmp_path / "run" / "quality.json").read_text())
    assert quality["passes"] == 2


def test_init_weights_of_another_size_are_refused(tmp_path):
    save_weights(RIM(RIMConfig(hidden=6, steps=2)), tmp_path / "init.pt")
    cfg = TrainConfig(run_dir=str(tmp_path / "run"), rim=RIMConfig(hidden=4, steps=2),
                      problems=SMALL, val_problems=2, device="cpu",
                      init_from=str(tmp_path / "init.pt"))  # fmt: skip
    with pytest.raises(ValueError, match="another size"):
        train(cfg)


def test_a_run_with_the_faint_and_sharp_losses_on_bright_source_tiles_trains(tmp_path):
    rim = _trained_a_little()
    problems = ProblemConfig(**{**SMALL.__dict__, "bright_prob": 1.0})
    cfg = _run_from_init(tmp_path, rim, problems=problems, faint_loss_weight=0.5,
                         sharp_loss_weight=0.5)  # fmt: skip
    train(cfg)
    record = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[-1])
    assert np.isfinite(record["loss"])
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=False)
    assert not torch.equal(state["model"]["out.weight"], rim.out.weight)


def test_with_a_moving_average_validation_and_best_weights_take_the_average(tmp_path):
    rim = _trained_a_little()
    cfg = _run_from_init(tmp_path, rim, total_steps=3, val_every=3, lr=1e-2,
                         ema_decay=1.0 - 1e-6)  # fmt: skip
    train(cfg)
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=False)
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)["state_dict"]
    moved = (state["model"]["out.weight"] - rim.out.weight.detach()).abs().max()
    kept = (best["out.weight"] - rim.out.weight.detach()).abs().max()
    assert float(moved) > 1e-3 and float(kept) < 1e-3 * float(moved)  # float32 rounding
    # the average's own score is the one logged
    val = make_batch(np.random.default_rng(cfg.seed + 1_000_003), 2, SMALL)
    record = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[-1])
    assert record["val"] == pytest.approx(evaluate(rim, val, torch.device("cpu"), 1), abs=1e-3)
