"""The benchmark runs end to end on tiny sizes and writes a complete page. No timing assertions:
timing belongs in the benchmark, not in tests."""

from __future__ import annotations

import re

import pytest
import torch

from benchmarks import report
from benchmarks.run import main, run
from benchmarks.settings import TINY

NUMBER = re.compile(r"^-?\d+(\.\d+)?(e[+-]?\d+)?( ?(×|%))?$")


def table_cells(text: str, heading: str) -> list[list[str]]:
    """The body rows of the first table under ``heading``, as lists of cells."""
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("bench") / "performance.md"
    text = run(TINY, torch.device("cpu"), out)
    assert out.read_text(encoding="utf-8") == text
    return text


def test_page_has_every_section(page):
    for heading in report.SECTIONS:
        assert heading in page, heading


def test_goals_have_numbers_and_verdicts(page):
    goals = table_cells(page, "## Goals")
    assert len(goals) == 4
    for what, measured, target, verdict in goals:
        assert NUMBER.match(measured), (what, measured)
        assert verdict in ("**PASS**", "**MISS**"), (what, verdict)


@pytest.mark.parametrize(
    "heading, numeric_from",
    [
        ("## D(x0, T) : D(x0, 1) for every degradation", 1),
        ("## Blur against the sequential reference", 0),
        ("## Algorithm 2 sampling", 0),
        ("## Training step", 1),
    ],
)
def test_tables_hold_numbers(page, heading, numeric_from):
    rows = table_cells(page, heading)
    assert rows, heading
    for row in rows:
        for cell in row[numeric_from:]:
            if "×" in cell and cell.count("×") == 1 and cell.replace("×", "").isdigit():
                continue  # a size such as 16×16
            assert NUMBER.match(cell), (heading, row, cell)


def test_every_registered_degradation_is_measured(page):
    from coldkit.plugins import Registry

    names = {row[0] for row in table_cells(page, "## D(x0, T) : D(x0, 1) for every degradation")}
    assert set(Registry.discover().names("degradation")) <= names


def test_blur_matches_the_sequential_reference(page):
    for row in table_cells(page, "## Blur against the sequential reference"):
        assert float(row[4]) < 1e-4, row


def test_cli_rejects_cuda_without_a_gpu(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit):
        main(["--device", "cuda", "--out", str(tmp_path / "p.md")])


def test_every_switch_is_measured_on_and_off_and_says_its_default(page):
    rows = table_cells(page, "## Speed switches")
    assert {row[0] for row in rows} >= {"channels-last", "autocast bf16"}
    for row in rows:
        assert row[-1] in ("on", "off"), row
        if not row[2].startswith("not measured"):
            for cell in row[2:-1]:
                assert NUMBER.match(cell), (row, cell)
    section = page.split("## Speed switches", 1)[1]
    for row in rows:
        assert f"* **{row[0]}** on cpu:" in section and "by default" in section
