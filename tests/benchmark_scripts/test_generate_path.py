"""The path counter of benchmarks/generate_path.py: its counts of a walk, by hand."""

from __future__ import annotations

from benchmarks.generate_path import _Tracer, floor_of, reduce_walk


def test_floors_follow_the_layering_check():
    assert floor_of("coldkit.protocols") == 0
    assert floor_of("coldkit.runs.folder") < floor_of("coldkit.generation.stage")
    assert floor_of("coldkit.generation.stage") < floor_of("coldkit.cli")


def test_a_walk_counts_moves_moves_up_and_revisits():
    walk = [
        "coldkit.cli", "coldkit.runs.folder", "coldkit.config", "coldkit.runs.folder",
        "coldkit.cli", "coldkit.generation.stage", "coldkit.runs.folder",
    ]
    counted = reduce_walk(walk, set(walk) | {"coldkit.protocols"})
    assert counted.modules == 5 and counted.walk_modules == 4
    assert counted.moves == 6
    # up: config -> runs.folder, runs.folder -> cli
    assert counted.moves_up == 2
    # into a module already left: runs.folder (twice), cli
    assert counted.revisits == 3


def test_calls_deeper_than_the_depth_count_as_the_frame_at_that_depth():
    tracer = _Tracer()
    tracer.stacks = [
        ("coldkit.cli",),
        ("coldkit.cli", "coldkit.runs.folder"),
        ("coldkit.cli", "coldkit.runs.folder", "coldkit.config"),
        ("coldkit.cli", "coldkit.runs.folder"),
        ("coldkit.cli",),
    ]
    assert tracer.walk(1) == ["coldkit.cli"]
    assert tracer.walk(2) == ["coldkit.cli", "coldkit.runs.folder", "coldkit.cli"]
    assert tracer.walk(3) == [
        "coldkit.cli", "coldkit.runs.folder", "coldkit.config", "coldkit.runs.folder",
        "coldkit.cli",
    ]
