"""``skarim train``: a recipe trains, resumes from its state, and exports weights that load."""

from __future__ import annotations

import json
import subprocess
import sys

from skarim.deconv.weights import read_weights

RECIPE = """\
run_dir: {run_dir}
rim: {{hidden: 4, steps: 2}}
problems: {{tile: 32, layouts: [vla.c], duration_h: [1.0, 2.0]}}
batch: 2
total_steps: {steps}
val_problems: 2
val_every: 2
warmup_steps: 1
threads: 1
device: cpu
"""


def _train(recipe, *flags):
    cmd = [sys.executable, "-m", "skarim", "train", "--config", str(recipe), *flags]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_a_recipe_trains_resumes_and_exports_loadable_weights(tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(RECIPE.format(run_dir=tmp_path / "run", steps=2))
    done = _train(recipe)
    assert done.returncode == 0, done.stderr
    assert "step 2 " in done.stderr
    recipe.write_text(RECIPE.format(run_dir=tmp_path / "run", steps=4))  # more steps: resumes
    out = tmp_path / "ship" / "rim.pt"
    more = _train(recipe, "--export", str(out))
    assert more.returncode == 0, more.stderr
    assert "step 4 " in more.stderr and "step 2 " not in more.stderr
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "log.jsonl").open()]
    assert steps == [2, 4]
    config, _ = read_weights(out)  # weights_only: a weights file, not a pickled object
    assert config.hidden == 4 and config.steps == 2


def test_a_missing_recipe_is_one_line_and_exit_2(tmp_path):
    done = _train(tmp_path / "none.yaml")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"skarim: error: training config {tmp_path / 'none.yaml'} does not exist"
    ]
