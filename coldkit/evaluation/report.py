"""The run's artefacts: metrics.json, table.md, the rich table, Figure-3 grid, loss curve."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich.table import Table

from coldkit.evaluation.metrics import ROWS, Evaluation
from coldkit.data.imaging import save_grid
from coldkit.runtime.files import write_atomic, write_json_atomic, write_text_atomic

METRICS = (
    ("fid", "FID ↓"), ("kid", "KID ↓"), ("ssim", "SSIM ↑"), ("rmse", "RMSE ↓"), ("psnr", "PSNR ↑")
)


def metrics_dict(evaluation: Evaluation, sampler: str, info: dict[str, Any]) -> dict[str, Any]:
    """Everything measured, as JSON-ready data."""
    count = len(evaluation.originals)
    return {
        "rows": {row: result.metrics for row, result in evaluation.rows.items()},
        "sampler": sampler,
        "num_images": count,
        "seconds": {row: result.seconds for row, result in evaluation.rows.items()},
        "seconds_per_image": {
            row: result.seconds / count for row, result in evaluation.rows.items()
        },
        "fid_note": evaluation.fid_note,
        **info,
    }


def _cell(values: dict[str, Any], key: str) -> str:
    value = values.get(key)
    if value is None:
        return "n/c"
    if key == "kid" and values.get("kid_std") is not None:
        return f"{value:.4f} ± {values['kid_std']:.4f}"
    if key == "fid":
        return f"{value:.2f}"
    return "∞" if math.isinf(value) else f"{value:.3f}"


def _labels(metrics: dict[str, Any]) -> list[str]:
    """Column labels; FID's and KID's carry the image count they were computed on."""
    count = fid_count(metrics)
    return [
        f"{label} ({count} images)" if key in ("fid", "kid") and count else label
        for key, label in METRICS
    ]


def fid_count(metrics: dict[str, Any]) -> int | None:
    """How many images of each row FID and KID were computed on (None: not computed)."""
    counts = {metrics["rows"][row].get("fid_images") for row in ROWS} - {None}
    return max(counts) if counts else None


def fid_sentence(metrics: dict[str, Any]) -> str:
    """The sentence under the table that says what FID and KID were computed on, or why not."""
    if metrics.get("fid_note"):
        return f"FID {metrics['fid_note']}."
    reference = metrics["rows"]["direct"].get("fid_reference_images")
    return (
        f"FID and KID (mean ± std over subsets): Inception-v3 pool features of the first "
        f"{fid_count(metrics)} images of each row against the {reference} originals; FID "
        "falls as the count grows, so compare FIDs only at equal counts (docs/metrics.md)."
    )


def _row_label(row: str, sampler: str) -> str:
    return f"sampled ({sampler})" if row == "sampled" else row


def write_table_markdown(metrics: dict[str, Any], path: Path, title: str) -> None:
    lines = [f"# {title}", ""]
    lines.append("| | " + " | ".join(_labels(metrics)) + " |")
    lines.append("|---|" + "---:|" * len(METRICS))
    for row in ROWS:
        values = metrics["rows"][row]
        cells = " | ".join(_cell(values, key) for key, _ in METRICS)
        lines.append(f"| {_row_label(row, metrics['sampler'])} | {cells} |")
    lines.append("")
    lines.append(
        f"{metrics['num_images']} held-out images ({metrics.get('evaluation_source', '')}); "
        f"model trained {metrics.get('train_steps', '?')} steps. "
        "SSIM: 11x11 Gaussian window, sigma 1.5, valid; RMSE over all pixels; outputs clamped "
        "to [0, 1]."
    )
    lines.append(fid_sentence(metrics))
    write_text_atomic(path, "\n".join(lines) + "\n")


def rich_table(metrics: dict[str, Any], title: str) -> Table:
    table = Table(title=title)
    count = fid_count(metrics)
    if count:  # under the table, so the columns stay narrow enough for 80 characters
        table.caption = f"FID and KID on {count} images per row"
    table.add_column("")
    for _, label in METRICS:
        table.add_column(label, justify="right")
    for row in ROWS:
        values = metrics["rows"][row]
        table.add_row(_row_label(row, metrics["sampler"]), *(_cell(values, k) for k, _ in METRICS))
    return table


def write_metrics_json(metrics: dict[str, Any], path: Path) -> None:
    """Write metrics.json as strict JSON, readable by any JSON parser: an infinite value (the
    PSNR of an exact restoration) is written as ``"inf"``, a NaN (a score of a diverged model)
    as ``null``, and each is listed in ``non_finite`` with the value it had."""
    found = _non_finite(metrics)
    if found:
        metrics = {**metrics, "non_finite": found}
    write_json_atomic(path, metrics)


def _non_finite(value: Any, where: str = "") -> dict[str, str]:
    """Every non-finite float in ``value`` by its dotted key, as text ("nan", "inf")."""
    if isinstance(value, float) and not math.isfinite(value):
        return {where: str(value)}
    found: dict[str, str] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            found.update(_non_finite(item, f"{where}.{key}" if where else str(key)))
    return found


def write_figure(evaluation: Evaluation, rows: int, sampler: str, path: Path) -> Path:
    """Figure-3 style: per test image, degraded | direct | sampled | original."""
    columns = [evaluation.rows[row].images[:rows] for row in ROWS] + [evaluation.originals[:rows]]
    return save_grid(columns, ["degraded", "direct", sampler, "original"], path)


def write_loss_curve(losses: list[float], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.5), dpi=100)
    steps = range(1, len(losses) + 1)
    axes.plot(steps, losses, color="0.75", linewidth=0.8, label="per step")
    window = max(1, len(losses) // 50)
    if window > 1:
        smoothed = [
            sum(losses[max(0, i - window + 1) : i + 1]) / len(losses[max(0, i - window + 1) : i + 1])
            for i in range(len(losses))
        ]
        axes.plot(steps, smoothed, color="C0", label=f"mean of {window}")
    axes.set_xlabel("step")
    axes.set_ylabel("training loss")
    axes.set_yscale("log")
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    write_atomic(path, lambda handle: figure.savefig(handle, format="png"))
    plt.close(figure)
    return path
