"""``coldkit restore``: restore image files that are already degraded with a trained run.

The paper's test scripts always degrade clean images first; this module starts from files a user
already has. Each file is read (PNG, JPEG or anything else Pillow opens), converted to the model's
channel count, fitted to the model's square size, restored at a level ``t`` (given, or estimated
per image by :func:`estimate_levels`) with a sampler, and written as ``<stem>_restored.png``
together with one before/after sheet ``restore_sheet.png``::

    from coldkit.runs.opened import open_run
    from coldkit.generation.restore import restore_files
    run = open_run("runs/mnist_blur", notify=print)  # notify: its [sampling] switches applied
    report = restore_files(run, ["blurry.png"], t=20)

Everything is checked (options, every file) before anything is computed, and everything is
computed before anything is written: a call that fails writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from coldkit.config import resolve_sampler
from coldkit.data.files import resize_images
from coldkit.data.quantize import holds_levels
from coldkit.data.served import data_params
from coldkit.errors import ConfigError, DataError
from coldkit.runs.opened import params_of_degraded_images
from coldkit.data.imaging import save_grid, save_png, to_uint8_rgb
from coldkit.plugins import Registry
from coldkit.protocols import Degradation, DegradationParams, Restorer, Sampler
from coldkit.runs.exported import working_folder
from coldkit.runs.folder import RunPaths
from coldkit.runs.opened import LoadedRun
from coldkit.runtime.files import check_writable_name, make_output_folder
from coldkit.runtime.log import Notify, quiet

#: Longer side / shorter side up to which an image counts as "close to square" and is resized to
#: the model's size; anything longer is refused (crop it first).
MAX_ASPECT_RATIO = 1.1
#: Below this spread (the standard deviation of D(x0, t) over an image, in 8-bit grey levels) a
#: file's rounding erases a visible part of what a float-trained model reads (docs/restore.md:
#: for MNIST blurred as in the paper, from t = 9 of 20).
LOSSY_SPREAD_GREY_LEVELS = 8.0
SHEET_FILE = "restore_sheet.png"
RESTORED_SUFFIX = "_restored.png"

#: Pillow modes that hold a single grey channel (with or without alpha).
_GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
#: Grey modes whose values are 16-bit integers rather than 0..255.
_WIDE_GREY_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}


@dataclass(frozen=True)
class RestoredImage:
    """One restored file: where it came from, where it went, and the level used."""

    source: Path
    output: Path
    level: int
    estimated: bool
    #: :func:`edge_error` of ``D(R(x, t), t)`` against ``x`` at the chosen level (``None`` when ``t`` was given).
    error: float | None = None


@dataclass(frozen=True)
class RestoreReport:
    """What :func:`restore_files` wrote."""

    images: list[RestoredImage]
    sheet: Path
    sampler: str

    @property
    def paths(self) -> list[Path]:
        """Every file written: the restored images, then the sheet."""
        return [image.output for image in self.images] + [self.sheet]


def read_image(path: Path | str, channels: int, notify: Notify | None = None) -> Tensor:
    """Read one image file as ``(C, H, W)`` float in [0, 1] with ``channels`` channels (1 or 3).

    Colour is converted to grey (or grey to colour) to match the model, with a notice; any alpha
    channel is dropped. A missing file, a folder, or a file that is not an image raises
    :class:`DataError` naming it.
    """
    path = Path(path)
    notify = notify or quiet
    if channels not in (1, 3):
        raise DataError(
            f"The model takes {channels}-channel images; restoring files needs a model trained on "
            "1-channel (grey) or 3-channel (RGB) images."
        )
    if path.is_dir():
        raise DataError(f"{path} is a folder, not an image file. Pass the files, e.g. {path}/*.png.")
    if not path.is_file():
        raise DataError(f"{path} does not exist. Check the path of the image to restore.")
    try:
        with Image.open(path) as image:
            if image.width * image.height > Image.MAX_IMAGE_PIXELS:  # Pillow only warns up to 2x
                raise Image.DecompressionBombError(image.size)
            image.load()
            mode = image.mode
            if mode == "P":  # a palette: read it as colour (or grey) values first
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
                mode = image.mode
            grey = mode in _GREY_MODES
            if channels == 1:
                if not grey:
                    notify(
                        f"{path}: colour image ({mode}) converted to grey for this 1-channel model"
                    )
                array = _grey_array(image)[None]
            else:
                if grey:
                    notify(
                        f"{path}: grey image ({mode}) converted to RGB for this 3-channel model"
                    )
                    array = np.repeat(_grey_array(image)[None], 3, axis=0)
                else:
                    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
                    array = rgb.transpose(2, 0, 1)
    except UnidentifiedImageError:
        raise DataError(
            f"{path} is not an image Pillow can read. Pass PNG or JPEG files."
        ) from None
    except Image.DecompressionBombError:
        raise DataError(
            f"{path} has more pixels than Pillow reads safely (over {Image.MAX_IMAGE_PIXELS:,}), "
            "which a decompression bomb uses to exhaust memory; it was not read. Downscale it "
            "to a few times the model's image size and pass that file."
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt files
        raise DataError(f"Cannot read image {path}: {exc}. Pass an intact PNG or JPEG file.") from None
    _refuse_non_finite(array, path)
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).clamp_(0.0, 1.0)


def _refuse_non_finite(array: np.ndarray, path: Path) -> None:
    """A float image (TIFF) can hold NaN or inf, which no pixel is: refuse it by name."""
    if not np.isfinite(array).all():
        raise DataError(
            f"{path} holds NaN or infinite pixel values, which no image has; it was not "
            "restored. Replace them (e.g. with 0) or pass the image as PNG."
        )


def _grey_array(image: Image.Image) -> np.ndarray:
    """A grey ``(H, W)`` float array in [0, 1]; 16-bit grey keeps its full range."""
    if image.mode in _WIDE_GREY_MODES:
        return np.asarray(image, dtype=np.float32) / 65535.0
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float32)
        return values / 255.0 if values.size and float(values.max()) > 1.0 else values
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def fit_image(image: Tensor, size: int, name: str, notify: Notify | None = None) -> Tensor:
    """Bring a ``(C, H, W)`` image to the model's ``size x size``.

    An image whose sides differ by at most :data:`MAX_ASPECT_RATIO` is resized (antialiased
    bilinear) with a notice naming the file and both sizes; a clearly non-square one raises
    :class:`DataError` asking for a square crop.
    """
    height, width = image.shape[-2:]
    if (height, width) == (size, size):
        return image
    if max(height, width) > MAX_ASPECT_RATIO * min(height, width):
        side = min(height, width)
        raise DataError(
            f"{name} is {width}x{height} pixels (width x height), not square, and the model takes "
            f"{size}x{size} images. Crop it to a square (e.g. its central {side}x{side}) and run "
            "again."
        )
    if notify is not None:
        notify(f"{name}: resized from {width}x{height} to {size}x{size}, the model's size")
    return resize_images(image[None], size)[0]


def load_images(
    files: Sequence[Path | str], channels: int, size: int, notify: Notify | None = None
) -> Tensor:
    """Read and fit every file; return ``(N, C, size, size)``. Raises before returning anything."""
    if not files:
        raise DataError("No images given. Pass one or more PNG or JPEG files to restore.")
    images = [
        fit_image(read_image(path, channels, notify), size, str(path), notify) for path in files
    ]
    return torch.stack(images)


@torch.no_grad()
def estimate_levels(
    restorer: Restorer,
    degradation: Degradation,
    x: Tensor,
    params: DegradationParams | None = None,
) -> tuple[Tensor, Tensor]:
    """Estimate the degradation level of each image in ``x`` ``(B, C, H, W)``.

    For every ``t`` in ``1 .. T`` (one batched restorer call per level) it computes
    ``x̂0 = R(x, t)`` and the error of ``D(x̂0, t)`` against ``x`` (:func:`edge_error`); the
    level with the smallest error wins (the lowest such ``t`` on a tie). Returns ``levels``
    ``(B,)`` (long) and ``errors`` ``(B, T)`` where ``errors[:, t - 1]`` belongs to level ``t``.
    """
    steps = degradation.steps
    errors = []
    for level in range(1, steps + 1):
        t = torch.full((x.shape[0],), level, dtype=torch.long, device=x.device)
        x0_hat = restorer(x, t)
        again = degradation.degrade(x0_hat, t, params)
        errors.append(edge_error(again, x))
    table = torch.stack(errors, dim=1)
    return table.argmin(dim=1) + 1, table


def edge_error(a: Tensor, b: Tensor) -> Tensor:
    """Root mean square of the difference of the images' finite differences (their edges), one
    value per image: the mean brightness and smooth shading, which neighbouring levels explain
    about equally well, do not drown the detail that tells one level from the next. On 8-bit
    MNIST files it picked far better levels than the plain pixel error (docs/restore.md)."""
    difference = (a - b).float()
    rows = difference[..., 1:, :] - difference[..., :-1, :]
    columns = difference[..., :, 1:] - difference[..., :, :-1]
    return torch.cat([rows.flatten(1), columns.flatten(1)], dim=1).pow(2).mean(dim=1).sqrt()


def output_paths(files: Sequence[Path | str], out: Path) -> list[Path]:
    """``out/<stem>_restored.png`` for each file; refuses names that collide or overwrite inputs."""
    outputs: list[Path] = []
    seen: dict[str, Path] = {}
    inputs = {Path(file).resolve() for file in files}
    for file in files:
        file = Path(file)
        name = file.stem + RESTORED_SUFFIX
        if name in seen:
            raise DataError(
                f"{seen[name]} and {file} would both be written to {out / name}. Restore them in "
                "separate runs with different --out folders, or rename one."
            )
        seen[name] = file
        outputs.append(check_writable_name(out / name, f"The restored image of {file.name[:60]}"))
    for path in [*outputs, out / SHEET_FILE]:
        if path.resolve() in inputs:
            raise DataError(
                f"Restoring would overwrite the input {path}. Choose another --out folder."
            )
    return outputs


def restore_files(
    run: LoadedRun,
    files: Sequence[Path | str],
    *,
    registry: Registry | None = None,
    t: int | None = None,
    estimate: bool = False,
    sampler: str | None = None,
    out: Path | str | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
    notify: Notify | None = None,
) -> RestoreReport:
    """Restore image files with a trained run; write ``<stem>_restored.png`` each and a sheet.

    ``t`` is the inputs' degradation level (``0 .. T``); without it (or with ``estimate``) each
    image's level is estimated with :func:`estimate_levels`. ``sampler`` defaults to the run's
    ``evaluate.sampler``; ``out`` to ``RUN_DIR/restored``; ``batch_size`` to the run's
    ``evaluate.batch_size`` and ``seed`` (the degradation's random draw) to the run's seed.
    ``notify`` receives one-line notes (conversions, resizes, estimated levels). Options and files
    are all checked, and every image restored, before anything is written.
    """
    notify = notify or quiet
    _check_level_options(t, estimate, run.degradation.steps)
    config = run.experiment.config
    sampler_name = sampler or run.experiment.sampler.name
    registry = registry if registry is not None else Registry.discover()
    sample = resolve_sampler(registry, sampler_name, "--sampler").build()
    batch_size = batch_size or config.evaluate.batch_size
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}.")
    working = RunPaths(working_folder(run.root))  # never inside an exported model folder
    out_dir = Path(out) if out is not None else working.restored
    files = [Path(file) for file in files]
    outputs = output_paths(files, out_dir)
    inputs = load_images(files, run.context.channels, run.context.image_size, notify)
    if callable(getattr(run.degradation, "params_of_degraded", None)):
        t = _fully_degraded_level(run.degradation, t, estimate, notify)
    else:
        params_of_degraded_images(run.degradation, inputs)  # refuses params it cannot know
        notify(f"params: none (degradation {run.degradation.name!r} is deterministic)")
    if t is None and not estimate:
        notify("no --t given: estimating each image's level (as with --estimate-t)")

    generator = torch.Generator().manual_seed(config.seed if seed is None else seed)
    results, levels, errors = _restore_batches(run, sample, inputs, t, batch_size)
    items = _restored_items(files, outputs, levels, errors, notify)
    if config.train.quantize_inputs is None and holds_levels(inputs) and not data_params(
        run.degradation
    ):
        _warn_if_lossy(run, results, levels, generator, notify)
    make_output_folder(out_dir, None if out is not None else working.root)
    sheet = _write_restored(inputs, results, items, out_dir)
    return RestoreReport(items, sheet, sampler_name)


def _check_level_options(t: int | None, estimate: bool, steps: int) -> None:
    """Refuse ``--t`` with ``--estimate-t``, and a ``--t`` outside the run's levels."""
    if t is not None and estimate:
        raise ConfigError("Pass either --t or --estimate-t, not both.")
    if t is not None and not 0 <= t <= steps:
        raise ConfigError(
            f"--t {t} is outside the run's levels 0..{steps}. Pass a level in 0..{steps}, or "
            "--estimate-t to let coldkit pick one."
        )


def _fully_degraded_level(
    degradation: Degradation, t: int | None, estimate: bool, notify: Notify
) -> int:
    """The level of files that are x_T themselves (``paired``): T, with y read from the file."""
    steps = degradation.steps
    if estimate or (t is not None and t != steps):
        raise ConfigError(
            f"degradation {degradation.name!r} restores files that are fully degraded: each file "
            f"is x_T (t = T = {steps}) and its own y. Leave out --t and --estimate-t."
        )
    notify(f"no --t needed: degradation {degradation.name!r} starts from x_T = the file "
           f"(t = T = {steps}) and uses y = the file at every sampler step")
    return steps


def _restore_batches(
    run: LoadedRun,
    sample: Sampler,
    inputs: Tensor,
    t: int | None,
    batch_size: int,
) -> tuple[Tensor, list[int], list[float] | None]:
    """Restore ``inputs`` batch by batch at level ``t``, or at each image's estimated level.

    Returns the restored images (CPU, clamped to [0, 1]), each image's level, and each image's
    error at its estimated level (``None`` when ``t`` was given). The degradation's parameters
    are those of the degraded images themselves (:func:`params_of_degraded_images`: none for a
    deterministic degradation, the file itself as ``paired``'s y).
    """
    restored, levels, errors = [], [], []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            x = inputs[start : start + batch_size].to(run.device)
            params = params_of_degraded_images(run.degradation, x)
            if t is None:
                level, table = estimate_levels(run.restorer, run.degradation, x, params)
                errors.extend(table.gather(1, (level - 1)[:, None])[:, 0].tolist())
            else:
                level = torch.full((len(x),), t, dtype=torch.long, device=run.device)
            restored.append(sample(run.restorer, run.degradation, x, level, params).float().cpu())
            levels.extend(int(value) for value in level.tolist())
    return torch.cat(restored).clamp_(0.0, 1.0), levels, errors if t is None else None


@torch.no_grad()
def lossy_level(
    degradation: Degradation,
    x0: Tensor,
    params: DegradationParams | None = None,
    spread: float = LOSSY_SPREAD_GREY_LEVELS,
) -> int | None:
    """The first level t at which ``D(x0, t)`` varies by less than ``spread`` 8-bit grey levels
    (the median over the images of its standard deviation over pixels), or None if no level
    does: from there on, a file's rounding erases part of what a float-trained model reads."""
    for level in range(1, degradation.steps + 1):
        t = torch.full((x0.shape[0],), level, dtype=torch.long, device=x0.device)
        degraded = degradation.degrade(x0, t, params).float().flatten(1)
        if float(degraded.std(dim=1).median()) * 255.0 < spread:
            return level
    return None


def _warn_if_lossy(
    run: LoadedRun, restored: Tensor, levels: list[int], generator: torch.Generator, notify: Notify
) -> None:
    """Warn when a float-trained model restores 8-bit files at a level where rounding to 8 bits
    loses information (decided on the degradation of the restored images themselves)."""
    x0 = restored.to(run.device)
    lossy = lossy_level(run.degradation, x0, run.degradation.sample_params(x0, generator))
    if lossy is None or max(levels) < lossy:
        return
    notify(
        f"warning: these files hold 8 bits per pixel, and from t = {lossy} on D(x0, t) varies by "
        f"less than {LOSSY_SPREAD_GREY_LEVELS:g} grey levels: rounding to 8 bits has erased part "
        f"of what this model, trained on float inputs, reads (levels used up to {max(levels)}). "
        "Expect weaker restorations; a model trained with train.quantize_inputs = 8 (e.g. "
        "examples/mnist_restore_files.toml) is made for files (docs/restore.md)."
    )


def _restored_items(
    files: list[Path],
    outputs: list[Path],
    levels: list[int],
    errors: list[float] | None,
    notify: Notify,
) -> list[RestoredImage]:
    """One :class:`RestoredImage` per file, each noted with its level (and error if estimated)."""
    estimated = errors is not None
    items = []
    for index, (file, output) in enumerate(zip(files, outputs)):
        error = errors[index] if errors is not None else None
        items.append(RestoredImage(file, output, levels[index], estimated, error))
        note = f" (estimated; edge error of D(R(x, t), t) = {error:.4f})" if error is not None else ""
        notify(f"{file}: t = {levels[index]}{note}")
    return items


def _write_restored(
    inputs: Tensor, results: Tensor, items: list[RestoredImage], out_dir: Path
) -> Path:
    """Write every restored image and the before/after sheet (only once all are computed)."""
    for image, item in zip(results, items):
        save_image(image, item.output)
    return save_grid([inputs, results], ["input", "restored"], out_dir / SHEET_FILE)


def save_image(image: Tensor, path: Path) -> Path:
    """Save a ``(C, H, W)`` image in [0, 1] as PNG: grey for 1 channel, RGB for 3."""
    pixels = to_uint8_rgb(image)
    picture = Image.fromarray(pixels[..., 0] if image.shape[0] == 1 else pixels)
    return save_png(picture, path)


__all__ = [
    "LOSSY_SPREAD_GREY_LEVELS", "MAX_ASPECT_RATIO", "RestoreReport", "RestoredImage",
    "estimate_levels", "fit_image", "load_images", "lossy_level", "output_paths", "read_image",
    "restore_files", "save_image",
]
