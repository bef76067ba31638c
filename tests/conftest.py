"""Shared fixtures: tiny experiments that run in seconds on a CPU."""

from __future__ import annotations

import importlib
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

from coldkit.config import write_toml
from coldkit.runtime import auto

TINY_EXPERIMENT = {
    "name": "tiny",
    "seed": 0,
    "device": "cpu",
    "dataset": {"name": "synthetic", "image_size": 16, "count": 96, "size": 16},
    "degradation": {"name": "blur", "steps": 4, "kernel_size": 5, "sigma": 1.0},
    "restorer": {"name": "unet", "width": 8, "multipliers": [1, 2], "attention_levels": [1]},
    "train": {
        "steps": 6,
        "batch_size": 8,
        "lr": 1e-3,
        "checkpoint_every": 3,
        "log_every": 2,
    },
    "evaluate": {"num_images": 8, "batch_size": 4, "figure_rows": 3},
}


def tiny_experiment(**sections: dict) -> dict:
    """A deep copy of the tiny experiment with some sections updated."""
    data = {key: (dict(value) if isinstance(value, dict) else value) for key, value in TINY_EXPERIMENT.items()}
    for key, value in sections.items():
        if isinstance(value, dict):
            data[key] = {**data.get(key, {}), **value}
        else:
            data[key] = value
    return data


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    write_toml(path, tiny_experiment())
    return path


@pytest.fixture(autouse=True)
def _own_core_registry(tmp_path_factory, monkeypatch):
    # Runs in tests claim cores in a registry of their own, not beside the user's real runs.
    monkeypatch.setenv("COLDKIT_CORES_DIR", str(tmp_path_factory.mktemp("cores")))


@pytest.fixture(autouse=True)
def _plain_cpu(monkeypatch):
    # "auto" follows what the processor computes natively: in-process tests see a CPU without
    # native bf16 wherever they run, so their numbers do not depend on the machine. Tests of the
    # rules give their own capability (tests/training/test_auto_switches.py).
    plain = auto.Capability("cpu", None, "no avx512_bf16/amx_bf16 on this CPU")
    monkeypatch.setattr(auto, "probe", lambda device: plain if torch.device(device).type == "cpu"
                        else auto.Capability(torch.device(device).type, None, "test"))


@pytest.fixture(autouse=True)
def _few_threads():
    # Tests use tiny tensors: thread start-up would dominate.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def install_fake_distribution(
    root: Path,
    dist: str,
    version: str,
    entry_points: dict[str, str],
    modules: dict[str, str],
    group: str = "coldkit",
) -> None:
    """What pip would leave behind: a dist-info folder with entry points, and the modules."""
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"  # as pip names it
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{group}]\n{lines}\n")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    importlib.invalidate_caches()


@pytest.fixture
def site(tmp_path: Path, monkeypatch) -> Path:
    """A folder on ``sys.path`` where fake distributions are installed."""
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    return tmp_path


class StandInFidNetwork(torch.nn.Module):
    """Stands in for the Inception network in the suite (which would cost 0.3 s per image):
    the same input, ``(N, 3, 299, 299)`` in [-1, 1], and ``(N, 48)`` features that move with the
    images' colour, contrast and layout."""

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        pooled = torch.nn.functional.adaptive_avg_pool2d(batch, 4).flatten(1)
        return torch.cat([pooled, torch.relu(pooled) * 2.0 - pooled.abs()], 1)


@pytest.fixture(scope="session", autouse=True)
def _stand_in_fid_network(tmp_path_factory):
    """Every run in the suite (subprocesses too) computes FID with the stand-in network and caches
    reference features in a temporary folder; tests of the real network unset the variable."""
    import os

    from coldkit.evaluation.fid import CACHE_VARIABLE
    from coldkit.evaluation.inception import NETWORK_VARIABLE

    folder = tmp_path_factory.mktemp("fid")
    network = folder / "stand_in.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script's deprecation note
        torch.jit.script(StandInFidNetwork()).save(str(network))
    previous = {name: os.environ.get(name) for name in (NETWORK_VARIABLE, CACHE_VARIABLE)}
    os.environ[NETWORK_VARIABLE] = str(network)
    os.environ[CACHE_VARIABLE] = str(folder / "cache")
    yield network
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
