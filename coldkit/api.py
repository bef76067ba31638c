"""The Python API: what ``coldkit run``, ``coldkit generate`` and ``coldkit restore`` do, from a
notebook or a script.

Every function here calls the same code the command line calls — :func:`coldkit.run.claimed_run`
and :func:`coldkit.run.execute` to train and evaluate, :func:`coldkit.runs.opened.open_run` to load
a run folder, :func:`coldkit.generation.stage.generate_from_run` to generate, and the plugin
:class:`~coldkit.plugins.Registry` for samplers — so a run made here is the run the command line
would have made, and the other way round::

    import coldkit.api as ck

    exp = ck.load("examples/mnist_blur.toml", overrides=["train.steps=100"])  # or ck.load({...})
    run = ck.train(exp, out="runs/nb", progress=False)  # train, evaluate, write the run folder
    run.metrics["rows"]["sampled"]                       # the Table 1 numbers
    run = ck.open("runs/nb")                             # .restorer, .degradation, .experiment
    x_t, params = run.degrade(x0, run.steps)             # D(x0, T)
    x0_hat = run.restore(x_t, run.steps, params=params, sampler="improved")
    images = run.generate(64, prior="pca-gmm", seed=0)   # (64, C, H, W) in [0, 1]
    ck.fid(images, "dataset:mnist:test")                 # {'fid': ..., 'kid': ..., 'count_a': 64, ...}

Problems raise the usual :class:`~coldkit.errors.ColdkitError` subclasses (``ConfigError``,
``CheckpointError``, ``DataError``, ``PluginError``), with the same messages the CLI prints.
See docs/python.md.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from rich.console import Console
from torch import Tensor

from coldkit.config import (
    Experiment,
    apply_overrides,
    build_experiment,
    load_experiment,
    reconfigured,
)
from coldkit.errors import ConfigError
from coldkit.evaluation.fid_pair import fid_between
from coldkit.generation.stage import GenerateOptions, generate_from_run, generation_config
from coldkit.plugins import Registry
from coldkit.run import claimed_run, execute
from coldkit.runs.folder import RunPaths, require_run_folder
from coldkit.runs.opened import LoadedRun, open_run

#: What :func:`load` and :func:`train` accept as an experiment.
Source = Experiment | Mapping[str, Any] | str | Path


def _registry(registry: Registry | None) -> Registry:
    return registry if registry is not None else Registry.discover()


def _console(progress: bool | Console) -> Console:
    """``True``: rich output on stdout, as the CLI shows it; ``False``: nothing; a Console: it."""
    if isinstance(progress, Console):
        return progress
    return Console() if progress else Console(quiet=True)


def load(
    source: Source,
    overrides: Sequence[str] = (),
    *,
    registry: Registry | None = None,
) -> Experiment:
    """Load and validate an experiment, resolving every plugin it names.

    ``source`` is a TOML experiment file, a run folder (its ``config.toml``), a dict with the
    TOML's structure (not modified), or an :class:`Experiment`. ``overrides`` are ``--set`` strings
    such as ``"train.steps=100"``, applied before validation. Raises :class:`ConfigError` for an
    invalid config, a missing file or a malformed override.
    """
    registry = _registry(registry)
    if isinstance(source, Experiment):
        if not overrides:
            return source
        source = source.to_dict()
    if isinstance(source, Mapping):
        data = apply_overrides(copy.deepcopy(dict(source)), list(overrides))
        return build_experiment(data, registry)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            path = RunPaths(path).config
        return load_experiment(path, registry, list(overrides))
    raise ConfigError(
        f"Cannot load an experiment from a {type(source).__name__}. Pass a TOML file path, a run "
        "folder, a dict or an Experiment."
    )


class Run(LoadedRun):
    """A trained run folder, opened for inference (:func:`open`, :func:`train`).

    It is the opened run itself (:class:`~coldkit.runs.opened.LoadedRun`, which
    :func:`coldkit.runs.opened.open_run` makes): ``restorer`` (the EMA weights, in eval mode on
    ``device``), ``degradation``, ``experiment``, ``context`` (the
    :class:`~coldkit.protocols.BuildContext` both were built with), ``step``, ``steps``,
    ``sampler``, ``metrics``, ``images``, ``degrade`` and ``restore``, plus :meth:`generate`.
    The run's ``[sampling]`` switches apply to ``restorer``, as in ``coldkit generate`` and
    ``coldkit restore`` (a switch this device cannot use is turned off with a warning).
    """

    @property
    def loaded(self) -> LoadedRun:
        """The opened run: this object (kept for code written when it was a separate one)."""
        return self

    def generate(
        self,
        count: int = 64,
        *,
        prior: str | None = None,
        seed: int | None = None,
        sampler: str | None = None,
        step_noise: float | None = None,
        batch_size: int | None = None,
        judge: bool = False,
        out: str | Path | None = None,
        overrides: Sequence[str] = (),
        progress: bool | Console = False,
    ) -> Tensor:
        """Generate ``count`` images exactly as ``coldkit generate RUN_FOLDER`` does.

        The prior (default: the run's ``[generate.prior]``, else ``pca-gmm``) is fitted on
        ``D(x0, T)`` of the training split once and cached in ``RUN_FOLDER/priors``; x_T drawn
        from it with ``seed`` (default: the run's) are restored by ``sampler``. The same seed gives
        the same images. Like the command, it writes ``generated.png``, ``samples.pt`` and
        ``generation.json`` into ``out`` (default ``RUN_FOLDER/generated/PRIOR-seedS-nN``);
        ``judge`` scores the samples with a digit classifier (slower). ``overrides`` are
        ``--set`` strings such as ``"generate.prior.components=5"``. Returns ``(count, C, H, W)``
        CPU images in [0, 1].
        """
        options = GenerateOptions(
            count=count, prior=prior, seed=seed, batch_size=batch_size, sampler=sampler,
            step_noise=step_noise, judge=judge, overrides=tuple(overrides),
        )
        # The run was opened before these options were known: its own experiment, with the
        # [generate] (and --set) changes they make; the model's plugins stay as opened.
        change = generation_config(options, self.root)
        experiment = reconfigured(self.experiment, change(self.experiment.to_dict()))
        result = generate_from_run(
            self, experiment, _console(progress), Path(out) if out is not None else None
        )
        return result.samples


def open(  # noqa: A001 - ck.open(run_folder) reads naturally; the builtin is not used here
    root: str | Path,
    *,
    device: str | torch.device | None = None,
    registry: Registry | None = None,
) -> Run:
    """Open a run folder written by ``coldkit run`` (or :func:`train`), or a model folder written
    by ``coldkit export`` (``hf://OWNER/NAME`` for one on the Hugging Face Hub): its experiment,
    trained restorer (EMA weights), degradation and samplers.

    ``device`` defaults to the run's own ``device`` setting. Raises :class:`ConfigError` for a
    folder that is not a run folder and :class:`CheckpointError` for one without a checkpoint.
    """
    registry = _registry(registry)
    return open_run(
        Path(root), registry, device=device, opened=Run,
        notify=lambda note: warnings.warn(note, stacklevel=5),
    )


def train(
    source: Source | Run,
    out: str | Path | None = None,
    *,
    overrides: Sequence[str] = (),
    progress: bool | Console = True,
    registry: Registry | None = None,
) -> Run:
    """Train, evaluate and write a run folder, as ``coldkit run`` does; return it opened.

    ``source`` is an :class:`Experiment` (from :func:`load`), a dict, a TOML file, or a run folder
    (or :class:`Run`) to resume in place — which, once training is complete, evaluates it again,
    e.g. with ``overrides=["evaluate.num_images=200"]``. ``out`` is the run folder (default
    ``runs/<name>``); a folder that holds a run of another config is refused with
    :class:`ConfigError`, as on the command line. ``progress``: ``True`` shows the progress bar and
    the table on stdout, ``False`` shows nothing, a rich ``Console`` receives it all. The run's
    metrics are on the returned :attr:`Run.metrics`.
    """
    registry = _registry(registry)
    console = _console(progress)
    out_path = Path(out) if out is not None else None
    if isinstance(source, Run):
        source = source.root
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        target: Path | Experiment = Path(source)  # a run folder: resumed in place
    else:
        target = load(source, overrides, registry=registry)
        overrides = ()
    # One run per folder, as on the command line: claimed_run holds the folder's lock.
    with claimed_run(target, out_path, list(overrides), registry) as (experiment, paths):
        metrics = execute(experiment, paths, console)
    run = open(paths.root, registry=registry)
    run._metrics = metrics
    return run


def evaluate(
    run: Run | str | Path,
    *,
    overrides: Sequence[str] = (),
    progress: bool | Console = False,
    registry: Registry | None = None,
) -> dict[str, Any]:
    """Score a run folder again (Table 1 rows, figure, ``metrics.json``) and return the metrics.

    The same as ``coldkit run RUN_FOLDER``: ``overrides`` may change the evaluation
    (``evaluate.*``) and the training budget, not the model; a run whose training budget is not
    spent trains on first.
    """
    root = require_run_folder(run.root if isinstance(run, Run) else run)
    reopened = train(root, overrides=overrides, progress=progress, registry=registry)
    assert reopened.metrics is not None
    return reopened.metrics


def fid(
    a: str | Path | Tensor,
    b: str | Path | Tensor,
    *,
    image_size: int | None = None,
    max_images: int | None = None,
    weights: str | None = None,
    progress: bool | Console = False,
    registry: Registry | None = None,
) -> dict[str, Any]:
    """FID and KID between two image sets, as ``coldkit fid A B --json`` prints them: a dict
    with ``fid``, ``kid``, ``kid_std``, ``count_a``, ``count_b`` (and where each set came from).

    ``a`` and ``b`` are each a folder of images, a run folder, a ``samples.pt``,
    ``"dataset:NAME[:SPLIT]"``, or an ``(N, C, H, W)`` tensor in [0, 1] (docs/metrics.md).
    """
    console = _console(progress)
    return fid_between(
        a if isinstance(a, Tensor) else str(a), b if isinstance(b, Tensor) else str(b),
        lambda: _registry(registry), image_size=image_size, max_images=max_images,
        weights=weights, console=console if progress else None,
    )


__all__ = ["Run", "Source", "evaluate", "fid", "load", "open", "train"]
