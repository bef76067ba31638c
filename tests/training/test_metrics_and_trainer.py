"""Metrics as the official code computes them, and the trainer (FID: tests/test_fid.py)."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from coldkit.runs.checkpoint import load_checkpoint, save_atomic
from coldkit.config import TrainSection
from coldkit.errors import CheckpointError
from coldkit.evaluation.metrics import psnr, rmse, ssim
from coldkit.protocols import BuildContext
from coldkit.training.trainer import (
    ExponentialMovingAverage,
    Trainer,
    budget_progress,
    learning_rate_factor,
    restoration_loss,
)
from coldkit_plugins.blur import Blur, BlurParams
from coldkit_plugins.unet import UNet, UNetParams


def test_rmse_and_psnr_over_all_pixels():
    a = torch.zeros(2, 1, 4, 4)
    b = torch.zeros(2, 1, 4, 4)
    b[0] = 0.5  # half of all pixels off by 0.5
    assert rmse(b, a) == pytest.approx(math.sqrt(0.125))
    assert psnr(b, a) == pytest.approx(20 * math.log10(1 / math.sqrt(0.125)))
    assert psnr(a, a) == math.inf


def test_ssim_matches_the_formula_on_valid_windows():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 20, 20, generator=generator)
    y = (x + 0.2 * torch.rand(2, 1, 20, 20, generator=generator)).clamp(0, 1)
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-5)
    # Reference: Gaussian window 11x11, sigma 1.5, no padding, C1=(0.01)^2, C2=(0.03)^2.
    coords = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(coords**2) / (2 * 1.5**2))
    window = (g[:, None] * g[None, :]) / g.sum() ** 2

    def local(z):
        return torch.nn.functional.conv2d(z.double(), window[None, None])

    mu_x, mu_y = local(x), local(y)
    var_x = local(x * x) - mu_x**2
    var_y = local(y * y) - mu_y**2
    cov = local(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    reference = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    assert ssim(y, x) == pytest.approx(float(reference.mean()), abs=1e-4)


def make_trainer(tmp_path: Path, seed: int = 0, **settings) -> Trainer:
    torch.manual_seed(seed)  # as `coldkit run` does before building the model
    blur = Blur(BlurParams(steps=4, kernel_size=5, sigma=1.0))
    unet = UNet(
        UNetParams(width=8, multipliers=[1, 2], attention_levels=[1]),
        context=BuildContext(image_size=16, channels=1, steps=4),
    )
    images = torch.rand(32, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    defaults = dict(steps=5, batch_size=4, lr=1e-3, checkpoint_every=2)
    return Trainer(
        unet, blur, images, TrainSection(**{**defaults, **settings}), seed, torch.device("cpu"),
        tmp_path / "checkpoints" / "last.pt",
    )


def test_same_seed_same_loss_curve_and_different_seed_differs(tmp_path: Path):
    first = make_trainer(tmp_path / "a").fit().losses
    second = make_trainer(tmp_path / "b").fit().losses
    other = make_trainer(tmp_path / "c", seed=1).fit().losses
    assert first == second and first != other and len(first) == 5


def test_accumulation_and_l2_and_cosine_run(tmp_path: Path):
    trainer = make_trainer(tmp_path, accumulate=2, loss="l2", lr_schedule="cosine", warmup_steps=2)
    state = trainer.fit()
    assert state.step == 5 and all(math.isfinite(loss) for loss in state.losses)


def test_berhu_is_l1_for_small_errors_and_l2_beyond_the_threshold():
    target = torch.zeros(5)
    errors = torch.tensor([-0.05, 0.02, 0.1, 0.3, -0.6], requires_grad=True)
    loss = restoration_loss(errors, target, "berhu", berhu_threshold=0.1)
    expected = [0.05, 0.02, 0.1, (0.09 + 0.01) / 0.2, (0.36 + 0.01) / 0.2]
    torch.testing.assert_close(loss, torch.tensor(expected).mean())
    loss.backward()  # slope: sign(e) up to c, e / c beyond (continuous at c)
    torch.testing.assert_close(errors.grad * 5, torch.tensor([-1.0, 1.0, 1.0, 3.0, -6.0]))
    assert restoration_loss(errors, target, "l1") == F.l1_loss(errors, target)
    assert restoration_loss(errors, target, "l2") == F.mse_loss(errors, target)
    # A threshold above every error is exactly L1.
    assert restoration_loss(errors, target, "berhu", 1.0) == F.l1_loss(errors, target)


def test_berhu_training_runs_and_differs_from_l1(tmp_path: Path):
    berhu = make_trainer(tmp_path / "b", loss="berhu", berhu_threshold=0.05).fit().losses
    l1 = make_trainer(tmp_path / "a").fit().losses
    assert all(math.isfinite(value) for value in berhu) and berhu != l1
    trainer = make_trainer(tmp_path / "c", loss="berhu", berhu_threshold=0.05)
    prediction, target = torch.tensor([0.02, 0.3, -0.5]), torch.zeros(3)
    assert trainer.loss(prediction, target) == restoration_loss(prediction, target, "berhu", 0.05)


def test_learning_rate_schedule():
    settings = TrainSection(steps=12, warmup_steps=2, lr_schedule="cosine")
    factors = [learning_rate_factor(step, settings) for step in range(12)]
    assert factors[0] == 0.5 and factors[2] == pytest.approx(1.0)
    assert factors[-1] < factors[5] < factors[2] and min(factors) >= 0.1


def test_wall_clock_budget_stops_training(tmp_path: Path):
    trainer = make_trainer(tmp_path, steps=10_000, max_minutes=1e-9)
    assert trainer.fit().step == 1
    assert trainer.stopped_by() == "max_minutes"


def test_schedule_follows_the_time_budget_when_it_binds_first():
    settings = TrainSection(steps=10_000, max_minutes=1.0, warmup_steps=10, lr_schedule="cosine")
    # 100 of 10,000 steps but the whole minute used: the decay has reached its end, 10%.
    assert budget_progress(100, 60.0, settings) == 1.0
    assert learning_rate_factor(100, settings, budget_progress(100, 60.0, settings)) == pytest.approx(0.1)
    # Half the minute: the middle of the cosine, whatever the step count.
    halfway = learning_rate_factor(100, settings, budget_progress(100, 30.0, settings))
    assert halfway == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (0.5 - 0.001) / 0.999)))
    # Steps bind first: progress follows the steps.
    assert budget_progress(5_000, 1.0, settings) == 0.5


def test_a_tiny_time_budgeted_run_ends_at_the_final_learning_rate(tmp_path: Path):
    trainer = make_trainer(
        tmp_path, steps=10_000, max_minutes=0.05, lr_schedule="cosine", warmup_steps=0
    )
    trainer.fit()
    assert trainer.stopped_by() == "max_minutes" and trainer.state.step < 10_000
    last_lr = trainer.optimizer.param_groups[0]["lr"]
    # The last step ran at (nearly) the end of the budget: close to the final 10% of lr
    # (with steps of up to a third of a second, it is below 30%).
    assert last_lr < 0.3 * trainer.settings.lr


def test_ema_averages_towards_the_model():
    model = torch.nn.Linear(2, 2)
    ema = ExponentialMovingAverage(model, decay=0.9)
    with torch.no_grad():
        model.weight.add_(1.0)
    before = ema.model.weight.clone()
    ema.update(model)
    after = ema.model.weight
    assert torch.all(after > before) and torch.all(after < model.weight)


def test_checkpoints_are_atomic_and_checked(tmp_path: Path):
    path = tmp_path / "c" / "last.pt"
    save_atomic({"model": {}, "step": 3}, path)
    assert load_checkpoint(path)["step"] == 3 and not list(path.parent.glob("*.tmp"))
    path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(path)
    torch.save({"weights": 1}, path)
    with pytest.raises(CheckpointError, match="not a coldkit checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize("preset", ["small", "paper"])
def test_unet_presets_shapes(preset):
    unet = UNet(
        UNetParams(preset=preset), context=BuildContext(image_size=32, channels=1, steps=20)
    )
    x = torch.rand(2, 1, 32, 32)
    assert unet(x, torch.tensor([1, 20])).shape == x.shape
    parameters = sum(p.numel() for p in unet.parameters())
    assert (parameters > 30e6) if preset == "paper" else (parameters < 2e6)


def test_residual_unet_starts_as_identity_and_checks_sizes():
    unet = UNet(UNetParams(), context=BuildContext(image_size=16, channels=3, steps=5))
    x = torch.rand(2, 3, 16, 16)
    assert torch.allclose(unet(x, torch.tensor([1, 5])), x)
    with pytest.raises(ValueError, match="divisible"):
        UNet(UNetParams(), context=BuildContext(image_size=30, channels=1, steps=5))
    with pytest.raises(ValueError, match="attention_levels"):
        UNetParams(attention_levels=[5])


class NaNAfter(torch.nn.Module):
    """A restorer whose output becomes NaN from its ``bad``-th call on."""

    def __init__(self, bad: int) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.calls, self.bad = 0, bad

    def forward(self, x_t, t):
        self.calls += 1
        out = x_t * self.scale
        return out * float("nan") if self.calls >= self.bad else out


def test_a_nan_loss_stops_training_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    from coldkit.errors import TrainingError
    from coldkit.runs.checkpoint import load_checkpoint

    blur = Blur(BlurParams(steps=4, kernel_size=5, sigma=1.0))
    images = torch.rand(32, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    settings = TrainSection(steps=20, batch_size=4, lr=1e-3, checkpoint_every=2, log_every=50, ema_decay=0)
    trainer = Trainer(NaNAfter(bad=5), blur, images, settings, 0, torch.device("cpu"),
                      tmp_path / "last.pt")
    with pytest.raises(TrainingError, match="at step 5") as caught:
        trainer.fit()
    assert "kept" in str(caught.value)
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 4  # written before the bad step


def test_losses_are_read_from_the_device_only_at_log_and_checkpoint_steps(tmp_path):
    trainer = make_trainer(tmp_path, steps=7, log_every=3, checkpoint_every=5)
    reports = []
    state = trainer.fit(reports.append)
    carried = [report.step for report in reports if report.loss is not None]
    assert carried == [3, 5, 6, 7]  # log steps, the checkpoint step and the last step
    assert len(state.losses) == 7 and all(math.isfinite(loss) for loss in state.losses)
    # The mean reported at step 3 is the mean of the first three per-step losses.
    assert reports[2].loss == pytest.approx(sum(state.losses[:3]) / 3)


def test_clip_gradients_matches_clip_grad_norm_and_skips_only_exact_no_ops():
    from coldkit.training.trainer import clip_gradients

    for scale in (1e-3, 10.0):  # below and above the limit
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))
        twin = copy.deepcopy(model)
        inputs = torch.randn(4, 8)
        for net in (model, twin):
            (scale * net(inputs).sum()).backward()
        clip_gradients(model, 1.0)
        torch.nn.utils.clip_grad_norm_(twin.parameters(), 1.0)
        for mine, reference in zip(model.parameters(), twin.parameters()):
            assert torch.equal(mine.grad, reference.grad)


def test_adam_is_fused_and_matches_the_per_parameter_loop(tmp_path: Path):
    """The fused kernel is a deliberate change of the float32 results by rounding only: the
    losses agree to 1e-6; a weight whose gradient is near Adam's eps moves by a fraction of one
    step's update (lr = 1e-3) more or less."""
    fused = make_trainer(tmp_path / "fused")
    assert fused.optimizer.param_groups[0]["fused"] is True
    looped = make_trainer(tmp_path / "looped")
    looped.optimizer = torch.optim.Adam(looped.restorer.parameters(), lr=1e-3, foreach=False)
    fused_losses, looped_losses = fused.fit().losses, looped.fit().losses
    assert fused_losses == pytest.approx(looped_losses, rel=1e-5, abs=1e-6)
    for a, b in zip(fused.restorer.parameters(), looped.restorer.parameters()):
        assert torch.allclose(a, b, rtol=0, atol=1e-4)


def test_a_checkpoint_of_the_unfused_optimizer_resumes_fused(tmp_path: Path):
    old = make_trainer(tmp_path, steps=2)
    old.optimizer = torch.optim.Adam(old.restorer.parameters(), lr=1e-3, foreach=False)
    old.fit()  # the checkpoint holds an optimizer state without "fused"
    resumed = make_trainer(tmp_path, steps=4)
    assert resumed.resume() and resumed.state.step == 2
    assert resumed.optimizer.param_groups[0]["fused"] is True
    state = resumed.fit()
    assert state.step == 4 and all(math.isfinite(loss) for loss in state.losses)
