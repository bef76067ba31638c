"""The evaluation's sampled row with a sampler that draws noise is seeded by the run's seed."""

from __future__ import annotations

import torch

from coldkit.evaluation.metrics import evaluate
from coldkit.plugins import Registry


class Unchanged(torch.nn.Module):
    def forward(self, x, t):
        return x


def _sampled(seed: int) -> torch.Tensor:
    registry = Registry.discover()
    blur = registry.get("degradation", "blur").build({"steps": 3, "kernel_size": 5, "sigma": 1.0})
    stochastic = registry.get("sampler", "stochastic").build()
    direct = registry.get("sampler", "direct").build()
    images = torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    torch.seed()  # the global generator, re-seeded at random, must not matter
    evaluation = evaluate(Unchanged(), blur, stochastic, direct, images, torch.device("cpu"),
                          batch_size=4, seed=seed)
    return evaluation.rows["sampled"].images


def test_a_stochastic_sampled_row_is_the_same_for_a_seed_and_differs_between_seeds():
    first, again, other = _sampled(0), _sampled(0), _sampled(1)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
