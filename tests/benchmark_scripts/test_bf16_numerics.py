"""``benchmarks.bf16_numerics``: each case trains in its precision and is scored on the validation
split, and ``--sample-in both`` scores one trained model sampled in float32 and in bf16."""

from __future__ import annotations

import json

from benchmarks import bf16_numerics
from coldkit.config import write_toml
from tests.conftest import tiny_experiment


def test_each_case_trains_in_its_precision_on_the_validation_split():
    float32 = bf16_numerics.overrides("float32", 10, 20)
    assert 'train.autocast="off"' in float32 and 'sampling.autocast="off"' in float32
    assert 'evaluate.split="val"' in float32 and "dataset.val_fraction=0.1" in float32
    trained_in_bf16 = bf16_numerics.overrides("bf16, float32 ends", 10, 20, sampling="off")
    assert 'train.autocast="bf16"' in trained_in_bf16
    assert 'sampling.autocast="off"' in trained_in_bf16
    # the cases measured before standardize_input keep the network they were measured with
    assert "restorer.standardize_input=false" in trained_in_bf16
    standardised = bf16_numerics.overrides("bf16, standardised input", 10, 20)
    assert "restorer.standardize_input=true" in standardised
    assert 'train.autocast="bf16"' in standardised


def test_sample_in_both_scores_one_trained_model_in_each_precision(tmp_path, monkeypatch, capsys):
    config = tmp_path / "tiny.toml"
    write_toml(config, tiny_experiment(train={"steps": 2, "batch_size": 4, "checkpoint_every": 2}))
    monkeypatch.setattr(bf16_numerics, "CONFIG", config)
    bf16_numerics.worker("bf16, float32 ends", 2, 4, tmp_path / "run", "both")
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = result["rows by sampling precision"]
    assert set(rows) == {"off", "bf16"}
    assert rows["off"]["degraded"] == rows["bf16"]["degraded"]  # the same images, one model
    assert rows["off"]["direct"]["rmse"] != rows["bf16"]["direct"]["rmse"]  # sampled apart
    log = (tmp_path / "run" / "log.txt").read_text()
    assert log.count("step 2 loss") == 1  # trained once, evaluated twice
    assert "training already complete at step 2" in log
