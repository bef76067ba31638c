"""What each built-in degradation computes, checked against slow step-by-step references."""

from __future__ import annotations

import math

import kornia
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from coldkit.testing import make_test_images
from coldkit_plugins.decolor import Decolor, DecolorParams
from coldkit_plugins.mask import Mask, MaskParams
from coldkit_plugins.noise import Noise, NoiseParams, alphas_cumprod
from coldkit_plugins.pixelate import Pixelate, PixelateParams
from coldkit_plugins.snow import Snow, SnowParams, motion_kernels


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def levels(value: int, batch: int) -> torch.Tensor:
    return torch.full((batch,), value, dtype=torch.long)


# ------------------------------------------------------------------------------------- mask
def mask_by_steps(params: MaskParams, centre: tuple[float, float], size: int, t: int) -> torch.Tensor:
    """The paper's recipe, one step at a time: multiply the per-step masks 1 - G/max G."""
    ys = torch.arange(size, dtype=torch.float64).view(-1, 1) - centre[0]
    xs = torch.arange(size, dtype=torch.float64).view(1, -1) - centre[1]
    mask = torch.ones(size, size, dtype=torch.float64)
    for step in range(1, t + 1):
        sigma = params.sigma_start + params.sigma_increment * (step - 1)
        bump = torch.exp(-(ys**2 + xs**2) / (2 * sigma**2))
        mask = mask * (1 - bump / bump.max())
    return mask


@pytest.mark.parametrize("centre", ["fixed", "random"])
def test_mask_table_equals_the_product_of_per_step_masks(centre):
    params = MaskParams(steps=12, sigma_start=1.5, sigma_increment=0.3, centre=centre, fill=0.2)
    mask = Mask(params)
    x0 = make_test_images(count=5, size=16, seed=2)
    drawn = mask.sample_params(x0, seeded(0))
    t = torch.tensor([0, 3, 12, 7, 1])
    out = mask.degrade(x0, t, drawn)
    for i in range(5):
        c = (7.5, 7.5) if centre == "fixed" else tuple(float(v) for v in drawn["centre"][i])
        m = mask_by_steps(params, c, 16, int(t[i])).float()
        expected = x0[i] * m + 0.2 * (1 - m)
        assert torch.allclose(out[i], expected, atol=1e-6)


def test_mask_random_centres_are_reproducible_and_reused():
    mask = Mask(MaskParams(steps=10))
    x0 = make_test_images(count=8, size=16)
    a, b = mask.sample_params(x0, seeded(7)), mask.sample_params(x0, seeded(7))
    assert torch.equal(a["centre"], b["centre"])
    assert not torch.equal(a["centre"], mask.sample_params(x0, seeded(8))["centre"])
    assert a["centre"].shape == (8, 2) and int(a["centre"].min()) >= 0 and int(a["centre"].max()) < 16
    # The masked pixel is each sample's own centre, at every level.
    out = mask.degrade(x0, levels(4, 8), a)
    for i, (row, col) in enumerate(a["centre"].tolist()):
        assert torch.allclose(out[i, :, row, col], torch.full((3,), 0.5))


def test_mask_goes_to_the_fill_value_and_grows():
    mask = Mask(MaskParams(steps=50, centre="fixed", fill=0.0))
    x0 = torch.ones(1, 1, 32, 32)
    masked_share = [
        float((mask.degrade(x0, levels(t, 1)) < 0.5).float().mean()) for t in (0, 10, 25, 50)
    ]
    assert masked_share[0] == 0 and masked_share == sorted(masked_share) and masked_share[-1] > 0.2


def test_mask_with_random_centres_needs_params():
    mask = Mask()
    with pytest.raises(ValueError, match="sample_params"):
        mask.degrade(make_test_images(count=2), levels(3, 2))


