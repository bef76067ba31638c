"""Atomic checkpoint files: a crash mid-write never destroys the last good checkpoint."""

from __future__ import annotations

import os
import pickle
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from coldkit.errors import CheckpointError, WriteError
from coldkit.runtime.files import write_atomic, write_error


def save_atomic(state: Any, path: Path) -> None:
    """Write ``state`` (``torch.save``-able) to ``path`` atomically
    (:func:`coldkit.runtime.files.write_atomic`): a crash or a full disk mid-write never leaves a
    half-written file under ``path`` (nor a temporary file), and the previous file stays until
    the new one is complete. A failure is a :class:`CheckpointError` naming the file and the fix.
    """
    try:
        write_atomic(path, lambda handle: torch.save(state, handle))
    except WriteError as exc:
        raise CheckpointError(str(exc)) from None


def keep_copy(source: Path, target: Path) -> None:
    """Make ``target`` hold what ``source`` holds, atomically: a hard link (no second copy on
    disk), or a copy where the file system has no hard links. A link planted at ``target`` is
    replaced, never followed; the previous ``target`` stays until the new one is complete."""
    temporary = target.with_name(f".{target.name}.coldkit-link.tmp")
    temporary.unlink(missing_ok=True)
    try:
        try:
            os.link(source, temporary, follow_symlinks=False)
        except OSError:
            write_atomic(target, lambda handle: _copy_into(source, handle))
            return
        os.replace(temporary, target)
    except OSError as exc:
        raise CheckpointError(str(write_error(target, exc))) from None
    except WriteError as exc:
        raise CheckpointError(str(exc)) from None
    finally:
        temporary.unlink(missing_ok=True)


def _copy_into(source: Path, handle: Any) -> None:
    with open(source, "rb") as reading:
        shutil.copyfileobj(reading, handle)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint as data (``weights_only=True``: nothing in it is executed), turning a
    truncated, foreign, code-carrying or malformed file into an actionable error."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message is several paragraphs, and its advice (weights_only=False) would run
        # the file's code: name the refused object and nothing more.
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found is None:
            raise _unreadable(path, exc) from None
        raise CheckpointError(
            f"Checkpoint {path} holds more than tensors and plain data (it refers to "
            f"{found.group(1)}), so it was not "
            "loaded: it is not a coldkit checkpoint, and loading it could run code from it. Move "
            "it away to restart training from scratch, or use a checkpoint coldkit wrote."
        ) from None
    except Exception as exc:
        raise _unreadable(path, exc) from None
    problem = _malformed(state)
    if problem is not None:
        raise CheckpointError(
            f"Checkpoint {path} is not a coldkit checkpoint ({problem}). Move it away to "
            "restart training from scratch, or restore it from a backup."
        )
    return state


def _malformed(state: Any) -> str | None:
    """What is wrong with a loaded checkpoint's structure, or None."""
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        return "no model or step"
    if not isinstance(state["model"], dict):
        return "its model is not a table of tensors"
    step = state["step"]
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return f"its step is {step!r}, not a whole number"
    losses = state.get("losses", [])
    if not isinstance(losses, list) or not all(
        isinstance(value, (int, float)) and not isinstance(value, bool) for value in losses
    ):
        return "its losses are not a list of numbers"
    elapsed = state.get("elapsed_seconds", 0.0)
    if isinstance(elapsed, bool) or not isinstance(elapsed, (int, float)):
        return f"its elapsed_seconds is {elapsed!r}, not a number"
    if not isinstance(state.get("trained_for") or {}, dict):
        return "its trained_for record is not a table"
    return None


def load_error_reason(exc: BaseException) -> str:
    """One line saying why ``torch.load`` refused a file, without torch's advice to load it with
    ``weights_only=False`` (which would run any code the file carries)."""
    text = str(exc).strip()
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if found is not None:
        return f"it holds a Python object ({found.group(1)}), not only tensors and plain data"
    reason = text.splitlines()[0] if text else ""
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in reason:
        return "not a file coldkit wrote"
    return f"{type(exc).__name__}: {reason}"


def _unreadable(path: Path, exc: Exception) -> CheckpointError:
    return CheckpointError(
        f"Checkpoint {path} cannot be read ({load_error_reason(exc)}). It may be "
        "truncated or not a coldkit checkpoint: move it away to restart training from scratch, "
        "or restore it from a backup."
    )


def check_trained_for(path: Path, state: dict[str, Any], expected: dict[str, Any]) -> None:
    """Refuse a checkpoint trained for another model than ``expected`` (T, the degradation and
    restorer settings, the image size and channels: :func:`coldkit.runs.folder.trained_for`).

    Checkpoints written before this record existed carry none and are not checked. A setting
    the record lacks was added to its plugin after the checkpoint was written, so it is not
    compared: a plugin adds a setting with a default that keeps the old behaviour (and a value
    that changes the weights' shapes is still refused when they load).
    """
    recorded = state.get("trained_for")
    if not recorded:
        return
    recorded, expected = _flat(recorded), _flat(expected)
    differs = sorted(key for key in recorded if recorded[key] != expected.get(key))
    if differs:
        details = "; ".join(
            f"{key}: checkpoint {recorded.get(key)!r}, config {expected.get(key)!r}"
            for key in differs
        )
        raise CheckpointError(
            f"Checkpoint {path} was trained for another model than the config describes "
            f"({details}). Restore the config the run was trained with, or start a new run "
            "with --out NEW_FOLDER."
        )


def _flat(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested record as ``{"degradation.steps": 4, ...}``."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
