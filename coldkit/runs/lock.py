"""One ``coldkit run`` per run folder: a lock file held for as long as the run works on it.

The lock is an advisory ``flock`` on ``RUN/.lock``: the operating system drops it when the process
ends in any way (Ctrl-C, ``kill -9``, a crash), so a stale lock never blocks a resume. Where
``fcntl`` does not exist (Windows) runs are not locked.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from coldkit.errors import CheckpointError
from coldkit.runs.folder import RunPaths


@contextmanager
def run_folder_lock(root: Path) -> Iterator[None]:
    """Hold the run folder's lock, or raise :class:`CheckpointError` if another process has it."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here
        yield
        return
    path = RunPaths(root).lock
    try:  # never through a link planted at .lock: the lock file is truncated below
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except OSError as exc:
        raise CheckpointError(
            f"Cannot open the run folder's lock {path} ({exc.strerror or exc}): the folder is "
            "read-only or .lock is not a plain file, so this run cannot train in it. A finished "
            "run is still read by `coldkit generate`, `coldkit restore` and `coldkit compare` "
            "(with --out elsewhere); to train on, copy the folder somewhere writable."
        ) from None
    handle = os.fdopen(descriptor, "r+")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise CheckpointError(
                f"Run folder {root} is in use by {holder}. Two runs writing one folder would "
                "overwrite each other's checkpoints, so this one stopped and changed nothing. "
                "Wait for the other run to finish (or stop it), or use --out for a new folder."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"coldkit run (pid {os.getpid()})\n")
        handle.flush()
        yield
    finally:
        handle.close()  # closing the file releases the lock


__all__ = ["run_folder_lock"]
