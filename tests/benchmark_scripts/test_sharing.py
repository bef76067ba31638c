"""benchmarks.sharing: its section of docs/performance.md survives benchmarks.run's rewrite."""

from __future__ import annotations

from benchmarks.sharing import END, START, kept_section, replace_section, section


def test_sharing_section_is_replaced_in_place_and_kept():
    rows = [
        {"case": "before", "alone": 10.0, "pair": [60.0, 61.0]},
        {"case": "passive", "alone": 10.2, "pair": [19.0, 20.0]},
    ]
    block = section(rows, steps=100, repeats=1)
    assert block.startswith(START) and block.endswith(END)
    assert "| before | 10.0 | 1.00 | 60.0 / 61.0 | 6.10 | **MISS** |" in block
    assert "| passive | 10.2 | 1.02 | 19.0 / 20.0 | 1.96 | **PASS** |" in block
    page = replace_section("# Performance\n\n## Goals\n", block)
    assert kept_section(page) == block
    rewritten = replace_section("# Performance\n\n## Goals (new)\n", kept_section(page))
    assert "Goals (new)" in rewritten and kept_section(rewritten) == block
    newer = section([{"case": "x", "alone": 1.0, "pair": [1.5, 1.6]}], steps=10)
    assert kept_section(replace_section(page, newer)) == newer
    assert replace_section(page, newer).count(START) == 1


def test_the_chosen_cases_name_the_command_that_measured_them():
    rows = [{"case": "before", "alone": 10.0, "pair": [60.0, 61.0]},
            {"case": "default", "alone": 9.0, "pair": [17.0, 18.0]}]
    block = section(rows, steps=40, repeats=3, keys=["before", "default"])
    assert "`python -m benchmarks.sharing --steps 40 --repeats 3 --cases before default`" in block
    assert "| default | 9.0 | 0.90 | 17.0 / 18.0 | 2.00 | **PASS** |" in block
