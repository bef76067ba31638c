"""``python -m benchmarks.generation_gap RUN [-n N] [--split val] [--prior-set KEY=VALUE ...]``:
where does a generating run's distance to real images come from, the prior or the restorer?

Judges, with the run's own classifier (``RUN/judge/classifier.pt``, trained by its generation)
against the held-out ``--split`` images (validation by default: never tune on the test split),
four sets of ``N`` images:

* ``real training images``: what a perfect generator that copies training images scores (about
  the floor: real against real);
* ``true x_T of training images``: the run's sampler started from ``D(x0, T)`` of real training
  images with their own degradation draws, a *perfect prior* over the training x_T: what is left
  is the restorer's (and the sampler's) share of the distance;
* the same with the ``direct`` sampler (one restorer call), for the sampler's share;
* ``the run's prior``: the generation as configured (``[generate]``), plus one row per
  ``--prior-set`` variant (``generate.prior.components=100``, ...), each re-fitted on the
  training split; the gap to the perfect-prior row is the prior's share.

The four numbers tell which lever reaches a goal such as "1.5x the floor": if the perfect prior
is already above it, no prior will get there; train the restorer longer or change the path.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import torch

import coldkit.api as ck
from coldkit.evaluation.judge import judge_generation, load_classifier
from coldkit.generation.sampling import bind_sampler
from coldkit.runs.folder import RunPaths


def _judged(name: str, samples: torch.Tensor, real: torch.Tensor, classifier: Any) -> dict:
    """One row: the judge's numbers for ``samples`` (clamped to [0, 1]) against ``real``."""
    report = judge_generation(samples.clamp(0.0, 1.0), real, classifier)
    return {
        "set": name,
        "classes": report.classes_present,
        "largest_class": round(report.largest_class_share, 4),
        "blank": round(report.blank_share, 4),
        "frechet": round(report.frechet, 3),
        "floor": round(report.frechet_floor, 3),
        "ratio": round(report.frechet_ratio, 3),
    }


def _from_true_x_T(run: ck.Run, x0: torch.Tensor, sampler: str, seed: int) -> torch.Tensor:
    """The run's sampler from ``D(x0, T)``, each image with its own degradation draw.

    The sampler is bound as generation binds it (seeded generator, the run's
    ``generate.step_noise``), not called with its own keyword defaults.
    """
    x_T, params = run.degrade(x0, run.steps, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    sample = bind_sampler(run.get_sampler(sampler), sampler,
                          run.experiment.config.generate.step_noise, generator)
    levels = torch.full((len(x_T),), run.steps, dtype=torch.long, device=run.device)
    restored = []
    with torch.no_grad():
        for i in range(0, len(x_T), 250):
            part = None if params is None else {k: v[i : i + 250] for k, v in params.items()}
            restored.append(sample(run.restorer, run.degradation, x_T[i : i + 250].to(run.device),
                                   levels[i : i + 250], part).float().cpu())
    return torch.cat(restored)


def measure(
    root: Path, count: int, split: str, variants: list[str], seed: int, sampler: str | None = None
) -> list[dict]:
    """The rows described in the module docstring, for the run folder ``root``."""
    run = ck.open(root)
    classifier_path = RunPaths(root).judge_classifier
    if not classifier_path.is_file():
        raise SystemExit(f"{classifier_path} is missing: run the run's generation first "
                         f"(coldkit generate {root} --judge).")
    classifier = load_classifier(classifier_path)
    classifier.eval()
    real = run.images(split)
    train = run.images("train")
    picked = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:count]
    x0 = train[picked]
    sampler = sampler or run.experiment.config.generate.sampler
    rows = [
        _judged("real training images", x0, real, classifier),
        _judged(f"true x_T of training images, {sampler}",
                _from_true_x_T(run, x0, sampler, seed), real, classifier),
        _judged("true x_T of training images, direct",
                _from_true_x_T(run, x0, "direct", seed), real, classifier),
    ]
    with tempfile.TemporaryDirectory() as scratch:
        for index, variant in enumerate(["", *variants]):
            overrides = [item for item in variant.split(",") if item]
            samples = run.generate(count, seed=seed, sampler=sampler, overrides=overrides,
                                   out=Path(scratch) / str(index))
            rows.append(_judged(f"the run's prior {variant}".strip(), samples, real, classifier))
    return rows


def markdown(rows: list[dict]) -> str:
    """The rows as a markdown table."""
    lines = ["| set | classes | largest class | blank | Fréchet ÷ floor |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['set']} | {r['classes']} | {r['largest_class']:.1%} | {r['blank']:.1%} | "
              f"{r['ratio']:.2f} |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("-n", "--count", type=int, default=1000)
    parser.add_argument("--split", default="val", help="held-out images judged against")
    parser.add_argument("--prior-set", action="append", default=[], metavar="KEY=VALUE[,...]",
                        help="a prior variant: comma-separated --set overrides of [generate]")
    parser.add_argument("--sampler", help="default: the run's generate.sampler")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the rows here too")
    args = parser.parse_args()
    rows = measure(args.run, args.count, args.split, args.prior_set, args.seed, args.sampler)
    print(markdown(rows))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
