"""8-bit inputs: quantisation as files hold it, straight-through and seeded in training, in the
evaluation, and the warning of `coldkit restore` when a float-trained model meets 8-bit files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import coldkit.generation.restore as restore_module
from coldkit.cli import app
from coldkit.config import TrainSection
from coldkit.data.quantize import (
    draw_share,
    holds_levels,
    quantize,
    quantize_samples,
    quantize_straight_through,
)
from coldkit.evaluation.metrics import evaluate
from coldkit.generation.restore import edge_error, lossy_level
from coldkit.plugins import Registry
from coldkit.protocols import BuildContext
from coldkit.training.trainer import Trainer
from tests.generation.test_restore import run_dir  # noqa: F401 - the module's tiny trained run

runner = CliRunner()


def test_quantize_rounds_and_clamps_like_a_file():
    x = torch.tensor([-0.2, 0.0, 0.5, 0.1 / 255, 0.6 / 255, 1.3])
    assert torch.equal(quantize(x), torch.tensor([0.0, 0.0, 128 / 255, 0.0, 1 / 255, 1.0]))
    assert holds_levels(quantize(torch.rand(4, 1, 8, 8)))
    assert not holds_levels(torch.full((3,), 0.3 / 255))


def test_quantisation_is_straight_through():
    x = torch.rand(2, 1, 4, 4, requires_grad=True)
    out = quantize_straight_through(x)
    assert torch.equal(out.detach(), quantize(x.detach()))
    (out * torch.arange(32.0).view(2, 1, 4, 4)).sum().backward()
    assert torch.equal(x.grad, torch.arange(32.0).view(2, 1, 4, 4))  # identity backwards


def test_share_of_quantised_samples_is_drawn_from_the_seed():
    x = torch.rand(64, 1, 4, 4) * 0.01
    first = draw_share(64, 0.5, torch.Generator().manual_seed(3))
    again = draw_share(64, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(first, again) and 10 < int(first.sum()) < 54
    out = quantize_samples(x, 8, first)
    assert torch.equal(out[first], quantize(x[first])) and torch.equal(out[~first], x[~first])
    assert draw_share(64, 1.0, torch.Generator()) is None


class _Recorder(torch.nn.Module):
    """Wraps a restorer and keeps the inputs it was given."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.seen: list[torch.Tensor] = []

    def forward(self, x, t):
        self.seen.append(x.detach().clone())
        return self.inner(x, t)


def _trainer(tmp_path: Path, share: float, seed: int = 0) -> Trainer:
    registry = Registry.discover()
    blur = registry.get("degradation", "blur").build({"steps": 4, "kernel_size": 5, "sigma": 1.0})
    torch.manual_seed(seed)
    unet = registry.get("restorer", "unet").build(
        {"width": 8, "multipliers": [1, 2], "attention_levels": []},
        BuildContext(image_size=8, channels=1, steps=4),
    )
    settings = TrainSection(
        steps=3, batch_size=8, lr=1e-3, quantize_inputs=8, quantize_share=share, ema_decay=0.0
    )
    images = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    trainer = Trainer(_Recorder(unet), blur, images, settings, seed, torch.device("cpu"),
                      tmp_path / f"ck{share}{seed}.pt")
    return trainer


def test_training_on_quantised_inputs_is_seeded(tmp_path: Path):
    first, second = _trainer(tmp_path, 1.0), _trainer(tmp_path, 1.0)
    first.fit()
    second.fit()
    assert first.state.losses == second.state.losses
    assert all(holds_levels(x) for x in first.restorer.seen)  # the model saw 8-bit inputs
    half, half_again = _trainer(tmp_path, 0.5), _trainer(tmp_path, 0.5)
    half.fit()
    half_again.fit()
    assert half.state.losses == half_again.state.losses
    mixed = half.restorer.seen
    assert torch.equal(torch.cat(mixed), torch.cat(half_again.restorer.seen))
    assert not all(holds_levels(x) for x in mixed)  # only a share was quantised


