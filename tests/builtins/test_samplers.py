import pytest
import torch

from coldkit_plugins.blur import Blur, BlurParams
from coldkit_plugins.samplers import direct, improved, naive


class Oracle(torch.nn.Module):
    """A perfect restorer: returns the true x0 whatever it is given."""

    def __init__(self, x0: torch.Tensor) -> None:
        super().__init__()
        self.x0 = x0
        self.calls: list[int] = []

    def forward(self, x_t, t):
        self.calls.append(int(t.max()))
        return self.x0


@pytest.mark.parametrize("sampler", [naive, improved, direct])
def test_oracle_restorer_gives_back_x0(sampler):
    blur = Blur(BlurParams(steps=6, kernel_size=5, sigma=1.5))
    x0 = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    t = torch.full((4,), 6)
    oracle = Oracle(x0)
    restored = sampler(oracle, blur, blur.degrade(x0, t), t)
    assert torch.allclose(restored, x0, atol=1e-5)
    expected_calls = [6] if sampler is direct else [6, 5, 4, 3, 2, 1]
    assert oracle.calls == expected_calls


def test_samplers_handle_mixed_starting_levels():
    blur = Blur(BlurParams(steps=5, kernel_size=5, sigma=1.0))
    x0 = torch.rand(3, 1, 16, 16)
    t = torch.tensor([0, 2, 5])
    restored = improved(Oracle(x0), blur, blur.degrade(x0, t), t)
    assert torch.allclose(restored, x0, atol=1e-5)


def test_improved_is_not_naive_for_imperfect_restorer():
    """Algorithm 2 differs from Algorithm 1 once R is not exact (guards a mixed-up formula)."""
    blur = Blur(BlurParams(steps=4, kernel_size=5, sigma=1.0))
    x0 = torch.rand(2, 1, 16, 16)
    t = torch.full((2,), 4)

    def biased(x, level):
        return x0 + 0.1

    x_t = blur.degrade(x0, t)
    assert not torch.allclose(improved(biased, blur, x_t, t), naive(biased, blur, x_t, t))
