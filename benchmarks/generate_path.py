r"""The path one command takes through the core: modules entered, moves, moves back up a floor.

Issue 23 measures how far a newcomer must read to follow ``coldkit generate``. This traces one
command in-process with :func:`sys.setprofile` and reduces the trace to the *walk*: the sequence of
core modules (``coldkit.*``; plugins, libraries and the standard library are not counted) in which
code runs, changing at every call into a function of another module and every return to one.
Calls below ``--depth`` core frames count as part of the frame at that depth, so a sampler loop or
a resize does not drown the path; consecutive repeats collapse into one visit. Reported:

* ``modules``: core modules entered at any depth;
* ``walk_modules``: core modules on the walk (at most ``--depth`` deep);
* ``moves``: changes of module along the walk;
* ``moves_up``: moves into a module on a higher floor (the floors of docs/architecture.md, as
  ``tests/architecture/test_layering.py`` checks them);
* ``revisits``: moves into a module the walk had already left.

Usage (a trained run folder; nothing is written into it with ``--out``)::

    python -m benchmarks.generate_path runs/tiny --out /tmp/gen --report path.json \
        -- -n 8 --no-judge
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from types import FrameType
from typing import Any, Sequence

from tests.architecture.test_layering import FLOORS

CORE = "coldkit"


@dataclass(frozen=True)
class PathCount:
    """What :func:`count_path` reports (see the module's docstring)."""

    modules: int
    walk_modules: int
    moves: int
    moves_up: int
    revisits: int
    walk: list[str]


def floor_of(module: str) -> int:
    """The floor of a core module (0 at the bottom)."""
    part = module.split(".")[1] if "." in module else CORE
    return next(number for number, floor in enumerate(FLOORS) if part in floor)


def _is_core(frame: FrameType) -> bool:
    name = frame.f_globals.get("__name__", "")
    return name == CORE or name.startswith(CORE + ".")


def _core_depth(frame: FrameType | None) -> int:
    depth = 0
    while frame is not None:
        depth += _is_core(frame)
        frame = frame.f_back
    return depth


class _Tracer:
    """Records the module whose code runs, at most ``depth`` core frames deep."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.walk: list[str] = []
        self.entered: set[str] = set()

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and _is_core(frame):
            self.entered.add(frame.f_globals["__name__"])
            self._visit(frame)
        elif event == "return" and _is_core(frame):
            below = frame.f_back
            while below is not None and not _is_core(below):
                below = below.f_back
            if below is not None:
                self._visit(below)

    def _visit(self, frame: FrameType) -> None:
        while frame is not None and _core_depth(frame) > self.depth:
            frame = frame.f_back
            while frame is not None and not _is_core(frame):
                frame = frame.f_back
        if frame is None:
            return
        module = frame.f_globals["__name__"]
        if not self.walk or self.walk[-1] != module:
            self.walk.append(module)


def reduce_walk(walk: Sequence[str], entered: set[str]) -> PathCount:
    """The counts of a walk (consecutive repeats already collapsed)."""
    moves = list(zip(walk, walk[1:]))
    seen: set[str] = set(walk[:1])
    revisits = 0
    for _, target in moves:
        revisits += target in seen
        seen.add(target)
    return PathCount(
        modules=len(entered), walk_modules=len(set(walk)), moves=len(moves),
        moves_up=sum(floor_of(b) > floor_of(a) for a, b in moves), revisits=revisits,
        walk=list(walk),
    )


def count_path(arguments: Sequence[str], depth: int) -> PathCount:
    """Run ``coldkit ARGUMENTS`` in this process and count its walk."""
    from coldkit.cli import app

    tracer = _Tracer(depth)
    sys.setprofile(tracer)
    try:
        app(list(arguments), standalone_mode=False)
    finally:
        sys.setprofile(None)
    return reduce_walk(tracer.walk, tracer.entered)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_folder")
    parser.add_argument("--out", required=True, help="where generate writes its images")
    parser.add_argument("--depth", type=int, default=3, help="core frames deep (default 3)")
    parser.add_argument("--report", required=True, help="JSON file the counts are written to")
    given, options = parser.parse_known_args(argv)  # the rest: options of coldkit generate
    options = [option for option in options if option != "--"]
    counted = count_path(["generate", given.run_folder, "--out", given.out, *options], given.depth)
    with open(given.report, "w", encoding="utf-8") as file:
        json.dump(asdict(counted), file, indent=1)


if __name__ == "__main__":
    main()
