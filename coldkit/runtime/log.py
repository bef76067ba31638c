"""Messages of a run: one callback type for every stage, and the run's ``log.txt``."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from rich.console import Console

from coldkit.runtime.files import append_line

#: The message callback every stage takes (one line of text, for the user and the log).
Notify = Callable[[str], None]


def quiet(message: str) -> None:
    """A :data:`Notify` that drops every message."""


class RunLog:
    """Messages to the console and, with a timestamp, to the run's log.txt.

    Under torchrun only rank 0 logs (``enabled`` is False on the other ranks).
    """

    def __init__(self, path: Path, console: Console, enabled: bool = True) -> None:
        self.path, self.console, self.enabled = path, console, enabled

    def __call__(self, message: str, show: bool = True) -> None:
        if not self.enabled:
            return
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        append_line(self.path, f"{stamp} {message}\n")
        if show:  # plain text: "[degradation]" in a message is not rich markup
            self.console.print(message, markup=False, highlight=False)


__all__ = ["Notify", "RunLog", "quiet"]
