"""What every stage of a run is handed: the experiment, its folder, device, processes and log.

Built once per run (:meth:`RunContext.start`) and passed to each stage, so no stage takes the
device, the seed, the console and the cluster one by one::

    context = RunContext.start(experiment, RunPaths(Path("runs/x")), Console())
    training = training_stage.prepare(context)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from rich.console import Console
from torch import nn

from coldkit.runtime import acceleration
from coldkit.config import Experiment, ExperimentConfig
from coldkit.runtime.device import apply_threads, select_device
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

    @classmethod
    def start(
        cls,
        experiment: Experiment,
        paths: RunPaths,
        console: Console,
        cluster: Cluster = SINGLE_PROCESS,
        device: torch.device | None = None,
    ) -> "RunContext":
        """The context of a run: its device chosen (``device`` setting, or ``device``), its CPU
        threads set (``threads``) and its log opened on ``paths.log``."""
        chosen = device if device is not None else select_device(experiment.config.device)
        apply_threads(experiment.config.threads)
        notify = RunLog(paths.log, console, enabled=cluster.is_main)
        return cls(experiment, paths, cluster.device(chosen), console, notify, cluster)

    @property
    def config(self) -> ExperimentConfig:
        return self.experiment.config

    @property
    def seed(self) -> int:
        return self.experiment.config.seed

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
