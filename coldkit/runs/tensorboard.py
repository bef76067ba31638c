"""Optional TensorBoard logging of a run (``[log] tensorboard = true``) into ``RUN/tensorboard/``.

Training writes ``train/loss``, ``train/learning_rate`` and ``train/steps_per_second`` every
``train.log_every`` steps; after evaluation the Table 1 metrics (``metrics/<row>/<metric>``),
``figure.png`` (tag ``figure``) and ``loss_curve.png`` (tag ``loss_curve``) are added at the last
training step. TensorBoard is an optional extra (``pip install 'coldkit[tensorboard]'``): without
it the run logs a one-line warning and goes on unchanged.
"""

from __future__ import annotations

import math
import weakref
from pathlib import Path
from typing import Any, Callable

MISSING = (
    "tensorboard = true but the tensorboard package is not installed: "
    "pip install 'coldkit[tensorboard]'"
)
ROW_ORDER = ("degraded", "direct", "sampled")

#: Logs (one per run) already warned, so a run says it once, not once per stage.
_warned: weakref.WeakSet = weakref.WeakSet()


def open_writer(folder: Path, notify: Callable[..., None], purge_step: int | None = None) -> Any:
    """A ``SummaryWriter`` on ``folder`` (``RUN/tensorboard/``), or None (after one warning) if
    unavailable."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        _warn_once(notify, MISSING)
        return None
    except Exception as exc:  # e.g. an incompatible protobuf: TensorBoard must not stop a run
        _warn_once(
            notify, f"tensorboard = true but TensorBoard could not be loaded ({exc}); "
            "the run goes on without it"
        )
        return None
    return SummaryWriter(log_dir=str(folder), purge_step=purge_step)


def _warn_once(notify: Callable[..., None], message: str) -> None:
    try:
        if notify in _warned:
            return
        _warned.add(notify)
    except TypeError:  # a log that cannot be weakly referenced: warn every time
        pass
    notify(message)


class TrainingLog:
    """Training scalars at ``log_every`` intervals; the loss is the float the trainer returns."""

    def __init__(self, writer: Any, step: int, now: float) -> None:
        self.writer = writer
        self.last_step, self.last_time = step, now

    def step(self, step: int, loss: float, learning_rate: float, now: float) -> None:
        rate = (step - self.last_step) / max(1e-9, now - self.last_time)
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/learning_rate", learning_rate, step)
        self.writer.add_scalar("train/steps_per_second", rate, step)
        self.last_step, self.last_time = step, now

    def close(self) -> None:
        self.writer.close()


def start_training_log(
    enabled: bool, folder: Path, notify: Callable[..., None], step: int, now: float
) -> "TrainingLog | None":
    """A :class:`TrainingLog` if the run asks for TensorBoard and it is installed, else None."""
    if not enabled:
        return None
    # On resume, hide what an interrupted run logged after its last checkpoint (step).
    writer = open_writer(folder, notify, purge_step=step + 1 if step > 0 else None)
    return TrainingLog(writer, step, now) if writer is not None else None


def write_results(
    enabled: bool,
    folder: Path,
    metrics: dict[str, Any],
    images: dict[str, Path],
    notify: Callable[..., None],
) -> None:
    """The Table 1 metrics and the run's pictures, at the last training step."""
    if not enabled:
        return
    writer = open_writer(folder, notify)
    if writer is None:
        return
    step = int(metrics.get("train_steps") or 0)
    try:
        rows = metrics.get("rows", {})
        for row in sorted(rows, key=lambda name: (ROW_ORDER + (name,)).index(name)):
            for name, value in rows[row].items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    writer.add_scalar(f"metrics/{row}/{name}", float(value), step)
        for tag, path in images.items():
            if path.is_file():
                writer.add_image(tag, _read_png(path), step, dataformats="HWC")
    finally:
        writer.close()


def _read_png(path: Path):
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))
