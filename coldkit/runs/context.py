"""What every stage of a run is handed: the experiment, its folder, device, processes and log.

Built once per run (:meth:`RunContext.start`) and passed to each stage, so no stage takes the
device, the seed, the console and the cluster one by one::

    context = RunContext.start(experiment, RunPaths(Path("runs/x")), Console())
    training = training_stage.prepare(context)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from rich.console import Console
from torch import nn

from coldkit.runtime import acceleration
from coldkit.config import Experiment, ExperimentConfig
from coldkit.data.splits import DatasetReader, dataset_reader, serving_split
from coldkit.protocols import BuildContext, Degradation, Split
from coldkit.runs.exported import working_folder
from coldkit.runs.folder import LOG_FILE, RunPaths, build_degradation
from coldkit.runs.opened import LoadedRun
from coldkit.runtime.cores import CoreClaim
from coldkit.runtime.device import claim_cores, select_device, sharing_note
from coldkit.runtime.distributed import SINGLE_PROCESS, Cluster
from coldkit.runtime.files import make_output_folder
from coldkit.runtime.log import Notify, RunLog


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
    #: Where a reader handed in (an opened run's) sent its notes before: given back on leaving.
    _reader_notify: Notify | None = None

    @classmethod
    def start(
        cls,
        experiment: Experiment,
        paths: RunPaths,
        console: Console,
        cluster: Cluster = SINGLE_PROCESS,
        device: torch.device | None = None,
        log: Path | None = None,
        data: DatasetReader | None = None,
    ) -> "RunContext":
        """The context of a run: its device chosen (``device`` setting, or ``device``), its CPU
        threads set (``threads``, else its share of the cores among the coldkit runs on this
        machine: :meth:`follow_cores`; leaving the context, ``with RunContext.start(...)``,
        gives them back), its log opened on ``log`` (default
        ``paths.log``; a command that reads a run folder and writes elsewhere logs there, so the
        run folder may be read-only) and its one dataset reader: ``data`` (an opened run's,
        whose notes go to this log until the context is left) or a new one."""
        chosen = cluster.device(
            device if device is not None else select_device(experiment.config.device)
        )
        notify = RunLog(log or paths.log, console, enabled=cluster.is_main)
        cores, threads_note = claim_cores(experiment.config.threads, chosen)
        notify(threads_note, show=False)
        before = None
        if data is None:
            data = dataset_reader(experiment, experiment.config.dataset.image_size, notify)
        else:
            before, data.notify = data.notify, notify
        return cls(experiment, paths, chosen, console, notify, cluster, data, cores, before)

    def follow_cores(self) -> None:
        """Take this run's new share of the cores when another run started or ended (cheap:
        it looks at the registry every few seconds at most); call it from the working loop."""
        if self._cores is not None and self._cores.rebalance() is not None:
            self.notify(sharing_note(self._cores), show=False)

    def __enter__(self) -> "RunContext":
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Give this run's cores back to the other runs on the machine (and a reader handed in
        its notes' destination)."""
        if self._cores is not None:
            self._cores.release()
        if self._reader_notify is not None and self.data is not None:
            self.data.notify = self._reader_notify

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


def output_context(
    opened: LoadedRun,
    experiment: Experiment,
    console: Console,
    out: Path | None,
    default: Callable[[RunPaths], Path],
) -> tuple[RunContext, Path]:
    """The context of a command that reads an opened run and writes into an output folder, set
    up in one call, and that folder (made): ``out``, or ``default`` of the run's working folder
    (``coldkit generate``: ``RUN/generated/NAME``).

    The log goes to ``out/log.txt`` when ``out`` is given (reading a run never writes into its
    folder), else to the run's ``log.txt``; an exported model folder is never written (its
    working folder is in the user's cache: :func:`coldkit.runs.exported.working_folder`). The
    context runs on the opened run's device and reads data through its one dataset reader.
    """
    paths = RunPaths(working_folder(opened.root))
    if out is None:
        folder, log = make_output_folder(default(paths), paths.root), None
    else:
        folder = make_output_folder(out)
        log = folder / LOG_FILE
    context = RunContext.start(
        experiment, paths, console, device=opened.device, log=log,
        data=opened.context.data if isinstance(opened.context.data, DatasetReader) else None,
    )
    return context, folder


__all__ = ["RunContext", "output_context"]
