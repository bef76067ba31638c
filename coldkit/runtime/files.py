"""Every file coldkit writes goes through :func:`write_atomic`.

The new content goes to a temporary file in the target's folder (created exclusively, so it
never follows a link), is flushed and fsync'ed, then renamed over the target with ``os.replace``:
a crash, a signal or a full disk mid-write leaves the previous file whole, never a half-written
one, and no temporary file is left behind. ``os.replace`` swaps the directory entry itself, so a
symbolic link planted at the target is replaced, never followed.
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

from coldkit.errors import WriteError

#: Temporary files are ``.NAME.coldkit-XXXX.tmp`` in the target's own folder; only a process
#: killed mid-write (kill -9, power loss) leaves one, and :func:`remove_temporaries` clears it.
TEMPORARY_MARK = ".coldkit-"
TEMPORARY_SUFFIX = ".tmp"
#: The process's umask, read once (setting it is the only way to read it).
_UMASK = os.umask(0)
os.umask(_UMASK)


def write_atomic(path: Path | str, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` by calling ``write(handle)`` on a temporary binary file, then renaming it.

    Any failure of ``write`` (an ``OSError`` such as a full disk, or torch's ``RuntimeError``
    around one) removes the temporary file and raises :class:`WriteError` naming the file and
    the fix; the previous file under ``path``, if any, is intact.
    """
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise WriteError(
            f"Cannot write {path}: it is a folder. Pass the path of a file to write (e.g. "
            f"{path / 'out.png'})."
        )
    temporary: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(
            prefix=f".{path.name}{TEMPORARY_MARK}", suffix=TEMPORARY_SUFFIX, dir=path.parent
        )
        temporary = Path(name)
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_UMASK)  # mkstemp makes 0600; use the usual mode
        os.replace(temporary, path)
        temporary = None
    except (OSError, RuntimeError) as exc:
        raise write_error(path, exc) from None
    finally:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
    return path


def write_error(path: Path, exc: BaseException) -> WriteError:
    """The :class:`WriteError` for a failed write of ``path``: the cause, and what to do."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    reason = reason.strip().splitlines()[0] if reason.strip() else type(exc).__name__
    if not isinstance(exc, OSError):  # torch reports a short write as a RuntimeError
        reason = f"{reason}: the write failed, most likely the disk is full"
    return WriteError(
        f"Could not write {path} ({reason}). Nothing was half-written: the previous file, if "
        "any, is intact. Free disk space or fix the folder's permissions and run the same "
        "command again, or write to another folder with --out."
    )


def write_text_atomic(path: Path | str, text: str) -> Path:
    """:func:`write_atomic` for UTF-8 text."""
    return write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))


def write_json_atomic(path: Path | str, data: Any) -> Path:
    """Strict JSON (no bare ``NaN``/``Infinity``, see :func:`finite_json`) via
    :func:`write_text_atomic`."""
    return write_text_atomic(path, json.dumps(finite_json(data), indent=2, default=str) + "\n")


def finite_json(value: Any) -> Any:
    """``value`` as strict JSON data: an infinite float becomes the string ``"inf"`` or
    ``"-inf"`` (e.g. the PSNR of an exact restoration; readers such as ``coldkit compare`` take
    it back as a number), NaN becomes None, which JSON writes as ``null``."""
    if isinstance(value, float) and math.isinf(value):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(item) for item in value]
    return value


#: The longest file or folder name most file systems accept, in bytes (ext4, XFS, APFS, NTFS).
NAME_MAX = 255


def check_writable_name(path: Path | str, what: str = "--out") -> Path:
    """``path`` as a Path, or a :class:`WriteError` naming ``what`` when a part of it cannot be a
    file name: longer than :data:`NAME_MAX` bytes, or not valid UTF-8 (coldkit records paths in
    its JSON and TOML files, which hold UTF-8 only). Checked before anything is written."""
    path = Path(path)
    for part in path.parts:
        try:
            size = len(part.encode("utf-8"))
        except UnicodeEncodeError:
            shown = part.encode("utf-8", "backslashreplace").decode("ascii", "replace")
            raise WriteError(
                f"{what} {shown!r} is not valid UTF-8, so coldkit cannot record it in its files; "
                "nothing was written. Rename it, or pass a name in UTF-8."
            ) from None
        if size > NAME_MAX:
            raise WriteError(
                f"{what} has a name of {size} bytes ({part[:40]}…), longer than the "
                f"{NAME_MAX} bytes a file name may have; nothing was written. Pass a shorter name."
            )
    return path


def make_output_folder(folder: Path, default_of: Path | None = None) -> Path:
    """Create ``folder`` (and its parents) for a command's output, or a :class:`WriteError`
    naming the fix: a read-only or full place, a file where the folder belongs, or, for a default
    output folder inside ``default_of`` (e.g. ``RUN/restored``), a symbolic link on the way
    there, which is refused rather than followed to wherever it points."""
    check_writable_name(folder)
    if default_of is not None:
        part = folder
        while part != default_of and part != part.parent:
            if part.is_symlink():
                raise WriteError(
                    f"{part} is a symbolic link, so the default output folder {folder} would "
                    "lead outside the run folder; nothing was written. Pass --out with a folder "
                    "to write to, or remove the link."
                )
            part = part.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise WriteError(
            f"Cannot write into {folder}: it is a file, not a folder; nothing was written. Pass "
            "--out with a new folder."
        ) from None
    except OSError as exc:
        raise write_error(folder, exc) from None
    return folder


def is_regular_file(path: Path) -> bool:
    """Whether ``path`` is a regular file itself, not a symbolic link (to anything), a device,
    a FIFO or a folder: what coldkit reads from a folder it was handed."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except (OSError, ValueError):
        return False


def remove_temporaries(*folders: Path) -> list[Path]:
    """Delete the temporary files a killed writer left directly in ``folders`` (call it only
    while no other process writes there, e.g. under the run folder's lock)."""
    found = [
        path
        for folder in folders
        for path in folder.glob(f".*{TEMPORARY_MARK}*{TEMPORARY_SUFFIX}")
        if path.is_file() and not path.is_symlink()
    ]
    for path in found:
        path.unlink(missing_ok=True)
    return found


def append_line(path: Path, line: str) -> None:
    """Append one line to a log file without following a link planted at ``path``."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, flags, 0o666)
    except OSError as exc:
        raise write_error(path, exc) from None
    try:
        with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
            handle.write(line)
    except OSError as exc:
        raise write_error(path, exc) from None


__all__ = [
    "NAME_MAX",
    "append_line",
    "check_writable_name",
    "is_regular_file",
    "make_output_folder",
    "finite_json",
    "remove_temporaries",
    "write_atomic",
    "write_error",
    "write_json_atomic",
    "write_text_atomic",
]
