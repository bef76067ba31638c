"""`coldkit compare`: tables, reports and the figure of several run folders side by side."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from coldkit.cli import app
from coldkit.config import write_toml
from coldkit.data.imaging import GAP, HEADER_HEIGHT, to_uint8_rgb
from coldkit.data.splits import load_split
from coldkit.runs.opened import open_run
from tests.conftest import tiny_experiment

runner = CliRunner()
SIZE = 16  # tiny_experiment()'s image size
SCALE = 3  # save_grid's default enlargement
CELL = SIZE * SCALE + GAP


def compare(*args: str):
    return runner.invoke(app, ["compare", *args])


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three tiny trained runs: two alike in shape with different degradations and samplers, one
    on 3-channel images."""
    root = tmp_path_factory.mktemp("compare") / "runs"
    variants = {
        "blur_a": {},
        "blur_b": {
            "degradation": {"steps": 3, "sigma": 2.0},
            "evaluate": {"sampler": "naive"},
            "seed": 1,
        },
        "rgb": {"dataset": {"channels": 3}},
    }
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: thread start-up would dominate
    try:
        for name, changes in variants.items():
            config = root.parent / f"{name}.toml"
            write_toml(
                config,
                tiny_experiment(
                    name=name, train={"steps": 2, "checkpoint_every": 2}, **changes
                ),
            )
            result = runner.invoke(app, ["run", str(config), "--out", str(root / name)])
            assert result.exit_code == 0, result.output
    finally:
        torch.set_num_threads(threads)
    return {name: root / name for name in variants}


