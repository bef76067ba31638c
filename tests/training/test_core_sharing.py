"""Runs that share a machine claim their share of the cores (coldkit.runtime.cores)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from coldkit.runtime import cores
from coldkit.runtime.cores import CoreClaim, RECHECK_SECONDS, unclaimed_reason
from coldkit.runtime.device import claim_cores


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self) -> None:
        self.now += RECHECK_SECONDS + 0.1


def test_two_claims_share_the_cores_and_the_first_follows_the_second(tmp_path: Path):
    clock, applied = Clock(), []
    first = CoreClaim.acquire(applied.append, tmp_path, cores=4, clock=clock)
    assert first.threads == 4 and applied == [4]  # alone: every core
    second = CoreClaim.acquire(lambda n: None, tmp_path, cores=4, clock=clock)
    assert second.threads == 2
    assert first.rebalance() is None  # looked too recently: no registry scan yet
    clock.advance()
    assert first.rebalance() == 2 and applied == [4, 2]
    second.release()
    clock.advance()
    assert first.rebalance() == 4 and applied == [4, 2, 4]
    clock.advance()
    assert first.rebalance() is None  # unchanged: nothing applied
    first.release()
    assert list(tmp_path.iterdir()) == []


def test_share_is_at_least_one_thread(tmp_path: Path):
    claims = [CoreClaim.acquire(lambda n: None, tmp_path, cores=2) for _ in range(3)]
    assert [claim.share() for claim in claims] == [1, 1, 1]
    for claim in claims:
        claim.release()


def test_release_restores_the_thread_count_from_before_and_is_idempotent(tmp_path: Path):
    applied: list[int] = []
    claim = CoreClaim.acquire(applied.append, tmp_path, cores=2, restore=7)
    claim.release()
    claim.release()
    assert applied == [2, 7]
    assert claim.rebalance() is None  # a released claim follows nothing


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from coldkit.runtime.cores import CoreClaim
    claim = CoreClaim.acquire(lambda n: None, Path(sys.argv[1]), cores=2)
    print("ready", flush=True)
    time.sleep(60)
    """
)


def test_a_killed_run_does_not_starve_the_next(tmp_path: Path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        claim = CoreClaim.acquire(lambda n: None, tmp_path, cores=2)
        assert claim.live_claims() == 2 and claim.threads == 1
        os.kill(holder.pid, signal.SIGKILL)  # no chance to remove its claim file
        holder.wait(timeout=30)
        assert claim.live_claims() == 1 and claim.share() == 2
        assert [path.name for path in tmp_path.iterdir()] == [claim.path.name]  # stale removed
        claim.release()
    finally:
        holder.kill()
        holder.wait(timeout=30)


@pytest.mark.parametrize(
    ("threads", "device", "environ", "expected"),
    [
        (None, "cpu", {}, None),
        (3, "cpu", {}, "threads = 3 (the config's threads setting)"),
        (None, "cpu", {"OMP_NUM_THREADS": "1"}, "threads = 1 (OMP_NUM_THREADS)"),
        (None, "cuda", {}, "torch's default threads (a cuda run)"),
    ],
)
def test_when_the_registry_sizes_the_threads(threads, device, environ, expected):
    assert unclaimed_reason(threads, device, environ) == expected


def test_claim_cores_honours_the_config_and_notes_why(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    previous = torch.get_num_threads()
    try:
        claim, note = claim_cores(2, torch.device("cpu"))
        assert claim is None and torch.get_num_threads() == 2
        assert note == "threads: threads = 2 (the config's threads setting)"
    finally:
        torch.set_num_threads(previous)


def test_claim_cores_without_a_writable_registry_runs_unclaimed(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(cores.CORES_DIR_ENV, str(blocker / "cores"))
    claim, note = claim_cores(None, torch.device("cpu"))
    assert claim is None and "core registry could not be used" in note


def test_registry_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(cores.CORES_DIR_ENV)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert cores.registry_folder() == tmp_path / "coldkit" / "cores"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "missing"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert cores.registry_folder() == tmp_path / "cache" / "coldkit" / "cores"


def test_a_run_claims_its_cores_and_gives_them_back(tiny_config, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from coldkit.cli import app

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    registry = tmp_path / "registry"
    monkeypatch.setenv(cores.CORES_DIR_ENV, str(registry))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(tiny_config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    log = (out / "log.txt").read_text()
    assert "threads: 1 of 1 cores (machine alone; threads = N overrides)" in log
    assert registry.is_dir() and list(registry.iterdir()) == []  # released at the end
    assert torch.get_num_threads() == 1  # the count from before the run
