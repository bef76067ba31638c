"""``coldkit run RUN --from-step N``: go back to a healthy checkpoint after a run diverged.

Training keeps ``checkpoints/last.pt`` (the last finite weights) and ``checkpoints/healthy.pt``
(the last checkpoint a sane loss followed, :mod:`coldkit.training.trainer`). Rewinding moves
``last.pt`` aside to ``checkpoints/discarded.pt`` (nothing is deleted) and puts the healthy one
in its place, or, for step 0, leaves no checkpoint so training starts over.
"""

from __future__ import annotations

import os
from pathlib import Path

from coldkit.errors import CheckpointError
from coldkit.runs.checkpoint import keep_copy, load_checkpoint
from coldkit.runs.folder import RunPaths


def checkpoint_steps(paths: RunPaths) -> dict[int, Path]:
    """The steps a run folder can resume from, with the file holding each (0: from scratch)."""
    steps: dict[int, Path] = {}
    for path in (paths.healthy_checkpoint, paths.checkpoint):
        if path.is_file() and not path.is_symlink():
            steps[int(load_checkpoint(path)["step"])] = path
    return {0: paths.checkpoint, **steps}


def rewind(paths: RunPaths, step: int) -> None:
    """Make ``step`` the checkpoint the next ``coldkit run`` resumes from (0: none, start over).

    Raises a :class:`CheckpointError` listing the steps kept when ``step`` is not one of them.
    """
    if step < 0:
        raise CheckpointError(f"--from-step {step} is negative. Pass 0 to start over.")
    steps = checkpoint_steps(paths) if paths.checkpoint.is_file() else {0: paths.checkpoint}
    if step not in steps:
        kept = ", ".join(str(kept_step) for kept_step in sorted(steps))
        raise CheckpointError(
            f"Run folder {paths.root} keeps no checkpoint of step {step}; it can resume from "
            f"step {kept} (0 starts over). Pass one of them to --from-step."
        )
    source = steps[step]
    if source == paths.checkpoint and step != 0:
        return
    try:
        if paths.checkpoint.is_file():
            os.replace(paths.checkpoint, paths.discarded_checkpoint)
        if step == 0:
            if paths.healthy_checkpoint.exists():
                os.replace(paths.healthy_checkpoint, paths.discarded_healthy_checkpoint)
            return
    except OSError as exc:
        raise CheckpointError(
            f"Cannot move {paths.checkpoint} aside ({exc.strerror or exc}). Make the run folder "
            "writable, or start a new run with --out NEW_FOLDER."
        ) from None
    keep_copy(paths.healthy_checkpoint, paths.checkpoint)


__all__ = ["checkpoint_steps", "rewind"]
