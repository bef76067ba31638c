"""The example third-party plugin, examples/plugins/coldkit-swirl, installed for real.

pip builds and installs it (offline: no dependencies, no build isolation, no index) into a
temporary folder; the ``coldkit`` console script then runs with that folder on ``PYTHONPATH``, so
the plugin is found through its entry points exactly as after ``pip install coldkit-swirl``. The
shared environment is not touched, and neither is the example's source folder (pip builds a copy).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from coldkit.config import write_toml
from coldkit.plugins import Registry
from tests.conftest import tiny_experiment

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugins" / "coldkit-swirl"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder pip installed coldkit-swirl into (its package and its dist-info)."""
    root = tmp_path_factory.mktemp("coldkit-swirl")
    source, site = root / "source", root / "site"
    shutil.copytree(
        EXAMPLE, source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist")
    )
    result = subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
            "--no-index", "--no-cache-dir", "--disable-pip-version-check", "--quiet",
            "--target", str(site), str(source),
        ],
        capture_output=True, text=True, timeout=300, env=_environment(None),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (site / "coldkit_swirl-0.1.0.dist-info" / "entry_points.txt").is_file()
    return site


def _environment(site: Path | None) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return env


def _coldkit(site: Path, *arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    """The installed console script (next to this Python), as a user would call it."""
    script = shutil.which("coldkit", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-c", "from coldkit.cli import app; app()"]
    return subprocess.run(
        [*command, *arguments], capture_output=True, text=True, timeout=300, cwd=cwd,
        env=_environment(site),
    )


def test_cli_lists_swirl_from_its_distribution(installed: Path, tmp_path: Path):
    result = _coldkit(installed, "list-degradations", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["swirl"]["distribution"] == "coldkit-swirl"
    assert rows["swirl"]["version"] == "0.1.0"
    assert rows["swirl"]["plugin"] == "swirl"
    assert {"steps", "strength", "radius", "jitter", "padding"} <= set(rows["swirl"]["parameters"])
    assert rows["blur"]["distribution"] == "coldkit"  # the built-ins are still there
    assert "warning" not in result.stderr


def test_every_component_is_discovered(installed: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(installed))
    registry = Registry.discover()
    assert not registry.problems, registry.problems
    for kind, name in (("degradation", "swirl"), ("restorer", "swirl-cnn"), ("sampler", "stride-2"),
                       ("prior", "swirl-pca"), ("dataset", "stripes")):
        record = registry.get(kind, name)
        assert (record.distribution, record.version) == ("coldkit-swirl", "0.1.0")
        assert record.is_lazy  # registered by path: listing imports no torch of the plugin's


def test_coldkit_run_trains_with_the_plugin(installed: Path, tmp_path: Path):
    experiment = tiny_experiment(
        name="swirl", evaluate={"sampler": "stride-2"},
        generate={"num_samples": 4, "batch_size": 4, "grid_size": 4, "judge": False,
                  "sampler": "stride-2", "prior": {"name": "swirl-pca", "components": 2,
                                                   "dims": 4}},
    )
    experiment["dataset"] = {"name": "stripes", "image_size": 16, "count": 96, "size": 16}
    experiment["degradation"] = {"name": "swirl", "steps": 4, "jitter": 0.2}
    experiment["restorer"] = {"name": "swirl-cnn", "width": 8, "depth": 2}
    write_toml(tmp_path / "swirl.toml", experiment)
    result = _coldkit(installed, "run", "swirl.toml", "--out", "run", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["sampler"] == "stride-2" and metrics["train_steps"] == 6
    assert set(metrics["rows"]) == {"degraded", "direct", "sampled"}
    assert metrics["generation"]["num_samples"] == 4  # the prior drew the swirl's centres
    used = json.loads((tmp_path / "run" / "run.json").read_text())["plugins"]
    assert used["degradation"]["distribution"] == "coldkit-swirl"
    assert used["restorer"]["name"] == "swirl-cnn"
    assert used["dataset"]["name"] == "stripes"


def test_the_plugins_own_tests_pass(installed: Path, tmp_path: Path):
    """coldkit-swirl's test suite (which runs the conformance kit) against the installed package."""
    tests = tmp_path / "tests"
    shutil.copytree(EXAMPLE / "tests", tests, ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tests)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=_environment(installed),
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
