"""Several processes with gloo on the CPU: DDP ranks agree with each other and with one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from typer.testing import CliRunner

from coldkit.cli import app
from coldkit.config import AugmentSection, TrainSection, write_toml
from coldkit.runtime.distributed import Cluster, check_batch_split
from coldkit.errors import ConfigError
from coldkit.protocols import BuildContext
from coldkit_plugins.blur import Blur, BlurParams
from coldkit_plugins.datasets import make_synthetic_images
from coldkit_plugins.unet import UNet, UNetParams
from coldkit.training.trainer import Trainer
from tests.conftest import tiny_experiment

# Augmentation on, so the test also checks that each rank augments its own share of the batch.
# Autocast pinned off: spawned ranks probe the real CPU (bf16 where it is native), this process
# a plain one (tests/conftest.py), and the comparison is of ranks, not of precisions.
SETTINGS = TrainSection(
    steps=5, batch_size=8, lr=1e-3, accumulate=2, checkpoint_every=100, autocast="off",
    augment=AugmentSection(shift=1, rotate=10.0, flip=True),
)


def _trainer(checkpoint: Path, cluster: Cluster = Cluster()) -> Trainer:
    torch.manual_seed(0)
    degradation = Blur(BlurParams(steps=4, kernel_size=5, sigma=1.0))
    restorer = UNet(
        UNetParams(width=8, multipliers=[1, 2], attention_levels=[1]),
        context=BuildContext(image_size=16, channels=1, steps=4)
    )
    images = make_synthetic_images(64, 16, 1, seed=0)
    return Trainer(
        restorer, degradation, images, SETTINGS, 0, torch.device("cpu"), checkpoint, cluster
    )


def _train_rank(rank: int, world_size: int, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{folder}/store", rank=rank, world_size=world_size
    )
    try:
        trainer = _trainer(Path(folder) / "last.pt", Cluster(rank, world_size, rank, "gloo"))
        trainer.fit()
        torch.save(
            {"weights": trainer.restorer.state_dict(), "losses": trainer.state.losses},
            Path(folder) / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def test_two_ranks_agree_with_each_other_and_with_one_process(tmp_path: Path):
    mp.spawn(_train_rank, args=(2, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]
    single = _trainer(tmp_path / "single.pt")
    single.fit()
    for name, value in single.restorer.state_dict().items():
        # Both ranks hold the same weights (DDP keeps them in step) ...
        assert torch.equal(ranks[0]["weights"][name], ranks[1]["weights"][name]), name
        # ... and they are the weights of one process with the same global batch and seed. (Adam
        # turns float noise in near-zero gradients, e.g. of a conv bias before a GroupNorm, into
        # differences of a few 1e-5 at lr 1e-3; a wrong share would differ by ~lr per step.)
        torch.testing.assert_close(ranks[0]["weights"][name], value, rtol=1e-3, atol=1e-4)
    # The logged loss is the mean over the ranks' shares: the loss of the global batch.
    assert ranks[0]["losses"] == ranks[1]["losses"]
    torch.testing.assert_close(
        torch.tensor(ranks[0]["losses"]), torch.tensor(single.state.losses), rtol=1e-6, atol=1e-6
    )
    # Only rank 0 writes checkpoints.
    assert (tmp_path / "last.pt").is_file()


def test_global_batch_must_split_over_the_processes():
    check_batch_split(8, Cluster(0, 4, 0, "gloo"))
    with pytest.raises(ConfigError, match="multiple of 3"):
        check_batch_split(8, Cluster(0, 3, 0, "gloo"))
    assert Cluster(1, 4, 1, "gloo").share(8) == slice(2, 4)


# ------------------------------------------------------------------ through torchrun and the CLI
def _torchrun(config: Path, out: Path, processes: int, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc-per-node={processes}", "-m", "coldkit", "run", str(config), "--out", str(out),
        *extra,
    ]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]


def test_torchrun_two_processes_match_one_and_resume_with_another_world_size(tmp_path: Path):
    config = tmp_path / "tiny.toml"
    write_toml(config, tiny_experiment(
        train={"steps": 6, "batch_size": 8, "checkpoint_every": 3, "autocast": "off"},
        sampling={"autocast": "off"},
    ))
    single, double, switched = tmp_path / "one", tmp_path / "two", tmp_path / "switched"
    result = CliRunner().invoke(app, ["run", str(config), "--out", str(single)])
    assert result.exit_code == 0, result.output

    done = _torchrun(config, double, 2)
    assert done.returncode == 0, done.stdout + done.stderr
    # Rank 0 alone wrote the folder: one log line per message, one set of results.
    log = (double / "log.txt").read_text()
    assert log.count("training done") == 1 and "distributed: 2 processes" in log
    metadata = json.loads((double / "run.json").read_text())
    assert metadata["distributed"]["world_size"] == 2
    assert metadata["distributed"]["per_process_batch_size"] == 4
    for name, value in _weights(single).items():
        torch.testing.assert_close(_weights(double)[name], value, rtol=1e-3, atol=1e-4)
    # Evaluation was dealt out to both ranks and gathered: the same scores as one process.
    one_rows = json.loads((single / "metrics.json").read_text())["rows"]
    two_rows = json.loads((double / "metrics.json").read_text())["rows"]
    for row in one_rows:
        assert two_rows[row]["ssim"] == pytest.approx(one_rows[row]["ssim"], abs=1e-4)

    # Train half with two processes, then resume the same folder with one.
    half = _torchrun(config, switched, 2, "--set", "train.steps=3")
    assert half.returncode == 0, half.stdout + half.stderr
    resumed = CliRunner().invoke(app, ["run", str(switched), "--set", "train.steps=6"])
    assert resumed.exit_code == 0, resumed.output
    assert "resumed from" in (switched / "log.txt").read_text()
    for name, value in _weights(single).items():
        torch.testing.assert_close(_weights(switched)[name], value, rtol=1e-3, atol=1e-4)


def test_torchrun_streams_a_folder_with_a_distributed_sampler(tmp_path: Path):
    from tests.data.test_streaming import _png_folder

    folder = _png_folder(tmp_path / "images")
    experiment = tiny_experiment(train={"steps": 3, "batch_size": 8, "checkpoint_every": 3})
    experiment["dataset"] = {
        "name": "image-folder", "path": str(folder), "image_size": 16, "workers": 1,
        "max_memory_gb": 1e-6, "test_fraction": 0.2,
    }
    config = tmp_path / "stream.toml"
    write_toml(config, experiment)
    done = _torchrun(config, tmp_path / "run", 2)
    assert done.returncode == 0, done.stdout + done.stderr
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "streamed from disk" in log and "distributed: 2 processes" in log
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["train_steps"] == 3
