"""Signals during a checkpoint write: the previous checkpoint survives, and what a killed
writer leaves (a temporary file) is never read and is cleared by the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.faults.conftest import invoke, succeeded


def test_ctrl_c_mid_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    from coldkit.runs.checkpoint import save_atomic

    path = tmp_path / "last.pt"
    save_atomic({"step": 1}, path)
    real_save = torch.save

    def interrupted(obj, handle, *args, **kwargs):
        handle.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_atomic({"step": 2}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert sorted(os.listdir(tmp_path)) == ["last.pt"]


WRITER = """
import sys, time, torch
from pathlib import Path
from coldkit.runs.checkpoint import save_atomic

def slow(obj, handle, *args, **kwargs):
    handle.write(b"x" * 1000)
    handle.flush()
    print("writing", flush=True)
    time.sleep(60)

torch.save = slow
save_atomic({"step": 2}, Path(sys.argv[1]))
"""


@pytest.mark.parametrize("signal_number", [signal.SIGKILL, signal.SIGTERM])
def test_a_writer_killed_mid_checkpoint_leaves_the_old_one_and_the_run_resumes(
    finished_run, signal_number
):
    checkpoint = finished_run / "checkpoints" / "last.pt"
    before = checkpoint.read_bytes()
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(checkpoint)], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal_number)
    writer.wait(timeout=30)
    time.sleep(0.1)
    assert checkpoint.read_bytes() == before
    leftovers = list(checkpoint.parent.glob(".last.pt.coldkit-*.tmp"))
    if signal_number == signal.SIGKILL:
        assert leftovers  # nothing could clean up after kill -9 ...
    result = invoke("run", finished_run, "--set", "train.steps=8")
    succeeded(result)  # ... the next run clears it and resumes from the intact checkpoint
    assert "resumed from" in result.output
    assert not list(Path(finished_run).rglob("*.tmp"))
