"""The conformance kit (coldkit.testing) for restorers, samplers, datasets and whole plugin
distributions: the built-ins pass, and every check rejects a deliberately broken component with an
AssertionError that names the problem. (Degradations: tests/builtins/test_degradation_contract.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from coldkit import BuildContext, ImageSet
from coldkit.testing import (
    DEFAULT_RESTORER_CONTEXT,
    PluginReport,
    builtin_degradations,
    check_dataset,
    check_plugin,
    check_restorer,
    check_sampler,
)
from coldkit_plugins.blur import Blur, BlurParams
from coldkit_plugins.datasets import Synthetic, SyntheticParams
from coldkit_plugins.mask import Mask, MaskParams
from coldkit_plugins.samplers import direct, improved, momentum, naive, stochastic
from coldkit_plugins.unet import UNet, UNetParams
from tests.conftest import install_fake_distribution

TINY_UNET = {"width": 8, "multipliers": [1, 2], "attention_levels": [1]}


# ================================================================================= restorers
class Good(nn.Module):
    """A tiny time-conditioned restorer; the broken ones below each change one thing."""

    name: ClassVar[str] = "good"

    def __init__(self, context: BuildContext = DEFAULT_RESTORER_CONTEXT) -> None:
        super().__init__()
        self.steps = context.steps
        self.conv = nn.Conv2d(context.channels, context.channels, 3, padding=1)
        self.time = nn.Linear(1, context.channels)

    def level(self, t: torch.Tensor) -> torch.Tensor:
        return self.time((t.float() / self.steps).view(-1, 1)).view(-1, self.conv.out_channels, 1, 1)

    def forward(self, x, t):
        return x + self.conv(x) * self.level(t)


@pytest.mark.parametrize(
    "build",
    [
        # preset small: residual, zero-initialised head
        lambda context: UNet(UNetParams(), context=context),
        lambda context: UNet(
            UNetParams(preset="paper", **TINY_UNET, blocks_per_level=1), context=context
        ),
        lambda context: UNet(UNetParams(**TINY_UNET), context=context),
        lambda context: UNet(UNetParams(**TINY_UNET, standardize_input=True), context=context),
        Good,
    ],
    ids=["unet-small", "unet-paper-tiny", "unet-tiny", "unet-tiny-standardised", "good"],
)
def test_builtin_and_good_restorers_pass(build):
    passed = check_restorer(build)
    assert passed[-1] == "time conditioning" and "gradients reach every parameter" in passed
    # the U-Net names the layers it keeps in float32 under autocast; Good names none
    assert ("float32 layers are its own" in passed) == (build is not Good)


def test_restorer_with_a_zero_initialised_head_passes_although_it_starts_as_the_identity():
    unet = UNet(UNetParams(**TINY_UNET), context=BuildContext(image_size=16, channels=1, steps=4))
    x, t = torch.rand(2, 1, 16, 16), torch.tensor([1, 4])
    with torch.no_grad():
        assert torch.equal(unet(x, t), x)  # ignores t until trained: why the check perturbs
    before = {name: p.clone() for name, p in unet.state_dict().items()}
    check_restorer(unet, BuildContext(image_size=16, channels=1, steps=4))
    assert all(torch.equal(before[name], p) for name, p in unet.state_dict().items())  # a copy


def test_restorer_context_is_passed_to_the_factory():
    seen = []

    def factory(context):
        seen.append(context)
        return Good(context)

    context = BuildContext(image_size=8, channels=1, steps=3)
    check_restorer(factory, context)
    assert seen == [context]


class NotAModule:
    def __call__(self, x, t):
        return x


class WrongShape(Good):
    def forward(self, x, t):
        return F.avg_pool2d(super().forward(x, t), 2)


class WrongDtype(Good):
    def forward(self, x, t):
        return super().forward(x, t).double()


class IgnoresTime(Good):
    def forward(self, x, t):
        return x + self.conv(x) + 0 * sum(p.sum() for p in self.time.parameters())


class StrangeFloat32Layers(Good):
    def float32_layers(self):
        return [nn.Conv2d(1, 1, 3)]  # not one of its own


class NoFloat32Layers(Good):
    def float32_layers(self):
        return []


class Noisy(Good):
    def forward(self, x, t):
        return super().forward(x, t) + 0.01 * torch.randn_like(x)


class FirstLevelForAll(Good):
    def forward(self, x, t):
        return super().forward(x, t[:1].expand(len(t)))


class Unused(Good):
    def __init__(self, context=DEFAULT_RESTORER_CONTEXT):
        super().__init__(context)
        self.spare = nn.Linear(3, 3)


class InfiniteGradient(Good):
    def __init__(self, context=DEFAULT_RESTORER_CONTEXT):
        super().__init__(context)
        self.zero = nn.Parameter(torch.zeros(1))

    def forward(self, x, t):
        return super().forward(x, t) + torch.sqrt(self.zero)  # d sqrt(p) / dp at 0 is inf


class Frozen(Good):
    def __init__(self, context=DEFAULT_RESTORER_CONTEXT):
        super().__init__(context)
        self.requires_grad_(False)


class NaNOutput(Good):
    def forward(self, x, t):
        return super().forward(x, t) * torch.where(t == t.max(), float("nan"), 1.0).view(-1, 1, 1, 1)


@pytest.mark.parametrize(
    "broken, problem",
    [
        (lambda context: NotAModule(), "must be a torch.nn.Module"),
        (Frozen, "no trainable parameters"),
        (WrongShape, "output shape"),
        (WrongDtype, "came back as torch.float64"),
        (NaNOutput, "NaN or inf values"),
        (Noisy, "deterministic in eval mode"),
        (FirstLevelForAll, "must use its own t"),
        (Unused, "no gradient reaches 2 parameter\\(s\\): spare.weight, spare.bias"),
        (InfiniteGradient, "gradients of zero hold NaN or inf"),
        (IgnoresTime, "does not depend on t"),
        (StrangeFloat32Layers, "not the restorer's own submodules \\(Conv2d\\)"),
        (NoFloat32Layers, "float32_layers\\(\\) returned nothing"),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else None,
)
def test_broken_restorer_is_rejected_by_name(broken, problem):
    with pytest.raises(AssertionError, match=problem):
        check_restorer(broken)


def test_restorer_ignoring_t_is_rejected_even_after_perturbing_its_zero_layers():
    class ZeroHeadIgnoringTime(IgnoresTime):
        def __init__(self, context=DEFAULT_RESTORER_CONTEXT):
            super().__init__(context)
            nn.init.zeros_(self.conv.weight)
            nn.init.zeros_(self.conv.bias)

    with pytest.raises(AssertionError, match="even after giving its all-zero parameters"):
        check_restorer(ZeroHeadIgnoringTime)


# ================================================================================== samplers
SMALL = [Blur(BlurParams(steps=5, kernel_size=5, sigma=1.0)), Mask(MaskParams(steps=6))]


@pytest.mark.parametrize("sampler", [direct, naive, improved, stochastic, momentum])
def test_builtin_samplers_pass_on_every_builtin_degradation(sampler):
    passed = check_sampler(sampler)
    names = {d.name for d in builtin_degradations()}
    assert {"blur", "mask", "pixelate", "snow", "decolor", "noise"} <= names
    assert {f"x0 from an oracle restorer: {name}" for name in names} <= set(passed)
    assert "params reused at every step" in passed


def test_stochastic_sampler_is_checked_with_its_noise_off_and_fails_with_it_on():
    assert "called with noise=0.0" in check_sampler(stochastic, SMALL)
    check_sampler(stochastic, SMALL, kwargs={"noise": 0.0, "generator": torch.Generator()})
    with pytest.raises(AssertionError, match="differ from x0 by up to .*called with {'noise': 0.01}"):
        check_sampler(stochastic, SMALL, kwargs={"noise": 0.01})


def _redraws(restorer, degradation, x_t, t, params=None):
    params = degradation.sample_params(x_t)  # a fresh draw: wrong
    return improved(restorer, degradation, x_t, t, params)


def _drops_params(restorer, degradation, x_t, t, params=None):
    return improved(restorer, degradation, x_t, t, None)


def _copies_params_per_step(restorer, degradation, x_t, t, params=None):
    """Passes equal copies of the params: allowed (e.g. moved to another device)."""
    class Copying:
        def __getattr__(self, name):
            return getattr(degradation, name)

        def degrade(self, x0, t, p=None):
            return degradation.degrade(x0, t, {k: v.clone() for k, v in p.items()})

    return improved(restorer, Copying(), x_t, t, params)


def _shuffles_params(restorer, degradation, x_t, t, params=None):
    shuffled = {key: value.flip(0) for key, value in params.items()}
    return improved(restorer, degradation, x_t, t, shuffled)


def _starts_everyone_at_the_top(restorer, degradation, x_t, t, params=None):
    top = torch.full_like(t, int(t.max()))
    return improved(restorer, degradation, x_t, top, params)


def _stops_one_level_early(restorer, degradation, x_t, t, params=None):
    x = x_t
    for s in range(int(t.max()), 1, -1):
        level = torch.full_like(t, s)
        x0_hat = restorer(x, level)
        step = x - degradation.degrade(x0_hat, level, params) + degradation.degrade(x0_hat, level - 1, params)
        x = torch.where((t >= s).view(-1, 1, 1, 1), step, x)
    return x


def _in_place(restorer, degradation, x_t, t, params=None):
    restored = improved(restorer, degradation, x_t, t, params)
    x_t.copy_(restored)
    return x_t


def _float_levels(restorer, degradation, x_t, t, params=None):
    return direct(lambda x, level: restorer(x, level.float()), degradation, x_t, t, params)


def _half_batches(restorer, degradation, x_t, t, params=None):
    half = len(x_t) // 2
    first = restorer(x_t[:half], t[:half])
    return torch.cat([first, restorer(x_t[half:], t[half:])])


def test_sampler_passing_equal_copies_of_the_params_passes():
    check_sampler(_copies_params_per_step, SMALL)


@pytest.mark.parametrize(
    "broken, problem",
    [
        (_redraws, "called degradation.sample_params"),
        (_drops_params, "got params=None"),
        (_shuffles_params, "got other params than the sampler was given"),
        (_starts_everyone_at_the_top, "starting levels t = \\[.*0.*\\]: with an oracle restorer"),
        (_stops_one_level_early, "differ from x0 by up to"),
        (_in_place, "changed x_t in place"),
        (_float_levels, "t of dtype torch.float32"),
        (_half_batches, "needs the restorer called on the whole batch"),
        ("not callable", "a sampler must be a function"),
    ],
    ids=lambda value: getattr(value, "__name__", None),
)
def test_broken_sampler_is_rejected_by_name(broken, problem):
    with pytest.raises(AssertionError, match=problem):
        check_sampler(broken, SMALL)


# ================================================================================== datasets
class Fixed:
    """A dataset serving fixed tensors; each broken variant changes one thing."""

    name: ClassVar[str] = "fixed"
    description: ClassVar[str] = "fixed tensors for the kit's tests"

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None, val: int = 4):
        self.images, self.labels, self.val = images, labels, val

    def indices(self, split: str) -> slice:
        return {"test": slice(0, 4), "val": slice(4, 4 + self.val), "train": slice(4 + self.val, None)}[split]

    def load(self, split: str) -> ImageSet:
        index = self.indices(split)
        labels = None if self.labels is None else self.labels[index]
        return ImageSet(self.images[index], f"fixed, {split} split", labels)


def images(count: int = 20) -> torch.Tensor:
    return torch.rand(count, 1, 8, 8, generator=torch.Generator().manual_seed(0))


def test_builtin_synthetic_passes_with_and_without_a_validation_split():
    assert "splits disjoint" in check_dataset(Synthetic(SyntheticParams(count=64, size=16)))
    passed = check_dataset(Synthetic(SyntheticParams(count=64, size=16, val_fraction=0.2)))
    assert "labels aligned, integer" in passed


def test_good_fixed_dataset_passes_with_an_empty_val_split():
    assert check_dataset(Fixed(images(), torch.arange(20) % 3, val=0))[-1] == "splits disjoint"


class Overlapping(Fixed):
    def indices(self, split):
        return {"test": slice(0, 4), "val": slice(4, 8), "train": slice(6, None)}[split]


class BadSplit(Fixed):
    def load(self, split):
        loaded = super().load(split)
        return self.spoil(loaded) if split == "val" else loaded

    def spoil(self, loaded):
        return loaded


@pytest.mark.parametrize(
    "broken, problem",
    [
        (Overlapping(images()), "2 image\\(s\\) appear in both the train and the val split"),
        (Fixed(torch.cat([images(10), images(10)])), "appear in both the train and the val split"),
        (Fixed(images() * 255), "range over .*; values must lie in \\[0, 1\\]"),
        (Fixed((images() * 255).to(torch.uint8)), "torch.uint8; return floats in \\[0, 1\\]"),
        (Fixed(images()[:, 0]), "shape \\(12, 8, 8\\); images are \\(N, C, H, W\\)"),
        (Fixed(images(), torch.arange(19)), "labels have shape \\(11,\\) for 12 images"),
        (Fixed(images(), torch.rand(20)), "labels are torch.float32; class labels are integers"),
        (Fixed(images(), torch.arange(20) - 10), "labels include -2"),
        (Fixed(images(8), val=4), "the train split is empty"),
    ],
    ids=lambda value: None,
)
def test_broken_dataset_is_rejected_by_name(broken, problem):
    with pytest.raises(AssertionError, match=problem):
        check_dataset(broken)


def test_dataset_whose_splits_disagree_on_channels_or_return_the_wrong_type():
    class MixedChannels(BadSplit):
        def spoil(self, loaded):
            return ImageSet(loaded.images.expand(-1, 3, -1, -1), loaded.source)

    class NotAnImageSet(BadSplit):
        def spoil(self, loaded):
            return loaded.images

    with pytest.raises(AssertionError, match="different numbers of channels"):
        check_dataset(MixedChannels(images()))
    with pytest.raises(AssertionError, match="returned Tensor, not a coldkit.ImageSet"):
        check_dataset(NotAnImageSet(images()))


def test_known_duplicates_across_splits_can_be_allowed():
    check_dataset(Overlapping(images()), max_shared=2)


# =================================================================================== plugins
DIM = '''
from typing import ClassVar
from pydantic import BaseModel, ConfigDict
from coldkit import hookimpl


class DimParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = 4


class Dim:
    name: ClassVar[str] = "dim"
    description: ClassVar[str] = "darken linearly in t"
    Params = DimParams

    def __init__(self, params=None):
        self.params = params or DimParams()
        self.steps = self.params.steps

    def sample_params(self, x0, generator=None):
        return {}

    def degrade(self, x0, t, params=None):
        return x0 * (1 - t.view(-1, 1, 1, 1).to(x0.dtype) / (2 * self.steps))


@hookimpl
def register_degradations(register):
    register(Dim)
'''

#: A distribution's second plugin, appended to DIM: a restorer that ignores t.
TIMELESS = '''
import torch
from pydantic import BaseModel


class TimelessParams(BaseModel):
    width: int = 4


class Timeless(torch.nn.Module):
    name = "timeless"
    description = "ignores t"
    Params = TimelessParams

    def __init__(self, params, context):
        super().__init__()
        self.conv = torch.nn.Conv2d(context.channels, context.channels, 3, padding=1)

    def forward(self, x, t):
        return x + self.conv(x)


@hookimpl
def register_restorers(register):
    register(Timeless)
'''

#: A sampler that redraws the params, a dataset that needs a path, a prior.
MORE = '''
import torch
from pydantic import BaseModel, ConfigDict
from coldkit import ImageSet


def redraw(restorer, degradation, x_t, t, params=None):
    x = x_t
    for s in range(int(t.max()), 0, -1):
        level = torch.full_like(t, s)
        x0_hat = restorer(x, level)
        fresh = degradation.sample_params(x_t)
        step = x - degradation.degrade(x0_hat, level, fresh) + degradation.degrade(x0_hat, level - 1, fresh)
        x = torch.where((t >= s).view(-1, 1, 1, 1), step, x)
    return x


class FolderParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str


class Folder:
    name = "my-folder"
    description = "needs a path"
    Params = FolderParams

    def __init__(self, params):
        self.params = params

    def load(self, split):
        generator = torch.Generator().manual_seed(len(self.params.path))
        images = torch.rand(12, 1, 8, 8, generator=generator)
        part = {"test": images[:3], "val": images[3:3], "train": images[3:]}[split]
        return ImageSet(part, f"{self.params.path}, {split}")


def noisy(restorer, degradation, x_t, t, params=None, *, noise=0.05):
    x = x_t
    for s in range(int(t.max()), 0, -1):
        level = torch.full_like(t, s)
        x0_hat = restorer(x, level)
        step = x - degradation.degrade(x0_hat, level, params) + degradation.degrade(x0_hat, level - 1, params)
        x = torch.where((t >= s).view(-1, 1, 1, 1), step + noise * torch.randn_like(x), x)
    return x


@hookimpl
def register_samplers(register):
    register(redraw, name="redraw", description="redraws the params at every step")
    register(noisy, name="noisy", description="Algorithm 2 plus noise at every step")


@hookimpl
def register_datasets(register):
    register(Folder)
'''


def install(root: Path, dist: str, version: str, modules: dict[str, str], group: str = "coldkit"):
    """A fake installed distribution whose entry points are named after its modules."""
    install_fake_distribution(root, dist, version, {m: m for m in modules}, modules, group)


def test_check_plugin_checks_a_good_distribution(site: Path):
    install(site, "coldkit-dim", "1.0", {"kit_dim": DIM})
    report = check_plugin("coldkit_dim", check_speed=False)  # a name spelled as pip allows
    assert isinstance(report, PluginReport)
    assert (report.distribution, report.version) == ("coldkit-dim", "1.0")
    assert list(report.checked) == ["degradation dim"]
    assert "identity at t = 0" in report.checked["degradation dim"]
    assert "degradation dim" in str(report)


def test_check_plugin_names_the_broken_component(site: Path):
    install(site, "coldkit-timeless", "0.2", {"kit_timeless": DIM.replace('"dim"', '"dim2"') + TIMELESS})
    with pytest.raises(AssertionError, match="restorer 'timeless': the output does not depend on t"):
        check_plugin("coldkit-timeless", check_speed=False)


def test_check_plugin_checks_samplers_and_datasets_and_skips_what_needs_parameters(site: Path):
    install(site, "coldkit-more", "0.3", {"kit_more": DIM.replace('"dim"', '"dim3"') + MORE})
    with pytest.raises(AssertionError, match="sampler 'redraw' with degradation .*sample_params"):
        check_plugin("coldkit-more", check_speed=False)
    report = check_plugin("coldkit-more", check_speed=False, skip=["redraw"])
    assert report.skipped["sampler redraw"] == "skipped as asked"
    assert "no default for path" in report.skipped["dataset my-folder"]
    report = check_plugin(
        "coldkit-more", check_speed=False, skip=["sampler:redraw"],
        params={"dataset:my-folder": {"path": "here"}},
    )
    assert report.checked["dataset my-folder"][-1] == "splits disjoint"
    assert "called with noise=0.0" in report.checked["sampler noisy"]
    with pytest.raises(AssertionError, match="sampler 'noisy' .*called with {'noise': 0.05}"):
        check_plugin(
            "coldkit-more", check_speed=False, skip=["redraw", "my-folder"],
            sampler_kwargs={"noisy": {"noise": 0.05}},
        )


def test_check_plugin_refuses_a_missing_or_empty_distribution(site: Path):
    with pytest.raises(AssertionError, match="'coldkit-nowhere' is not installed"):
        check_plugin("coldkit-nowhere")
    install(site, "coldkit-elsewhere", "1.0", {"kit_elsewhere": DIM.replace('"dim"', '"dim4"')}, group="other")
    with pytest.raises(AssertionError, match="declares no entry point in group 'coldkit'"):
        check_plugin("coldkit-elsewhere")
    install(site, "coldkit-hookless", "1.0", {"kit_hookless": "VALUE = 1\n"})
    with pytest.raises(AssertionError, match="'coldkit-hookless' registers nothing"):
        check_plugin("coldkit-hookless")


def test_check_plugin_reports_import_failures_and_name_clashes(site: Path):
    install(site, "coldkit-broken", "1.0", {"kit_broken": "import a_module_that_does_not_exist\n"})
    with pytest.raises(AssertionError, match="plugin problems: .*kit_broken.*failed to import"):
        check_plugin("coldkit-broken")
    install(site, "coldkit-thief", "1.0", {"kit_thief": DIM.replace('"dim"', '"blur"')})
    with pytest.raises(AssertionError, match="degradation name 'blur' is already registered"):
        check_plugin("coldkit-thief")


def test_check_plugin_on_the_builtins():
    report = check_plugin(
        "coldkit",
        check_speed=False,
        skip=["mnist", "fashion-mnist", "cifar10"],  # downloads or big files: tested elsewhere
        params={"synthetic": {"count": 64, "size": 16}, "gmm": {"components": 2}},
    )
    expected = {
        *(f"degradation {name}" for name in ("blur", "mask", "pixelate", "snow", "decolor", "noise")),
        "restorer unet",
        *(f"sampler {name}" for name in ("direct", "naive", "improved", "stochastic", "momentum")),
        "dataset synthetic",
        "prior gmm",
        "prior pca-gmm",
    }
    assert expected <= set(report.checked)
    assert "no default for path" in report.skipped["dataset image-folder"]
    assert "noise degradation" in report.skipped["prior standard-normal"]  # needs the run's
