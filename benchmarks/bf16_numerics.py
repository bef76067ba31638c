"""``python -m benchmarks.bf16_numerics [--steps N] [--images N] [--out FILE]``: does bf16
autocast keep ``examples/mnist_blur.toml``'s results?

Trains the example for N steps on its validation split (``dataset.val_fraction = 0.1``,
``evaluate.split = "val"``: the test split stays unseen) three times, one after another, each in
its own process on one thread, and prints the Table 1 rows (direct and sampled SSIM / RMSE; no
FID, which would cost more than the training here):

* ``float32``: every switch off;
* ``bf16, whole network``: bf16 autocast in training and sampling, the input and output layers
  in bf16 too (what ``autocast = "bf16"`` did before they were kept in float32);
* ``bf16, float32 ends``: bf16 autocast as coldkit runs it now (the restorer's input level and
  last convolution in float32, :func:`coldkit.runtime.acceleration.end_layers`);
* ``bf16, two float32 input levels``: the same with the restorer's first two levels in float32;
* ``float32, standardised input`` and ``bf16, standardised input``: the U-Net with
  ``restorer.standardize_input`` (as the example now runs it), whose ``float32_layers`` are only
  its stem and last convolution. The four cases above run without it
  (``restorer.standardize_input=false``), as they were measured.

With ``--sample-in both`` each trained model is scored twice, sampled in float32 and in bf16,
which separates what training in bf16 costs from what sampling in bf16 costs (without it, a
model is sampled in the precision it was trained in).

bf16 is numerically the same whether the CPU computes it natively or emulates it, so the
results hold for both; only the time differs (emulated bf16 is slower). The rows are written to
``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "examples" / "mnist_blur.toml"
OFF = ["train.compile=false", "train.channels_last=false", "sampling.compile=false",
       "sampling.channels_last=false"]
#: Each case's training precision (``train.autocast``).
CASES = {"float32": "off", "bf16, whole network": "bf16", "bf16, float32 ends": "bf16",
         "bf16, two float32 input levels": "bf16", "float32, standardised input": "off",
         "bf16, standardised input": "bf16"}
#: ``--sample-in`` choices: the sampling precisions (``sampling.autocast``) a model is scored in.
SAMPLE_IN = {"same": None, "both": ("off", "bf16")}
#: The case that runs with the input and output layers in bf16 too.
WHOLE_NETWORK = "bf16, whole network"
#: The case that keeps the first two levels of the restorer in float32, not one.
TWO_LEVELS = "bf16, two float32 input levels"


def overrides(case: str, steps: int, images: int, sampling: str | None = None) -> list[str]:
    """The run's settings: trained in the case's precision, sampled in ``sampling`` (default:
    the same)."""
    training = CASES[case]
    return [
        'device="cpu"', "threads=1", f"train.steps={steps}", "train.max_minutes=600",
        f"train.checkpoint_every={steps}", "dataset.val_fraction=0.1", 'evaluate.split="val"',
        f"evaluate.num_images={images}", "evaluate.fid_images=0", *OFF,
        f'train.autocast="{training}"', f'sampling.autocast="{sampling or training}"',
        f"restorer.standardize_input={'true' if 'standardised' in case else 'false'}",
    ]


def worker(case: str, steps: int, images: int, folder: Path, sample_in: str) -> None:
    """One run in this process (the whole-network case with the float32 ends turned off), then
    the same model scored in each sampling precision of ``sample_in`` (a folder whose training
    is complete is evaluated again)."""
    from rich.console import Console

    from coldkit.config import load_experiment
    from coldkit.plugins import Registry
    from coldkit.run import execute
    from coldkit.runs.folder import RunPaths
    from coldkit.runtime import acceleration

    if case == WHOLE_NETWORK:
        resolve = acceleration.resolve

        def whole_network(*args, **kwargs):  # type: ignore[no-untyped-def]
            return dataclasses.replace(resolve(*args, **kwargs), float32_ends=False)

        acceleration.resolve = whole_network  # type: ignore[assignment]
    if case == TWO_LEVELS:
        from coldkit_plugins.unet import UNet

        def two_levels(self):  # type: ignore[no-untyped-def]
            return [self.stem, *self.down[:2], *self.downsample[:2], self.head[-1]]

        UNet.float32_layers = two_levels  # type: ignore[method-assign]
    registry = Registry.discover()
    result: dict = {}
    for sampling in SAMPLE_IN[sample_in] or (None,):
        experiment = load_experiment(CONFIG, registry, overrides(case, steps, images, sampling))
        metrics = execute(experiment, RunPaths(folder), Console(quiet=True))
        rows = {row["row"]: row for row in metrics["rows"]} if isinstance(metrics["rows"], list) \
            else metrics["rows"]
        if sampling is None:
            result["rows"] = rows
        else:
            result.setdefault("rows by sampling precision", {})[sampling] = rows
        result.setdefault("seconds", metrics.get("train_seconds"))
    print(json.dumps(result))


def measure(case: str, steps: int, images: int, sample_in: str = "same") -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "benchmarks.bf16_numerics", "--worker", case,
                   "--steps", str(steps), "--images", str(images), "--folder", folder,
                   "--sample-in", sample_in]
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{case}: the run failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--images", type=int, default=200, help="validation images scored")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--sample-in", choices=list(SAMPLE_IN), default="same",
                        help="score each model sampled in its training precision, or in both")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.steps, args.images, args.folder, args.sample_in)
        return
    results = {}
    for case in args.cases:
        results[case] = measure(case, args.steps, args.images, args.sample_in)
        print(case, json.dumps(results[case]), flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