def test_evaluation_on_8_bit_inputs():
    registry = Registry.discover()
    blur = registry.get("degradation", "blur").build({"steps": 3, "kernel_size": 5, "sigma": 1.0})

    class Unchanged(torch.nn.Module):
        def forward(self, x, t):
            return x

    restorer = Unchanged()
    direct = registry.get("sampler", "direct").build()
    images = torch.rand(6, 1, 16, 16)
    rows = evaluate(restorer, blur, direct, direct, images, torch.device("cpu"), batch_size=4,
                    quantize_inputs=8).rows
    assert holds_levels(rows["degraded"].images)
    plain = evaluate(restorer, blur, direct, direct, images, torch.device("cpu"), batch_size=4)
    assert not holds_levels(plain.rows["degraded"].images)


def test_lossy_level_is_where_the_spread_falls_under_the_threshold():
    blur = Registry.discover().get("degradation", "blur").build(
        {"steps": 6, "kernel_size": 5, "sigma": 1.0}
    )
    flat = torch.full((2, 1, 8, 8), 0.5)
    flat[:, :, 0, 0] = 0.5 + 20 / 255  # one faint dot: a spread of ~2.5 grey levels
    assert lossy_level(blur, flat) == 1
    halves = torch.zeros(2, 1, 16, 16)
    halves[..., 8:] = 1.0  # stays far above 8 grey levels at every level
    assert lossy_level(blur, halves) is None


def _png(path: Path, bits: int) -> Path:
    pixels = np.random.default_rng(0).integers(0, 2**bits, size=(16, 16))
    Image.fromarray(pixels.astype(np.uint8 if bits == 8 else np.uint16)).save(path)
    return path


@pytest.mark.parametrize("bits, warned", [(8, True), (16, False)])
def test_restore_warns_a_float_model_about_8_bit_files(
    run_dir: Path, tmp_path: Path, monkeypatch, bits: int, warned: bool  # noqa: F811
):
    monkeypatch.setattr(restore_module, "lossy_level", lambda *args, **kwargs: 2)
    image = _png(tmp_path / "file.png", bits)
    result = runner.invoke(app, ["restore", str(run_dir), str(image), "--t", "3", "--out",
                                 str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert ("from t = 2 on" in result.output) == warned


def test_edge_error_ignores_brightness_and_sees_edges():
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(edge_error(x + 0.1, x), torch.zeros(2), atol=1e-6)
    sharper = x.clone()
    sharper[:, :, 4, 4] += 0.5
    assert (edge_error(sharper, x) > 0.05).all()


def _jitter_trainer(tmp_path: Path, jitter: int, share: float = 1.0) -> Trainer:
    registry = Registry.discover()
    blur = registry.get("degradation", "blur").build({"steps": 4, "kernel_size": 5, "sigma": 1.0})
    torch.manual_seed(0)
    unet = registry.get("restorer", "unet").build(
        {"width": 8, "multipliers": [1, 2], "attention_levels": []},
        BuildContext(image_size=8, channels=1, steps=4),
    )
    settings = TrainSection(steps=2, batch_size=64, lr=1e-3, ema_decay=0.0, level_jitter=jitter,
                            level_jitter_share=share)
    images = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    return Trainer(unet, blur, images, settings, 0, torch.device("cpu"), tmp_path / "ck.pt")


def test_level_jitter_moves_the_degraded_level_within_bounds_and_is_seeded(tmp_path: Path):
    t = torch.randint(1, 5, (64,), generator=torch.Generator().manual_seed(2))
    off = _jitter_trainer(tmp_path, 0)
    state = off.generator.get_state()
    assert off.jittered(t) is t and torch.equal(off.generator.get_state(), state)  # nothing drawn

    first, again = _jitter_trainer(tmp_path, 1), _jitter_trainer(tmp_path, 1)
    moved, moved_again = first.jittered(t), again.jittered(t)
    assert torch.equal(moved, moved_again)  # the run's seed decides
    assert (moved - t).abs().max() == 1 and (moved != t).any() and (moved == t).any()
    assert moved.min() >= 1 and moved.max() <= 4  # clamped to 1..T

    some = _jitter_trainer(tmp_path, 1, share=0.25).jittered(t)
    assert (some != t).sum() < (moved != t).sum()  # only a share of the samples is moved
