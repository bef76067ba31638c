"""Fault injection at the limits: a mixed image folder gets one channel count for every split; a T
that cannot fit is refused up front with the largest that fits; generation streams the prior."""

from __future__ import annotations

import torch
from PIL import Image

from tests.faults.conftest import config_file, invoke, refused, succeeded


def _mixed_folder(folder):
    folder.mkdir()
    for index in range(20):
        Image.new("L", (16, 16), 10 * index).save(folder / f"grey{index:02d}.png")
    Image.new("RGB", (16, 16), (200, 10, 10)).save(folder / "colour.png")
    return folder


def test_image_folder_decides_channels_once_for_every_split(tmp_path):
    from coldkit.protocols import BuildContext
    from coldkit_plugins.datasets import ImageFolder, ImageFolderParams

    folder = _mixed_folder(tmp_path / "mixed")
    params = ImageFolderParams(path=str(folder), val_fraction=0.1, test_fraction=0.1)
    for split in ("train", "val", "test"):
        assert ImageFolder(params).load(split).images.shape[1] == 3, split
        sized = ImageFolder(params, context=BuildContext(image_size=16))  # learns the size once
        assert sized.stream(split).channels == 3, split


def test_a_run_on_a_mixed_folder_trains_and_evaluates(tmp_path):
    folder = _mixed_folder(tmp_path / "mixed")
    config = config_file(
        tmp_path, dataset={"name": "image-folder", "path": str(folder), "image_size": 16,
                           "val_fraction": 0.1, "test_fraction": 0.2},
    )
    data = config.read_text().replace('count = 96\nsize = 16\n', "")
    config.write_text(data)
    succeeded(invoke("run", config, "--out", tmp_path / "run", "--set", "train.steps=2"))


def test_a_t_too_large_for_memory_is_refused_at_once_with_the_largest_that_fits(tmp_path):
    result = invoke("run", config_file(tmp_path), "--out", tmp_path / "run",
                    "--set", "degradation.steps=1000000000000")
    refused(result, "degradation.steps", "T up to about", "Nothing was written")
    assert not (tmp_path / "run").exists()


def test_a_huge_generate_n_is_refused_with_the_largest_count_that_fits(finished_run, tmp_path):
    result = invoke("generate", finished_run, "-n", 10**13, "--no-judge", "--out",
                    tmp_path / "out")
    refused(result, "Generate at most about", "-n")
    assert not (tmp_path / "out" / "samples.pt").exists()


def test_generation_draws_the_prior_in_bounded_chunks(monkeypatch):
    from coldkit.generation import sampling

    asked = []

    class CountingPrior:
        def sample(self, count, generator):
            asked.append(count)
            return torch.rand(count, 1, 4, 4, generator=generator)

    class Identity:
        steps = 2

        def sample_params(self, x, generator):
            return {}

    def sampler(restorer, degradation, x_t, t, params=None):
        return x_t

    monkeypatch.setattr(sampling, "PRIOR_CHUNK", 16)
    samples = sampling.generate_samples(
        torch.nn.Identity(), Identity(), CountingPrior(), sampler, 100, seed=3, batch_size=7
    )
    assert samples.shape == (100, 1, 4, 4) and max(asked) <= 16 and sum(asked) == 100
    again = sampling.generate_samples(
        torch.nn.Identity(), Identity(), CountingPrior(), sampler, 100, seed=3, batch_size=50
    )
    assert torch.equal(samples, again)  # independent of the batch size
