"""Atomic checkpoint files: a crash mid-write never destroys the last good checkpoint."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from coldkit.errors import CheckpointError


def save_atomic(state: Any, path: Path) -> None:
    """Write ``state`` (``torch.save``-able) to ``path`` through a temporary file, flushed and
    fsync'ed, then an atomic rename: a crash or a full disk mid-write never leaves a half-written
    file under ``path``, and the previous file stays until the new one is complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    try:
        with open(temporary, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise CheckpointError(
            f"Could not write {path} ({exc.strerror or exc}). The previous file, if any, is "
            "intact. Free disk space (or fix the folder's permissions) and run the same command "
            "again."
        ) from None


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint as data (``weights_only=True``: nothing in it is executed), turning a
    truncated, foreign or code-carrying file into an actionable error."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message is several paragraphs; the line naming the refused object is enough.
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found is None:
            raise _unreadable(path, exc) from None
        raise CheckpointError(
            f"Checkpoint {path} holds more than tensors and plain data (it refers to "
            f"{found.group(1)}), so it was not loaded: a checkpoint is data, and loading this one "
            "could run code from it. Move it away to restart training from scratch, or use a "
            "checkpoint coldkit wrote."
        ) from None
    except Exception as exc:
        raise _unreadable(path, exc) from None
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise CheckpointError(
            f"Checkpoint {path} is not a coldkit checkpoint (no model or step). Move it away to "
            "restart training from scratch."
        )
    return state


def _unreadable(path: Path, exc: Exception) -> CheckpointError:
    return CheckpointError(
        f"Checkpoint {path} cannot be read ({type(exc).__name__}: {exc}). It may be truncated "
        "or not a coldkit checkpoint: move it away to restart training from scratch, or "
        "restore it from a backup."
    )