# --------------------------------------------------------------------------------- pixelate
def test_pixelate_factor_two_levels():
    pixelate = Pixelate(PixelateParams())
    assert pixelate.steps == 3 and pixelate.level_sizes(32, 32) == [(16, 16), (8, 8), (4, 4)]
    x0 = make_test_images(count=2, size=32)
    out = pixelate.degrade(x0, torch.tensor([3, 2]))
    # Area with an integer factor: the sequential steps equal one direct area downsampling.
    direct = F.interpolate(F.interpolate(x0, size=4, mode="area"), size=32, mode="nearest")
    assert torch.allclose(out[0], direct[0], atol=1e-6)
    assert out[1].unfold(1, 4, 4).unfold(2, 4, 4).std(dim=(-1, -2)).max() < 1e-6  # 4x4 blocks


@pytest.mark.parametrize("mode", ["area", "bicubic"])
def test_pixelate_matches_the_official_step_by_step_recipe(mode):
    pixelate = Pixelate(PixelateParams(sizes=[12, 6, 3], mode=mode))
    assert pixelate.steps == 3
    x0 = make_test_images(count=4, size=16, seed=4)
    t = torch.tensor([1, 3, 0, 2])
    out = pixelate.degrade(x0, t)
    for i in range(4):
        x = x0[i : i + 1]
        for size in [12, 6, 3][: int(t[i])]:
            small = F.interpolate(x, size=size, mode=mode) if mode == "area" else F.interpolate(
                x, size=size, mode=mode, align_corners=False
            )
            x = F.interpolate(small, size=16, mode="nearest-exact")
        assert torch.allclose(out[i : i + 1], x, atol=1e-6)


def test_pixelate_rejects_bad_sizes():
    with pytest.raises(ValidationError, match="strictly decreasing"):
        PixelateParams(sizes=[8, 8])
    with pytest.raises(ValidationError, match="one size per step"):
        PixelateParams(sizes=[8, 4], steps=3)
    with pytest.raises(ValueError, match="below one pixel"):
        Pixelate(PixelateParams(steps=6)).degrade(make_test_images(count=1, size=16), levels(1, 1))


# ------------------------------------------------------------------------------------- snow
def test_snow_is_reproducible_from_a_seed():
    snow = Snow(SnowParams(steps=10))
    x0 = make_test_images(count=4, size=16)
    t = torch.tensor([10, 5, 1, 7])
    first = snow.degrade(x0, t, snow.sample_params(x0, seeded(11)))
    again = snow.degrade(x0, t, snow.sample_params(x0, seeded(11)))
    other = snow.degrade(x0, t, snow.sample_params(x0, seeded(12)))
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


@pytest.mark.parametrize("channels", [1, 3])
def test_snow_identity_at_zero_and_whiter_with_t(channels):
    snow = Snow(SnowParams(steps=8))
    x0 = make_test_images(count=6, size=16, channels=channels)
    drawn = snow.sample_params(x0, seeded(0))
    assert drawn["layer"].shape == (6, 1, 16, 16) and drawn["angle"].shape == (6,)
    assert torch.equal(snow.degrade(x0, levels(0, 6), drawn), x0)
    means = [float(snow.degrade(x0, levels(t, 6), drawn).mean()) for t in range(9)]
    assert means == sorted(means) and means[-1] > means[0] + 0.05
    out = snow.degrade(x0, levels(8, 6), drawn)
    assert out.shape == x0.shape and 0 <= float(out.min()) and float(out.max()) <= 1


