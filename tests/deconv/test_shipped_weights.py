"""The RIM weights shipped in the package, on problems no training run draws."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources

import numpy as np
import pytest
import torch
import yaml

from skarim.deconv.weights import load_rim
from skarim.train.problems import make_batch
from skarim.train.trainer import TrainConfig, classical_baselines, evaluate

WEIGHTS = resources.files("skarim").joinpath("weights")
HELD_OUT_SEED = 777  # training draws from seeds 0 and 1, validation from 1000003 and 1000004


def test_recipe_and_quality_ship_beside_the_weights():
    recipe = TrainConfig.from_dict(yaml.safe_load(WEIGHTS.joinpath("rim-train.yaml").read_text()))
    quality = json.loads(WEIGHTS.joinpath("rim-quality.json").read_text())
    blob = torch.load(str(WEIGHTS.joinpath("rim.pt")), weights_only=True)
    assert blob["rim_config"] == recipe.rim.to_dict()
    dirty = quality["baselines"]["dirty_scaled"]
    assert quality["rim"]["smoothed_snr_db"] > dirty["smoothed_snr_db"]
    assert {"hardware", "train_wall_s", "step"} <= set(quality)
    assert WEIGHTS.joinpath("rim.pt").stat().st_size < 8 * 2**20  # a few MB at most


def test_shipped_weights_beat_the_dirty_image_and_hogbom_on_held_out_problems():
    recipe = TrainConfig.from_dict(yaml.safe_load(WEIGHTS.joinpath("rim-train.yaml").read_text()))
    batch = make_batch(np.random.default_rng(HELD_OUT_SEED), 12, recipe.problems)
    rim = evaluate(load_rim(None, torch.device("cpu")), batch, torch.device("cpu"))
    base = classical_baselines(batch)
    dirty, hogbom = base["dirty_scaled"], base["hogbom_gain0.1_3sigma"]
    # measured with the shipped weights (rim-robust step 5600) and their recipe's problems,
    # seed 777 / 778, raw / smoothed dB: RIM 5.2 / 14.7 and 10.8 / 21.6; Hogbom -1.2 / 11.0
    # and -5.8 / 12.8; scaled dirty 0.5 / 1.7 and 2.7 / 3.4
    assert rim["smoothed_snr_db"] > dirty["smoothed_snr_db"] + 10.0
    assert rim["smoothed_snr_db"] > hogbom["smoothed_snr_db"] + 2.0
    assert rim["snr_db"] > hogbom["snr_db"] + 5.0


def _points_on_pixels(rng: np.random.Generator, side: int, beam_pix: float) -> np.ndarray:
    """3-11 points on pixel centres, fluxes log-uniform over 0.01-1, peak 1."""
    sky = np.zeros((side, side))
    n = int(rng.integers(3, 12))
    ys, xs = rng.integers(4, side - 4, size=(2, n))
    sky[ys, xs] = np.exp(rng.uniform(np.log(0.01), 0.0, size=n))
    return sky / sky.max()


def _extended(rng: np.random.Generator, side: int, beam_pix: float) -> np.ndarray:
    """1-3 round Gaussians of 1-3 beams FWHM, peak 1."""
    yy, xx = np.mgrid[0:side, 0:side].astype(float)
    sky = np.zeros((side, side))
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = rng.uniform(0.25, 0.75, size=2) * side
        sigma = rng.uniform(1.0, 3.0) * beam_pix / 2.355
        sky += rng.uniform(0.3, 1.0) * np.exp(-0.5 * ((yy - cy) ** 2 + (xx - cx) ** 2) / sigma**2)
    return sky / sky.max()


def _scores(
    sky: Callable[[np.random.Generator, int, float], np.ndarray],
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """The shipped RIM's and the classical baselines' scores on 12 held-out problems."""
    recipe = TrainConfig.from_dict(yaml.safe_load(WEIGHTS.joinpath("rim-train.yaml").read_text()))
    batch = make_batch(np.random.default_rng(HELD_OUT_SEED), 12, recipe.problems, sky)
    rim = evaluate(load_rim(None, torch.device("cpu")), batch, torch.device("cpu"))
    return rim, classical_baselines(batch)


def test_shipped_weights_beat_the_untrained_network_on_points_and_extended_skies():
    # the untrained network is the same pipeline's projected, preconditioned gradient steps;
    # measured (seed 777 / 778, raw / smoothed dB): points RIM 10.7 / 20.7 and 8.4 / 18.1
    # against 0.3 / 7.3 and -0.6 / 2.4; extended 17.1 / 24.2 and 12.7 / 18.6 against
    # 12.9 / 17.6 and 8.0 / 11.8
    for sky, raw_margin, smoothed_margin in ((_points_on_pixels, 4.0, 8.0), (_extended, 1.5, 3.0)):
        rim, base = _scores(sky)
        gradient = base["projected_gradient_30it"]
        assert rim["snr_db"] > gradient["snr_db"] + raw_margin, sky.__name__
        assert rim["smoothed_snr_db"] > gradient["smoothed_snr_db"] + smoothed_margin, sky.__name__


def test_shipped_weights_beat_hogbom_on_extended_skies():
    # measured (seed 777 / 778, raw / smoothed dB): RIM 17.1 / 24.2 and 12.7 / 18.6; Hogbom
    # -4.3 / 19.1 and -3.6 / 15.0
    rim, base = _scores(_extended)
    hogbom = base["hogbom_gain0.1_3sigma"]
    assert rim["snr_db"] > hogbom["snr_db"] + 12.0
    assert rim["smoothed_snr_db"] > hogbom["smoothed_snr_db"] + 3.0


@pytest.mark.xfail(
    strict=True,
    reason="issue 16: on points on pixel centres the shipped RIM trails Hogbom (seed 777: "
    "10.7 against 16.6 dB raw, 20.7 against 22.7 smoothed); a network that wins turns this "
    "into a failure to remove",
)
def test_shipped_weights_beat_hogbom_on_points_on_pixel_centres():
    rim, base = _scores(_points_on_pixels)
    hogbom = base["hogbom_gain0.1_3sigma"]
    assert rim["snr_db"] > hogbom["snr_db"]
    assert rim["smoothed_snr_db"] > hogbom["smoothed_snr_db"]
