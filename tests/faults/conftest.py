"""Fault injection: helpers shared by the suite (docs/run-folder-guarantees.md says what it
checks). Every case must end in exit 0 with a correct result or exit 2 with a message naming the
cause and the fix: never a traceback, never a file outside the run folder or --out touched."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coldkit.cli import app
from coldkit.config import write_toml
from tests.conftest import tiny_experiment

runner = CliRunner()


def invoke(*args: str):
    """Run the CLI in-process; the result's output holds stdout and stderr."""
    return runner.invoke(app, [str(arg) for arg in args])


def refused(result, *words: str) -> None:
    """Exit 2, no traceback, and every word of the expected message."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output, (word, result.output)


def succeeded(result) -> None:
    assert result.exit_code == 0, (result.output, result.exception)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` by relative path, with a hash of its content."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def config_file(folder: Path, name: str = "tiny.toml", **sections) -> Path:
    path = folder / name
    write_toml(path, tiny_experiment(**sections))
    return path


@pytest.fixture(scope="session")
def _finished_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("finished")
    config = config_file(folder, generate={"num_samples": 8, "batch_size": 4, "judge": False})
    result = invoke("run", config, "--out", folder / "run")
    assert result.exit_code == 0, result.output
    return folder / "run"


@pytest.fixture
def finished_run(_finished_run: Path, tmp_path: Path) -> Path:
    """A copy of a finished tiny run folder (trained, evaluated, with a [generate] section)."""
    copy = tmp_path / "finished"
    shutil.copytree(_finished_run, copy)
    return copy


def _inside(path, folder: Path) -> bool:
    try:
        return Path(os.fspath(path)).resolve().is_relative_to(folder.resolve())
    except (TypeError, ValueError):
        return False


def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


@pytest.fixture
def read_only(monkeypatch):
    """Make folders read-only for one test, by injection: every call that would create, change
    or remove something under them fails with EROFS, as on a read-only mount (a real chmod does
    not stop root, who runs the tests on some machines)."""
    import builtins
    import io

    folders: list[Path] = []

    def guarded(path) -> None:
        if any(_inside(path, folder) for folder in folders):
            raise OSError(errno.EROFS, "Read-only file system", os.fspath(path))

    real_os_open, real_open = os.open, builtins.open

    def os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC):
            guarded(path)
        return real_os_open(path, flags, *args, **kwargs)

    def open_(file, mode="r", *args, **kwargs):
        if not isinstance(file, int) and any(flag in mode for flag in "wax+"):
            guarded(file)
        return real_open(file, mode, *args, **kwargs)

    def wrap(function, *positions):
        def guarded_call(*args, **kwargs):
            for position in positions:
                if position < len(args):
                    guarded(args[position])
            return function(*args, **kwargs)

        return guarded_call

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(io, "open", open_)
    for name, positions in (("mkdir", (0,)), ("replace", (0, 1)), ("rename", (0, 1)),
                            ("unlink", (0,)), ("remove", (0,)), ("rmdir", (0,)),
                            ("chmod", (0,))):
        monkeypatch.setattr(os, name, wrap(getattr(os, name), *positions))

    def make(folder: Path) -> Path:
        folders.append(folder)
        return folder

    return make


@pytest.fixture
def full_disk(monkeypatch):
    """Make folders full, by injection: ``fsync`` of a file under them (where a real full disk
    reports a delayed ENOSPC) and ``write`` of a file opened for appending fail with ENOSPC."""
    folders: list[tuple[Path, str | None]] = []
    real_fsync = os.fsync

    def full(path: str) -> bool:
        name = Path(path).name
        return any(
            _inside(path, folder) and (only is None or name == only or f".{only}." in name)
            for folder, only in folders
        )

    def fsync(fd):
        if full(_fd_path(fd)):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)

    def make(folder: Path, only: str | None = None) -> Path:
        """Fill ``folder``, or only the writes of files named ``only`` in it."""
        folders.append((folder, only))
        return folder

    return make
