"""Runs that share a machine: each claims its share of the CPU cores in a small per-user registry.

Two torch processes that each use every core collapse each other (OpenMP threads spin for cores
that are busy: docs/performance.md, "Runs that share a machine"). So a CPU run whose thread count
the user left unset holds a *claim*: a file in the registry folder, locked with ``flock`` for as
long as the process lives. Each run uses ``cores // live claims`` threads and looks again every
few seconds, so the first of two runs gives a core back when the second starts and takes it
again when the second ends.

A claim's lock goes with its process, however that process ends (``kill -9`` included): a file
whose lock can be taken belongs to a dead process, and whoever finds it removes it. A claim file
is locked before it gets its name (it is renamed into place), so no run ever sees a live claim
unlocked.

``threads = N`` in the config, or ``OMP_NUM_THREADS`` in the environment (``coldkit sweep
--parallel`` sets it), overrides the registry. ``COLDKIT_CORES_DIR`` moves the registry folder.
"""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from pathlib import Path
from typing import Callable, Mapping

#: The environment variable that moves the registry folder (tests, or one registry per group).
CORES_DIR_ENV = "COLDKIT_CORES_DIR"
#: How often (seconds) a run looks at the registry again to follow runs that start or end.
RECHECK_SECONDS = 2.0
_PREFIX, _SUFFIX = "claim-", ".lock"


def machine_cores() -> int:
    """The cores this process may run on (its CPU affinity, so taskset and cgroup cpusets count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no sched_getaffinity (macOS)
        return max(1, os.cpu_count() or 1)


def registry_folder() -> Path:
    """``$COLDKIT_CORES_DIR``, else ``$XDG_RUNTIME_DIR/coldkit/cores`` (per user, cleared at
    logout), else ``$XDG_CACHE_HOME/coldkit/cores`` (``~/.cache/coldkit/cores``)."""
    if os.environ.get(CORES_DIR_ENV):
        return Path(os.environ[CORES_DIR_ENV])
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "coldkit" / "cores"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "coldkit" / "cores"


def _held_by_a_live_process(path: Path) -> bool:
    """Whether ``path``'s lock is held; a file whose lock is free is removed (its run is gone)."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    except OSError:  # removed meanwhile, or not ours to open: not a live claim we can see
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        path.unlink(missing_ok=True)  # stale: its process ended without removing it
        return False
    finally:
        os.close(descriptor)


class CoreClaim:
    """This process's claim on its share of the machine's cores (see the module's docstring).

    ``apply`` receives each new thread count (``torch.set_num_threads`` in a run); it is called
    from :meth:`rebalance`, so from the thread that runs the torch work.
    """

    def __init__(
        self,
        folder: Path,
        path: Path,
        descriptor: int,
        cores: int,
        apply: Callable[[int], None],
        clock: Callable[[], float] = time.monotonic,
        restore: int | None = None,
    ) -> None:
        self.folder, self.path, self.cores = folder, path, cores
        self._descriptor: int | None = descriptor
        self._apply, self._clock, self._restore = apply, clock, restore
        self._checked_at = clock()
        self.threads = self.share()
        apply(self.threads)

    @classmethod
    def acquire(
        cls,
        apply: Callable[[int], None],
        folder: Path | None = None,
        cores: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        restore: int | None = None,
    ) -> "CoreClaim":
        """Claim a share of the cores in ``folder`` (default :func:`registry_folder`) and apply
        it; :meth:`release` applies ``restore`` (the count before), if given. Raises ``OSError``
        where the folder cannot be written (the caller runs unclaimed)."""
        folder = folder if folder is not None else registry_folder()
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"{_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        pending = folder / f".{name}.tmp"
        descriptor = os.open(pending, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path = folder / f"{name}{_SUFFIX}"
            os.rename(pending, path)  # locked before it is visible as a claim
        except BaseException:
            os.close(descriptor)
            pending.unlink(missing_ok=True)
            raise
        return cls(folder, path, descriptor, cores or machine_cores(), apply, clock, restore)

    def live_claims(self) -> int:
        """How many runs hold a claim now, this one included (stale claims are removed)."""
        others = sum(
            _held_by_a_live_process(path)
            for path in self.folder.glob(f"{_PREFIX}*{_SUFFIX}")
            if path != self.path
        )
        return 1 + others

    def share(self) -> int:
        """This run's share of the cores: ``cores // live claims``, at least 1."""
        return max(1, self.cores // self.live_claims())

    def rebalance(self) -> int | None:
        """Follow runs that started or ended: at most every :data:`RECHECK_SECONDS`, look at the
        registry and apply a changed share. Returns the new thread count, or None if unchanged."""
        now = self._clock()
        if self._descriptor is None or now - self._checked_at < RECHECK_SECONDS:
            return None
        self._checked_at = now
        share = self.share()
        if share == self.threads:
            return None
        self.threads = share
        self._apply(share)
        return share

    def release(self) -> None:
        """Give the cores back (the claim file is removed; safe to call twice) and apply the
        thread count from before the claim, if one was given."""
        if self._descriptor is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._descriptor)
        self._descriptor = None
        if self._restore is not None:
            self._apply(self._restore)

    def __enter__(self) -> "CoreClaim":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def unclaimed_reason(threads: int | None, device_type: str, environ: Mapping[str, str]) -> str | None:
    """Why a run does *not* size its threads from the registry, or None where it does:
    ``threads`` set in the config, ``OMP_NUM_THREADS`` in the environment, or a non-CPU device."""
    if threads is not None:
        return f"threads = {threads} (the config's threads setting)"
    if environ.get("OMP_NUM_THREADS"):
        return f"threads = {environ['OMP_NUM_THREADS']} (OMP_NUM_THREADS)"
    if device_type != "cpu":
        return f"torch's default threads (a {device_type} run)"
    return None


__all__ = [
    "CORES_DIR_ENV",
    "CoreClaim",
    "RECHECK_SECONDS",
    "machine_cores",
    "unclaimed_reason",
    "registry_folder",
]
