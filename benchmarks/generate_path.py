r"""The path one command takes through the core: modules entered, moves, moves back up a floor.

Issue 23 measures how far a newcomer must read to follow ``coldkit generate``. This traces one
command in-process with :func:`sys.setprofile` and reduces the trace to the *walk*: the sequence of
core modules (``coldkit.*``; plugins, libraries and the standard library are not counted) in which
code runs, changing at every call into a function of another module and every return to one.
Calls below ``--depth`` core frames (3 and 4 by default) count as part of the frame at that depth,
so a sampler loop or a resize does not drown the path; module bodies run by an import are not
counted; consecutive repeats collapse into one visit. Reported for each depth:

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
#: The deepest core frame the trace keeps apart (deeper calls count as theirs).
MAX_DEPTH = 8
#: The module of the frames an import runs under.
IMPORTING = "importlib._bootstrap"


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
    """A frame of core code (not the import of a module: module bodies are not the path)."""
    name = frame.f_globals.get("__name__", "")
    in_core = name == CORE or name.startswith(CORE + ".")
    return in_core and frame.f_code.co_name != "<module>"


def _core_stack(frame: FrameType | None) -> tuple[str, ...]:
    """The modules of the core frames on the stack, outermost first; ``()`` while a module is
    being imported (what its body runs, class bodies and decorators included, is not the path)."""
    modules: list[str] = []
    while frame is not None:
        if frame.f_globals.get("__name__") == IMPORTING:
            return ()
        if _is_core(frame):
            modules.append(frame.f_globals["__name__"])
        frame = frame.f_back
    return tuple(reversed(modules))


class _Tracer:
    """Records the core stack (its modules, at most ``MAX_DEPTH`` deep) at every call into core
    code and every return from it; consecutive repeats are kept once."""

    def __init__(self) -> None:
        self.stacks: list[tuple[str, ...]] = []
        self.entered: set[str] = set()

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event not in ("call", "return") or not _is_core(frame):
            return
        stack = _core_stack(frame if event == "call" else frame.f_back)[:MAX_DEPTH]
        if stack and event == "call":
            self.entered.add(frame.f_globals["__name__"])
        if stack and (not self.stacks or self.stacks[-1] != stack):
            self.stacks.append(stack)

    def walk(self, depth: int) -> list[str]:
        """The modules whose code runs, calls deeper than ``depth`` core frames counted as the
        frame at that depth; consecutive repeats collapsed."""
        walk: list[str] = []
        for stack in self.stacks:
            module = stack[min(depth, len(stack)) - 1]
            if not walk or walk[-1] != module:
                walk.append(module)
        return walk


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


def count_path(arguments: Sequence[str], depths: Sequence[int]) -> dict[int, PathCount]:
    """Run ``coldkit ARGUMENTS`` in this process and count its walk at each of ``depths``."""
    from coldkit.cli import app

    tracer = _Tracer()
    sys.setprofile(tracer)
    try:
        app(list(arguments), standalone_mode=False)
    finally:
        sys.setprofile(None)
    return {depth: reduce_walk(tracer.walk(depth), tracer.entered) for depth in depths}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_folder")
    parser.add_argument("--out", required=True, help="where generate writes its images")
    parser.add_argument("--depth", type=int, action="append", help="core frames deep (3 and 4)")
    parser.add_argument("--report", required=True, help="JSON file the counts are written to")
    given, options = parser.parse_known_args(argv)  # the rest: options of coldkit generate
    options = [option for option in options if option != "--"]
    depths = given.depth or [3, 4]
    counted = count_path(["generate", given.run_folder, "--out", given.out, *options], depths)
    with open(given.report, "w", encoding="utf-8") as file:
        json.dump({str(depth): asdict(count) for depth, count in counted.items()}, file, indent=1)


if __name__ == "__main__":
    main()
