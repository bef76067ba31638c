"""benchmarks/generation_gap.py on a tiny judged run: its rows, their meaning, its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import coldkit.api as ck
from benchmarks.generation_gap import _judged, markdown, measure
from coldkit.cli import app
from coldkit.evaluation.judge import load_classifier
from coldkit.config import write_toml
from coldkit.runs.folder import RunPaths
from tests.conftest import tiny_experiment
from tests.generation.test_generate import GENERATE as GENERATE_TESTS

runner = CliRunner()

# The generation tests' tiny [generate], smaller and judged (the benchmark needs the classifier).
GENERATE = {**GENERATE_TESTS, "num_samples": 12, "batch_size": 6, "grid_size": 6, "judge": True}


def _run(tmp_path: Path, **generate) -> Path:
    config = tmp_path / "gap.toml"
    write_toml(config, tiny_experiment(generate={**GENERATE, **generate}))
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_rows_split_the_distance_into_restorer_sampler_and_prior(tmp_path):
    out = _run(tmp_path)
    run = ck.open(out)
    train, real = run.images("train"), run.images("test")
    # Every training image: the picked set is the training split, in some order.
    rows = measure(out, count=len(train), split="test", variants=["generate.prior.components=1"],
                   seed=0)
    names = [row["set"] for row in rows]
    assert names == [
        "real training images",
        "true x_T of training images, improved",
        "true x_T of training images, direct",
        "the run's prior",
        "the run's prior generate.prior.components=1",
    ]
    for row in rows:
        assert row["ratio"] > 0 and row["floor"] > 0 and 0 <= row["blank"] <= 1
    # The rows are the judge's numbers of the sets they name: the training images in the seeded
    # order drawn (the judge averages over chunks, so order counts); blur has no random draws,
    # so the direct row is R(D(x0, T), T) of those images.
    train = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(0))]
    classifier = load_classifier(RunPaths(out).judge_classifier).eval()
    assert rows[0] == _judged("real training images", train, real, classifier)
    direct = run.restore(run.degrade(train, run.steps)[0], run.steps, sampler="direct")
    assert rows[2] == _judged("true x_T of training images, direct", direct, real, classifier)
    assert rows[1]["ratio"] != rows[2]["ratio"]  # Algorithm 2 is not the direct row
    table = markdown(rows)
    assert table.count("\n") == len(rows) + 1 and "Fréchet ÷ floor" in table
    # Same seed, same rows: the benchmark is reproducible.
    assert measure(out, count=len(train), split="test", variants=[], seed=0) == rows[:4]
    json.dumps(rows)  # the --json output is plain data


def test_a_run_without_its_judge_is_refused_with_the_command_that_makes_it(tmp_path):
    out = _run(tmp_path, judge=False)
    with pytest.raises(SystemExit, match="--judge"):
        measure(out, count=4, split="test", variants=[], seed=0)
