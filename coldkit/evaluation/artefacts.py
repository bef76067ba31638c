"""The last stage of ``coldkit run``: everything it measured, written into the run folder.

``metrics.json``, ``table.md``, ``figure.png`` (Figure 3), ``loss_curve.png``, ``run.json``,
the TensorBoard results, and the Table 1 rows printed on the console.
"""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from typing import Any

import torch

from coldkit import __version__
from coldkit.runs import tensorboard as tensorboard_log
from coldkit.evaluation.metrics import Evaluation
from coldkit.evaluation.report import (
    fid_sentence,
    rich_table,
    write_figure,
    write_loss_curve,
    write_metrics_json,
    write_table_markdown,
)
from coldkit.runs.context import RunContext
from coldkit.runs.folder import write_metadata
from coldkit.runtime.acceleration import resolve
from coldkit.training.stage import Training


def write_results(
    run: RunContext, training: Training, evaluation: Evaluation, metrics: dict[str, Any]
) -> None:
    """Write every artefact of a finished run and show its Table 1 rows."""
    config, paths = run.config, run.paths
    title = f"{config.name}: Table 1 rows"
    write_metrics_json(metrics, paths.metrics)
    write_table_markdown(metrics, paths.table, title)
    write_figure(evaluation, config.evaluate.figure_rows, run.experiment.sampler.name, paths.figure)
    write_loss_curve(training.trainer.state.losses, paths.loss_curve, config.name)
    write_metadata(paths, run_metadata(run, training, metrics["evaluation_source"]))
    tensorboard_log.write_results(
        config.log.tensorboard, paths.tensorboard, metrics,
        {"figure": paths.figure, "loss_curve": paths.loss_curve}, run.notify,
    )
    run.console.print(rich_table(metrics, title))
    run.console.print(fid_sentence(metrics))
    run.notify(f"results written to {paths.root}", show=True)


def run_metadata(run: RunContext, training: Training, evaluation_source: str) -> dict[str, Any]:
    """``run.json``: versions, device, data sources, the plugins used, the processes, and the
    speed switches of training and sampling with why each is on or off."""
    experiment, cluster = run.experiment, run.cluster
    batch_size = run.config.train.batch_size
    plugins = {
        kind: {
            "name": resolved.record.name,
            "plugin": resolved.record.plugin,
            "distribution": resolved.record.distribution,
            "version": resolved.record.version,
        }
        for kind, resolved in (
            ("dataset", experiment.dataset),
            ("degradation", experiment.degradation),
            ("restorer", experiment.restorer),
        )
    }
    return {
        "coldkit_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "device": str(run.device),
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "training_source": training.data.source,
        "evaluation_source": evaluation_source,
        "parameters": training.parameters,
        "restorer_context": training.context.model_shape(),
        "plugins": plugins,
        # Datasets the plugins read through their build context (e.g. morph's target).
        "plugin_data": list(run.data.sources) if run.data is not None else [],
        "distributed": {
            "world_size": cluster.world_size,
            "backend": cluster.backend,
            "global_batch_size": batch_size,
            "per_process_batch_size": batch_size // cluster.world_size,
        },
        "switches": {
            "train": training.trainer.switches.record(),
            "sampling": resolve(run.config.sampling, run.device, "sampling",
                                restorer=training.trainer.restorer).record(),
        },
    }


__all__ = ["run_metadata", "write_results"]
