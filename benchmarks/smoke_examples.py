"""Run every example config for a few steps on small data and collect its metrics.

A refactor that must not change behaviour is checked by running this before and after and
comparing the two JSON files bit for bit (same seed, same machine)::

    python -m benchmarks.smoke_examples --out before.json
    python -m benchmarks.smoke_examples --out after.json && cmp before.json after.json

Examples whose dataset cannot be read offline (CIFAR-10) run on the synthetic dataset instead,
with the example's own degradation, restorer and sampling settings.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SMOKE = [
    "device=\"cpu\"",
    "train.steps=3",
    "train.max_minutes=5",
    "train.checkpoint_every=2",
    "evaluate.num_images=8",
    "evaluate.batch_size=8",
    "evaluate.figure_rows=2",
]
#: Examples whose data is downloaded: the synthetic dataset with the example's channel count.
OFFLINE_DATA = {
    "cifar10_snow.toml": ["dataset.name=\"synthetic\"", "dataset.count=64", "dataset.size=32",
                          "dataset.channels=3"],
}
GENERATE = ["generate.num_samples=16", "generate.batch_size=8", "generate.judge=false"]


def smoke_metrics(config: Path, folder: Path) -> dict:
    overrides = [*SMOKE, *OFFLINE_DATA.get(config.name, [])]
    if "[generate]" in config.read_text():
        overrides += GENERATE
    command = [sys.executable, "-m", "coldkit", "run", str(config), "--out", str(folder)]
    for override in overrides:
        command += ["--set", override]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"returncode": done.returncode, "error": done.stderr.strip().splitlines()[-1:]}
    metrics = json.loads((folder / "metrics.json").read_text())
    return {"rows": metrics["rows"], "generation": metrics.get("generation", {}).get("report")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    arguments = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="coldkit-smoke-") as root:
        for config in sorted(EXAMPLES.glob("*.toml")):
            if config.name == "mnist_blur_paper.toml":  # 56M parameters: not a smoke run
                continue
            results[config.name] = smoke_metrics(config, Path(root) / config.stem)
            print(config.name, "ok" if "rows" in results[config.name] else results[config.name])
    arguments.out.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