def metrics_of(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_table_shows_every_run_and_its_metrics(runs, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = compare(str(runs["blur_a"]), str(runs["blur_b"]), "--no-figure")
    assert result.exit_code == 0, result.output
    for name, level, sampler in (("blur_a", 4, "improved"), ("blur_b", 3, "naive")):
        assert name in result.output
        assert f"blur T={level}" in result.output
        assert f"sampled ({sampler})" in result.output
        rows = metrics_of(runs[name])["rows"]
        for row in ("degraded", "direct", "sampled"):
            assert f"{rows[row]['ssim']:.3f}" in result.output
            assert f"{rows[row]['psnr']:.3f}" in result.output
        assert f"{rows['sampled']['fid']:.1f}" in result.output
    assert f"FID on {rows['sampled']['fid_images']} images per row" in result.output
    assert "Fréchet" not in result.output  # no run generated
    assert not (tmp_path / "compare.png").exists()  # --no-figure


def test_json_has_the_numbers_of_metrics_json(runs):
    result = compare(str(runs["blur_b"]), str(runs["blur_a"]), "--json", "--no-figure")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [run["name"] for run in data["runs"]] == ["blur_b", "blur_a"]  # the given order
    for entry in data["runs"]:
        metrics = metrics_of(runs[entry["name"]])
        assert entry["rows"] == metrics["rows"]
        assert entry["train_steps"] == metrics["train_steps"] == 2
        assert entry["train_minutes"] == pytest.approx(metrics["train_seconds"] / 60)
        assert entry["sampler"] == metrics["sampler"]
        assert entry["num_images"] == metrics["num_images"]
        assert entry["finished"] is True and entry["notes"] == []
    assert [run["level"] for run in data["runs"]] == [3, 4]
    assert "figure" not in data


def test_markdown_report_on_stdout_and_in_a_file(runs, tmp_path: Path):
    result = compare(str(runs["blur_a"]), str(runs["blur_b"]), "--markdown", "--no-figure")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header[:6] == ["run", "degradation", "restorer", "sampler", "steps", "minutes"]
    assert "sampled SSIM ↑" in header and "degraded RMSE ↓" in header
    assert set(lines[1]) <= set("|-:") and lines[1].count("|") == len(header) + 1
    for line, name in zip(lines[2:4], ("blur_a", "blur_b")):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[0] == name
        sampled = metrics_of(runs[name])["rows"]["sampled"]
        assert cells[header.index("sampled SSIM ↑")] == f"{sampled['ssim']:.3f}"
        assert cells[header.index("sampled PSNR ↑")] == f"{sampled['psnr']:.3f}"

    out = tmp_path / "reports" / "compare.json"  # format from the suffix
    result = compare(str(runs["blur_a"]), "--out", str(out), "--no-figure")
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["runs"][0]["rows"] == metrics_of(runs["blur_a"])["rows"]
    assert "blur_a" in result.stdout  # the table is still shown


def test_glob_patterns_are_expanded_in_order(runs):
    pattern = str(runs["blur_a"].parent / "blur_*")
    result = compare(pattern, "--json", "--no-figure")
    assert result.exit_code == 0, result.output
    assert [run["name"] for run in json.loads(result.stdout)["runs"]] == ["blur_a", "blur_b"]
    # A folder named again by a pattern is listed once, where it first appears.
    result = compare(str(runs["blur_b"]), pattern, "--json", "--no-figure")
    assert [run["name"] for run in json.loads(result.stdout)["runs"]] == ["blur_b", "blur_a"]

    result = compare(str(runs["blur_a"].parent / "nothing_*"), "--no-figure")
    assert result.exit_code == 2 and "nothing_*" in result.output


def grid_cell(figure: np.ndarray, column: int, row: int) -> np.ndarray:
    """The (SIZE, SIZE, 3) image drawn in one cell of a save_grid PNG (undoing the enlargement)."""
    top = HEADER_HEIGHT + GAP + row * CELL + SCALE // 2
    left = GAP + column * CELL + SCALE // 2
    return figure[top : top + SIZE * SCALE : SCALE, left : left + SIZE * SCALE : SCALE]


def test_figure_restores_the_same_images_with_each_run(runs, tmp_path: Path):
    path = tmp_path / "figure.png"
    result = compare(
        str(runs["blur_a"]), str(runs["rgb"]), str(runs["blur_b"]),
        "--figure", str(path), "--images", "2",
    )
    assert result.exit_code == 0, result.output
    # The 3-channel run is listed in the table but refused in the figure, with a note.
    assert "rgb" in result.output
    assert "rgb is not in the figure" in result.output and "3-channel" in result.output
    with Image.open(path) as image:
        # original, then (degraded, sampled) for blur_a and blur_b; 2 rows.
        assert image.size == (5 * CELL + GAP, HEADER_HEIGHT + 2 * CELL + GAP)
        figure = np.asarray(image.convert("RGB"))

    first = open_run(runs["blur_a"], device="cpu")
    originals = load_split(first.experiment.dataset, "test", SIZE).images[:2]
    for index, name in enumerate(("blur_a", "blur_b")):
        run = open_run(runs[name], device="cpu")
        t = torch.full((2,), run.degradation.steps, dtype=torch.long)
        params = run.degradation.sample_params(
            originals, torch.Generator().manual_seed(run.experiment.config.seed)
        )
        degraded = run.degradation.degrade(originals, t, params)
        with torch.no_grad():
            sampled = run.experiment.sampler.component(
                run.restorer, run.degradation, degraded, t, params
            )
        for row in range(2):
            expected = {0: originals[row], 1 + 2 * index: degraded[row]}
            expected[2 + 2 * index] = sampled[row]
            for column, picture in expected.items():
                drawn = grid_cell(figure, column, row).astype(int)
                assert np.abs(drawn - to_uint8_rgb(picture).astype(int)).max() <= 1, (name, column)
    # The two runs degrade differently (T = 4, sigma 1 against T = 3, sigma 2).
    assert not np.array_equal(grid_cell(figure, 1, 0), grid_cell(figure, 3, 0))


def test_default_figure_lands_in_the_current_folder(runs, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = compare(str(runs["blur_a"]), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # messages go to stderr, stdout is pure JSON
    assert data["figure"]["path"] == "compare.png"
    assert data["figure"]["columns"] == ["original", "blur_a T=4", "blur_a improved"]
    with Image.open(tmp_path / "compare.png") as image:
        # 3 columns; the run's evaluate.figure_rows = 3 rows.
        assert image.size == (3 * CELL + GAP, HEADER_HEIGHT + 3 * CELL + GAP)


def test_a_folder_that_is_not_a_run_is_an_error(runs, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stray = tmp_path / "not_a_run"
    stray.mkdir()
    result = compare(str(runs["blur_a"]), str(stray), str(tmp_path / "absent"))
    assert result.exit_code == 2
    assert str(stray) in result.output and "not a coldkit run folder" in result.output
    assert "absent does not exist" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "compare.png").exists()


def test_unfinished_run_is_listed_with_a_note(runs, tmp_path: Path):
    unfinished = tmp_path / "unfinished"
    shutil.copytree(runs["blur_a"], unfinished)
    (unfinished / "metrics.json").unlink()
    result = compare(str(runs["blur_a"]), str(unfinished), "--json", "--no-figure")
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)["runs"]
    assert entries[1]["name"] == "unfinished" and entries[1]["finished"] is False
    assert entries[1]["rows"] == {} and entries[1]["train_steps"] is None
    assert "not finished" in entries[1]["notes"][0]
    assert entries[0]["finished"] is True

    result = compare(str(runs["blur_a"]), str(unfinished), "--no-figure")
    assert result.exit_code == 0, result.output
    assert "unfinished" in result.output and "not finished" in result.output

    result = compare(str(unfinished), "--markdown", "--no-figure")
    line = result.stdout.splitlines()[2]
    assert line.startswith("| unfinished |") and "0." not in line  # no metrics
    assert "not finished" in result.stdout


def test_generation_report_columns(runs, tmp_path: Path):
    generated = tmp_path / "generated"
    shutil.copytree(runs["blur_a"], generated)
    report = {"largest_class_share": 0.4, "frechet_ratio": 1.25, "classes_present": 4}
    (generated / "generation.json").write_text(json.dumps({"report": report, "note": None}))
    result = compare(str(generated), str(runs["blur_b"]), "--no-figure")
    assert result.exit_code == 0, result.output
    assert "40.0%" in result.output and "1.25" in result.output
    result = compare(str(generated), str(runs["blur_b"]), "--json", "--no-figure")
    entries = json.loads(result.stdout)["runs"]
    assert entries[0]["generation"] == {"largest_class_share": 0.4, "frechet_ratio": 1.25}
    assert entries[1]["generation"] is None
    result = compare(str(generated), "--markdown", "--no-figure")
    assert "| largest class share | Fréchet ratio |" in result.stdout
    assert result.stdout.splitlines()[2].endswith("| 40.0% | 1.25 |")


@pytest.mark.parametrize(
    ("options", "expected"),
    [(["--json", "--markdown"], "pick one"), (["--figure", "x.png", "--no-figure"], "drop one")],
)
def test_conflicting_options(runs, options, expected, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = compare(str(runs["blur_a"]), *options)
    assert result.exit_code == 2 and expected in result.output
