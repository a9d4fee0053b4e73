"""Loading RIM weights safely, and refusing missing or corrupt files."""

from __future__ import annotations

import pytest
import torch

from skarim.deconv.rim import RIM, RIMConfig
from skarim.deconv.weights import export_weights, load_rim, read_weights, save_weights
from skarim.errors import WeightsError


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


def test_saved_weights_read_back_and_export_beside_their_recipe(tmp_path):
    rim = RIM(RIMConfig(hidden=4, steps=2))
    run = tmp_path / "run"
    run.mkdir()
    save_weights(rim, run / "best.pt")
    config, state = read_weights(run / "best.pt")
    assert config == rim.config
    assert all(torch.equal(state[k], v) for k, v in rim.state_dict().items())
    (run / "quality.json").write_text('{"step": 2}')
    (tmp_path / "recipe.yaml").write_text("total_steps: 2\n")
    export_weights(run, tmp_path / "ship" / "mine.pt", tmp_path / "recipe.yaml")
    ship = tmp_path / "ship"
    assert (ship / "mine-train.yaml").read_text() == "total_steps: 2\n"
    assert (ship / "mine-quality.json").read_text() == '{"step": 2}'
    assert load_rim(ship / "mine.pt", torch.device("cpu")).config == rim.config
