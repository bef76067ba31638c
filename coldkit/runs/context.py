"""What every stage of a run is handed: the experiment, its folder, device, processes and log.

Built once per run (:meth:`RunContext.start`) and passed to each stage, so no stage takes the
device, the seed, the console and the cluster one by one::

    context = RunContext.start(experiment, RunPaths(Path("runs/x")), Console())
    training = training_stage.prepare(context)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from torch import nn

from coldkit.runtime import acceleration
from coldkit.config import Experiment, ExperimentConfig
from coldkit.data.splits import DatasetReader, dataset_reader, serving_split
from coldkit.protocols import BuildContext, Degradation, Split
from coldkit.runs.folder import build_degradation
from coldkit.runtime.cores import CoreClaim
from coldkit.runtime.device import claim_cores, select_device, sharing_note
from coldkit.runtime.distributed import SINGLE_PROCESS, Cluster
from coldkit.runs.folder import RunPaths
from coldkit.runtime.log import RunLog


@dataclass(frozen=True)
class RunContext:
    """One run (or one command on a run folder): the experiment and where and how it runs.

    ``notify`` is the run's message callback: it prints a line and appends it, timestamped, to the
    run's ``log.txt`` (``notify(message, show=False)`` writes the log only). Under torchrun only
    rank 0 writes and prints.
    """

    experiment: Experiment
    paths: RunPaths
    device: torch.device
    console: Console
    notify: RunLog
    cluster: Cluster = SINGLE_PROCESS
    #: Datasets the run's plugins read through their build context (listed in run.json).
    data: DatasetReader | None = None
    #: This run's share of the CPU cores (None: ``threads`` set, or not a CPU run).
    _cores: CoreClaim | None = None

    @classmethod
    def start(
        cls,
        experiment: Experiment,
        paths: RunPaths,
        console: Console,
        cluster: Cluster = SINGLE_PROCESS,
        device: torch.device | None = None,
        log: Path | None = None,
    ) -> "RunContext":
        """The context of a run: its device chosen (``device`` setting, or ``device``), its CPU
        threads set (``threads``, else its share of the cores among the coldkit runs on this
        machine: :meth:`follow_cores`; leaving the context, ``with RunContext.start(...)``,
        gives them back) and its log opened on ``log`` (default
        ``paths.log``; a command that reads a run folder and writes elsewhere logs there, so the
        run folder may be read-only)."""
        chosen = cluster.device(
            device if device is not None else select_device(experiment.config.device)
        )
        notify = RunLog(log or paths.log, console, enabled=cluster.is_main)
        cores, threads_note = claim_cores(experiment.config.threads, chosen)
        notify(threads_note, show=False)
        data = dataset_reader(experiment, experiment.config.dataset.image_size, notify)
        return cls(experiment, paths, chosen, console, notify, cluster, data, cores)

    def follow_cores(self) -> None:
        """Take this run's new share of the cores when another run started or ended (cheap:
        it looks at the registry every few seconds at most); call it from the working loop."""
        if self._cores is not None and self._cores.rebalance() is not None:
            self.notify(sharing_note(self._cores), show=False)

    def __enter__(self) -> "RunContext":
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Give this run's cores back to the other runs on the machine."""
        if self._cores is not None:
            self._cores.release()

    @property
    def config(self) -> ExperimentConfig:
        return self.experiment.config

    @property
    def seed(self) -> int:
        return self.experiment.config.seed

    @property
    def serving_split(self) -> Split:
        """The split evaluation and generation serve (``evaluate.split``; ``all`` means test)."""
        return serving_split(self.experiment)

    def build_context(
        self, split: Split, channels: int | None = None, steps: int | None = None
    ) -> BuildContext:
        """What a component built for this run serving ``split`` is told."""
        return BuildContext(
            self.config.dataset.image_size, channels, steps, self.device, self.seed, split,
            self.data,
        )

    def degradation(self, split: Split, channels: int | None) -> Degradation:
        """The experiment's degradation built to serve ``split`` (a degradation that reads data,
        such as morph's target images, reads that split of it)."""
        return build_degradation(self.experiment, self.build_context(split, channels))

    def sampling_model(self, restorer: nn.Module) -> nn.Module:
        """``restorer`` with the ``[sampling]`` switches applied (in place), as every restorer
        call outside training runs it; the switches are noted in the log."""
        model = acceleration.prepare_sampling(
            restorer, self.config.sampling, self.device, self.notify
        )
        note = acceleration.sampling_note(model)
        if note is not None:
            self.notify(note, show=False)
        return model


__all__ = ["RunContext"]
