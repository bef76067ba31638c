import kornia
import pytest
import torch

from coldkit_plugins.blur import Blur, BlurParams, gaussian_kernel, step_sigmas


def sequential_blur(x: torch.Tensor, blur: Blur, t: int) -> torch.Tensor:
    """The paper's definition: t circular convolutions, one after another."""
    for sigma in blur.sigmas[:t]:
        kernel = gaussian_kernel(blur.params.kernel_size, float(sigma)).float()[None]
        x = kornia.filters.filter2d(x, kernel, border_type="circular")
    return x


@pytest.mark.parametrize(
    "params",
    [
        BlurParams(),  # the paper's MNIST setting
        BlurParams(steps=8, kernel_size=5, sigma=0.5, sigma_end=2.0, schedule="linear"),
        BlurParams(steps=8, kernel_size=7, sigma=0.5, sigma_end=3.0, schedule="exponential"),
    ],
)
def test_blur_equals_sequential_definition_for_mixed_t(params):
    blur = Blur(params)
    x = torch.rand(6, 2, 32, 24, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0, 1, 2, params.steps // 2, params.steps - 1, params.steps])
    composed = blur.degrade(x, t)
    for i, level in enumerate(t.tolist()):
        expected = sequential_blur(x[i : i + 1], blur, level)
        assert (composed[i : i + 1] - expected).abs().max() <= 1e-5, f"t = {level}"


@pytest.mark.parametrize("padding", ["circular", "reflect"])
def test_t_zero_is_identity(padding):
    blur = Blur(BlurParams(padding=padding))
    x = torch.rand(3, 1, 32, 32)
    assert torch.equal(blur.degrade(x, torch.zeros(3, dtype=torch.long)), x)


def test_reflect_blur_grows_with_t_and_keeps_mean():
    blur = Blur(BlurParams(steps=6, sigma=1.0, padding="reflect"))
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    distances = [
        float((blur.degrade(x, torch.full((2,), t)) - x).abs().mean()) for t in range(7)
    ]
    assert distances == sorted(distances) and distances[-1] > distances[1] > 0
    assert torch.allclose(blur.degrade(x, torch.full((2,), 6)).mean(), x.mean(), atol=0.02)


def test_schedules():
    assert torch.allclose(step_sigmas(BlurParams(steps=3, sigma=2.0)), torch.full((3,), 2.0).double())
    linear = step_sigmas(BlurParams(steps=3, sigma=1.0, sigma_end=3.0, schedule="linear"))
    assert torch.allclose(linear, torch.tensor([1.0, 2.0, 3.0]).double())
    exponential = step_sigmas(BlurParams(steps=3, sigma=1.0, sigma_end=4.0, schedule="exponential"))
    assert torch.allclose(exponential, torch.tensor([1.0, 2.0, 4.0]).double())


def test_invalid_parameters_are_rejected():
    with pytest.raises(ValueError, match="odd"):
        BlurParams(kernel_size=4)
    with pytest.raises(ValueError, match="sigma_end"):
        BlurParams(schedule="linear")


def test_bad_inputs_get_clear_messages():
    blur = Blur()
    with pytest.raises(ValueError, match="0..20"):
        blur.degrade(torch.rand(2, 1, 8, 8), torch.tensor([0, 21]))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        blur.degrade(torch.rand(1, 8, 8), torch.tensor([1]))
    with pytest.raises(ValueError, match="one level per sample"):
        blur.degrade(torch.rand(2, 1, 8, 8), torch.tensor([1]))


def test_blur_keeps_dtype_and_runs_in_double():
    blur = Blur(BlurParams(steps=3, kernel_size=3, sigma=1.0))
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    assert blur.degrade(x, torch.tensor([1, 3])).dtype == torch.float64
