"""Atomic checkpoint files: a crash mid-write never destroys the last good checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from coldkit.errors import CheckpointError


def save_atomic(state: Any, path: Path) -> None:
    """Write ``state`` (``torch.save``-able) to ``path`` through a temporary file and an atomic
    rename, so a crash mid-write never leaves a half-written file under ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint, turning a truncated or foreign file into an actionable error."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(
            f"Checkpoint {path} cannot be read ({type(exc).__name__}: {exc}). It may be truncated "
            "or not a coldkit checkpoint: move it away to restart training from scratch, or "
            "restore it from a backup."
        ) from None
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise CheckpointError(
            f"Checkpoint {path} is not a coldkit checkpoint (no model or step). Move it away to "
            "restart training from scratch."
        )
    return state