def test_snow_matches_a_per_sample_reference():
    """Threshold, motion blur, brightening and compositing, written out for one sample."""
    params = SnowParams(steps=5, blur_size=5)
    snow = Snow(params)
    x0 = make_test_images(count=3, size=16, seed=6)
    drawn = snow.sample_params(x0, seeded(3))
    t = torch.tensor([2, 5, 4])
    out = snow.degrade(x0, t, drawn)
    for i in range(3):
        step = int(t[i]) - 1
        fraction = step / (params.steps - 1)
        lerp = lambda a, b: a + (b - a) * fraction  # noqa: E731
        layer = drawn["layer"][i : i + 1]
        layer = torch.where(layer < lerp(params.threshold_start, params.threshold_end), 0.0, layer)
        layer = layer.clamp(0, 1)
        sigma = torch.tensor([lerp(params.blur_sigma_start, params.blur_sigma_end)])
        kernel = motion_kernels(5, sigma, drawn["angle"][i : i + 1])
        layer = F.conv2d(layer, kernel.unsqueeze(1), padding=2)
        grey = kornia.color.rgb_to_grayscale(x0[i : i + 1])
        share = lerp(params.brightness_start, params.brightness_end)
        scaled = share * x0[i : i + 1] + (1 - share) * torch.maximum(x0[i : i + 1], 1.5 * grey + 0.5)
        expected = (scaled + layer + layer.flip(-2, -1)).clamp(0, 1)
        assert torch.allclose(out[i : i + 1], expected, atol=1e-5)


def test_motion_kernels_are_official_lines_at_0_and_90_degrees():
    sigma = torch.tensor([1.0, 1.0, 2.0])
    kernels = motion_kernels(5, sigma, torch.tensor([0.0, 90.0, 30.0]))
    gaussian = kornia.filters.get_gaussian_kernel1d(5, 1.0)[0]
    assert torch.allclose(kernels[0, 2], gaussian, atol=1e-6) and kernels[0].sum() == pytest.approx(1)
    assert torch.allclose(kernels[1, :, 2], gaussian, atol=1e-6)
    assert kernels[2].sum() == pytest.approx(1) and float(kernels[2].min()) >= 0


# ---------------------------------------------------------------------------------- decolor
def test_decolor_is_linear_in_t_and_grey_at_T():
    decolor = Decolor(DecolorParams(steps=4))
    x0 = make_test_images(count=2)
    grey = kornia.color.rgb_to_grayscale(x0).expand_as(x0)
    assert torch.allclose(decolor.degrade(x0, levels(4, 2)), grey, atol=1e-6)
    half = decolor.degrade(x0, levels(2, 2))
    assert torch.allclose(half, (x0 + grey) / 2, atol=1e-6)
    mean = Decolor(DecolorParams(steps=4, grey="mean")).degrade(x0, levels(4, 2))
    assert torch.allclose(mean, x0.mean(1, keepdim=True).expand_as(x0), atol=1e-6)


def test_decolor_is_the_identity_on_grey_images():
    x0 = make_test_images(count=3, channels=1)
    assert torch.equal(Decolor().degrade(x0, levels(50, 3)), x0)


# ------------------------------------------------------------------------------------ noise
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_noise_schedule(schedule):
    abar = alphas_cumprod(NoiseParams(steps=100, schedule=schedule))
    assert abar.shape == (101,) and abar[0] == 1
    assert bool((abar[1:] < abar[:-1]).all()) and float(abar[-1]) < 1e-3


def test_noise_linear_schedule_matches_ddpm_at_1000_steps():
    abar = alphas_cumprod(NoiseParams(steps=1000))
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    assert torch.allclose(abar[1:], torch.cumprod(1 - betas, 0))


@pytest.mark.parametrize("symmetric", [False, True])
def test_noise_formula_uses_the_drawn_eps(symmetric):
    noise = Noise(NoiseParams(steps=10, symmetric=symmetric))
    x0 = make_test_images(count=3)
    drawn = noise.sample_params(x0, seeded(1))
    assert torch.equal(drawn["noise"], noise.sample_params(x0, seeded(1))["noise"])
    out = noise.degrade(x0, levels(6, 3), drawn)
    a = float(noise.alphas_cumprod[6])
    signal = 2 * x0 - 1 if symmetric else x0
    expected = math.sqrt(a) * signal + math.sqrt(1 - a) * drawn["noise"]
    expected = (expected + 1) / 2 if symmetric else expected
    assert torch.allclose(out, expected, atol=1e-6)
