"""TOML experiment files -> validated configuration.

The core validates its own sections (``train``, ``evaluate``, ...) with pydantic models that forbid
unknown keys; each plugin section (``dataset``, ``degradation``, ``restorer``) names its plugin
with ``name`` and every other key is validated by that plugin's own ``Params`` model.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from coldkit.errors import ConfigError, PluginError
from coldkit.runtime.files import write_text_atomic
from coldkit.path_noise import PathNoiseParams, noisy_path
from coldkit.plugins import Kind, PluginInfo, PluginRecord, Registry
from coldkit.params import dataset_references
from coldkit.protocols import BuildContext


#: Seeds torch accepts (64 bits); one below the top, as a run also seeds ``seed + 1``.
MIN_SEED, MAX_SEED = -(2**63), 2**63 - 2
#: The ranges of integer settings (docs/configuration.md): each is checked (a whole number, not
#: true/false nor 1e30) before anything is written, so no value overflows inside torch later.
MAX_COUNT = 10**9  # steps, images, cadences
MAX_BATCH = 65_536
MAX_IMAGE_SIZE = 16_384
MAX_JITTER = 10_000  # levels; a jitter past T is clamped to 1..T anyway
MAX_THREADS = 256


class Section(BaseModel):
    # No inf or NaN: lr = inf or max_minutes = nan would only fail (or never stop) much later.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class PluginSection(BaseModel):
    """A section choosing a plugin by ``name``; the other keys are the plugin's parameters."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    name: str

    def plugin_params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


# The speed switches, in [train] and in [sampling] (see coldkit.runtime.acceleration and
# docs/performance.md). "auto": on only where the benchmark measured a gain on that device type.
CompileSwitch = Annotated[
    bool | Literal["auto"],
    Field(
        description="torch.compile the restorer's forward: true, false or auto (falls back to "
        "eager, with a warning, where compiling fails)"
    ),
]
ChannelsLastSwitch = Annotated[
    bool | Literal["auto"],
    Field(description="channels-last memory format for the restorer's weights and inputs"),
]
AutocastSwitch = Annotated[
    Literal["auto", "off", "bf16", "fp16"],
    Field(
        description="mixed precision for the restorer's forward: off (float32), bf16 or fp16 "
        "(fp16 needs a GPU; training then uses a gradient scaler)"
    ),
]


class DatasetSection(PluginSection):
    image_size: int = Field(
        32, ge=4, le=MAX_IMAGE_SIZE, strict=True,
        description=f"images are resized to image_size x image_size (4 to {MAX_IMAGE_SIZE:,})",
    )
    max_memory_gb: float = Field(
        4.0,
        gt=0,
        description="a training split larger than this as float32 streams from disk "
        "(datasets that can stream: image-folder)",
    )
    workers: int | None = Field(
        None, ge=0, le=256, strict=True,
        description="DataLoader worker processes when streaming, up to 256 (unset: automatic)"
    )


class DegradationSection(PluginSection):
    """``[degradation]``: the degradation plugin by ``name``, its parameters, and the noise
    every degradation can have along its path (``[degradation.path_noise]``, coldkit.path_noise)."""

    path_noise: PathNoiseParams | None = Field(
        None, description="Gaussian noise σ_t added to D(x0, t) at every level (a noisy cold path)"
    )


class AugmentSection(Section):
    """``[train.augment]``: random changes to the clean training images before they are
    degraded (see coldkit.data.augment); all off by default."""

    shift: int = Field(
        0, ge=0, le=4096, strict=True,
        description="largest translation in whole pixels, up to 4096, circular (no resampling)"
    )
    rotate: float = Field(0.0, ge=0, le=180, description="largest rotation in degrees")
    scale: float = Field(
        0.0, ge=0, lt=1, description="largest relative zoom: 0.1 draws from 0.9x to 1.1x"
    )
    flip: bool = Field(False, description="mirror half the images left to right")


class TrainSection(Section):
    steps: int = Field(2000, ge=0, le=MAX_COUNT, strict=True, description="optimizer steps")
    max_minutes: float | None = Field(None, gt=0, description="wall-clock budget for training")
    batch_size: int = Field(64, ge=1, le=MAX_BATCH, strict=True)
    accumulate: int = Field(
        1, ge=1, le=4096, strict=True, description="micro-batches per optimizer step"
    )
    lr: float = Field(2e-4, gt=0)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0, le=MAX_COUNT, strict=True)
    objective: Literal["image", "soft"] = Field(
        "image",
        description="image: the loss between R(x_t, t) and x0; soft (Soft Score Matching): the "
        "loss between D(R(x_t, t), t) and D(x0, t), the estimate re-degraded (without path noise)",
    )
    loss: Literal["l1", "l2", "berhu"] = Field(
        "l1", description="l1 (the paper), l2, or berhu: l1 below berhu_threshold, l2 above"
    )
    berhu_threshold: float = Field(
        0.1, gt=0, description="error where the berhu loss turns from l1 to l2"
    )
    grad_clip: float = Field(1.0, ge=0, description="max gradient norm; 0 disables clipping")
    ema_decay: float = Field(0.995, ge=0.0, lt=1.0, description="0 disables the EMA")
    ema_every: int = Field(
        1, ge=1, le=MAX_COUNT, strict=True, description="update the EMA every N steps"
    )
    checkpoint_every: int = Field(500, ge=1, le=MAX_COUNT, strict=True)
    log_every: int = Field(50, ge=1, le=MAX_COUNT, strict=True)
    compile: CompileSwitch = "auto"
    channels_last: ChannelsLastSwitch = "auto"
    autocast: AutocastSwitch = "auto"
    augment: AugmentSection = Field(default_factory=AugmentSection)
    quantize_inputs: int | None = Field(
        None, ge=1, le=16, strict=True,
        description="round D(x0, t) to this many bits, 1 to 16 (8: what PNG/JPEG files hold; "
        "a number, not true), "
        "straight-through, so the model learns from what files contain",
    )
    quantize_share: float = Field(
        1.0, ge=0.0, le=1.0, description="share of samples quantised (drawn from the run's seed)"
    )
    level_jitter: int = Field(
        0, ge=0, le=MAX_JITTER, strict=True,
        description=f"degrade each sample up to this many levels (0 to {MAX_JITTER:,}) off the "
        "level the restorer is told (clamped to 1..T): a restorer that tolerates a level "
        "estimated one off",
    )
    level_jitter_share: float = Field(
        1.0, ge=0.0, le=1.0, description="share of samples whose level is jittered (seeded)"
    )


class SamplingSection(Section):
    """``[sampling]``: the speed switches for every restorer call outside training (evaluation,
    generation, ``coldkit restore``); the same keys as in ``[train]``."""

    compile: CompileSwitch = "auto"
    channels_last: ChannelsLastSwitch = "auto"
    autocast: AutocastSwitch = "auto"


class EvaluateSection(Section):
    split: Literal["train", "val", "test", "all"] = Field(
        "test", description="split scored; 'all' scores every image (e.g. of evaluate.dataset)"
    )
    num_images: int = Field(
        500, ge=1, le=MAX_COUNT, strict=True, description="held-out images scored (at most)"
    )
    batch_size: int = Field(100, ge=1, le=MAX_BATCH, strict=True)
    sampler: str = Field("improved", description="the sampler of the 'sampled' row")
    figure_rows: int = Field(8, ge=1, le=256, strict=True)
    quantize_inputs: int | None = Field(
        None, ge=1, le=16, strict=True,
        description="round D(x0, T) to this many bits, 1 to 16, before restoring (8: what "
        "files hold)",
    )
    fid_images: int = Field(
        200, ge=0,
        description="images FID and KID are computed on: the first of the scored images, and as "
        "many generated samples (0: no FID). The network costs about 0.29 s per image on one "
        "CPU thread, for the reference (cached) and each row",
    )
    inception_weights: str | None = Field(
        None,
        description="your own FID network file (pt_inception-2015-12-05: TorchScript, or a "
        "pytorch-fid state dict with torch-fidelity); default: the one coldkit[fid] installs",
    )
    dataset: DatasetSection | None = Field(
        None, description="score on another dataset than the training one"
    )


class PriorSection(PluginSection):
    """``[generate.prior]``: the prior plugin by ``name``; other keys are its parameters."""


class GenerateSection(Section):
    """``[generate]``: fit a prior on D(x0, T), generate from it, and judge what comes out."""

    prior: PriorSection = Field(
        default_factory=lambda: PriorSection(name="pca-gmm"),
        description="the prior over x_T ([generate.prior], see coldkit list-priors)",
    )
    num_samples: int = Field(
        1000, ge=1, strict=True,
        description="images generated (and judged); a count that cannot fit in memory is "
        "refused with the largest that does"
    )
    sampler: str = Field("improved", description="the sampler that runs from x_T to x_0")
    step_noise: float = Field(
        0.0, ge=0.0, description="noise std per step, for samplers that take it (stochastic)"
    )
    batch_size: int = Field(
        250, ge=1, le=MAX_BATCH, strict=True, description="images sampled at once"
    )
    seed: int | None = Field(
        None, ge=MIN_SEED, le=MAX_SEED, description="seed of the draws (default: the experiment's)"
    )
    grid_size: int = Field(
        100, ge=1, le=10_000, strict=True, description="samples shown in generated.png"
    )
    judge: bool = Field(
        True, description="judge samples with a classifier trained on the labelled training split"
    )
    classifier: str | None = Field(
        None, description="a saved coldkit classifier to judge with instead of training one"
    )
    blank_threshold: float = Field(
        0.03, ge=0.0, description="an image whose mean ink is below this counts as blank"
    )


class LogSection(Section):
    """``[log]``: optional extra logging of a run."""

    tensorboard: bool = Field(
        False,
        description="also write TensorBoard events into RUN/tensorboard/ "
        "(needs pip install 'coldkit[tensorboard]')",
    )




class ExperimentConfig(Section):
    name: str = Field(
        "experiment", description="the run's folder name under runs/ (a plain folder name)"
    )
    seed: int = Field(0, ge=MIN_SEED, le=MAX_SEED)
    device: str = Field("auto", description="auto, cpu, cuda, cuda:1, mps ...")
    threads: int | None = Field(
        None,
        ge=1,
        le=MAX_THREADS,
        strict=True,
        description=f"CPU threads of this run (torch.set_num_threads), 1 to {MAX_THREADS}; unset: "
        "torch's default. "
        "Give runs that share a machine their share of the cores",
    )
    dataset: DatasetSection
    degradation: DegradationSection
    restorer: PluginSection = PluginSection(name="unet")
    train: TrainSection = TrainSection()
    evaluate: EvaluateSection = EvaluateSection()
    generate: GenerateSection | None = Field(
        None, description="optional: generate from a prior after training (paper §5)"
    )
    log: LogSection = LogSection()
    sampling: SamplingSection = Field(
        default_factory=SamplingSection,
        description="speed switches for the restorer calls of evaluation, generation and restore",
    )
    disable_plugins: list[str] | None = Field(
        None,
        description="plugins whose registrations this experiment ignores: entry-point names, "
        "package:entry or package names (see coldkit plugins)",
    )


    @field_validator("name")
    @classmethod
    def _plain_folder_name(cls, name: str) -> str:
        # The name becomes runs/<name>: a separator, "..", "." or an absolute path would put the
        # run folder (and everything it writes) somewhere else.
        if (
            not name.strip() or name in (".", "..") or "/" in name or "\\" in name
            or "\0" in name or Path(name).is_absolute()
        ):
            raise ValueError(
                "must be a plain folder name (no '/', '\\', '.' or '..'); choose the folder "
                "with --out instead"
            )
        if len(name.encode("utf-8", "surrogatepass")) > 255:
            raise ValueError(
                f"is {len(name.encode('utf-8', 'surrogatepass'))} bytes long; a folder name may "
                "have at most 255: choose a shorter name, or the folder with --out"
            )
        return name


@dataclass(frozen=True)
class ResolvedPlugin:
    """A plugin section with its record and validated parameters."""

    record: PluginRecord
    params: BaseModel
    #: A degradation's path noise (``[degradation.path_noise]``), wrapped around what is built.
    path_noise: PathNoiseParams | None = None

    def build(self, context: BuildContext | None = None) -> Any:
        """The component, built from its validated parameters and the run's ``context`` (see
        :meth:`PluginRecord.build`); a degradation with its path noise, if it has one."""
        component = self.record.build(self.params, context)
        return component if self.path_noise is None else noisy_path(component, self.path_noise)


@dataclass(frozen=True)
class Experiment:
    """A validated configuration with every plugin looked up and its parameters validated."""

    config: ExperimentConfig
    dataset: ResolvedPlugin
    degradation: ResolvedPlugin
    restorer: ResolvedPlugin
    sampler: PluginRecord
    direct_sampler: PluginRecord
    evaluate_dataset: ResolvedPlugin | None
    prior: ResolvedPlugin | None = None
    generate_sampler: PluginRecord | None = None
    #: Plugins disabled while resolving (by COLDKIT_DISABLE_PLUGINS or ``disable_plugins``).
    disabled_plugins: tuple[PluginInfo, ...] = ()
    #: The registry the plugins were resolved in (after ``disable_plugins``): plugins that read
    #: another dataset through their build context look it up here too.
    registry: Registry | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved configuration (every default filled in), as plain data."""
        data = self.config.model_dump(mode="json", exclude_none=True)
        for key, resolved in (
            ("dataset", self.dataset),
            ("degradation", self.degradation),
            ("restorer", self.restorer),
        ):
            data[key] = _section_dict(data[key], resolved)
        if self.evaluate_dataset is not None:
            data["evaluate"]["dataset"] = _section_dict(
                data["evaluate"]["dataset"], self.evaluate_dataset
            )
        if self.prior is not None:
            data["generate"]["prior"] = _section_dict(data["generate"]["prior"], self.prior)
        return data


def _section_dict(section: dict[str, Any], resolved: ResolvedPlugin) -> dict[str, Any]:
    """The section's own keys (``name``, ``image_size`` ...) and the plugin's validated
    parameters, in place of what was written for the plugin (an old spelling a model folds into
    a new one is not written back)."""
    plugin_values = resolved.params.model_dump(mode="json", exclude_none=True)
    written = set(section) - set(PluginSection.model_fields)
    core = {key: value for key, value in section.items()
            if key not in written or _is_section_key(key)}
    return {**core, **plugin_values}


def _is_section_key(key: str) -> bool:
    """A key coldkit keeps for itself in a plugin section (``[dataset]``'s image_size,
    ``[degradation]``'s path_noise ...)."""
    return any(
        key in model.model_fields for model in (DatasetSection, DegradationSection, PriorSection)
    )


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, turning I/O and syntax problems into a :class:`ConfigError`."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(
            f"Config file {path} does not exist. Pass the path of a TOML experiment file, "
            "e.g. examples/mnist_blur.toml."
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            f"{path} is a folder, not a config file. Pass a TOML experiment file (or, to "
            "`coldkit run`, the folder of an earlier run)."
        ) from None
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {path} ({exc.strerror or exc}).") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(
            f"Config file {path} is not valid TOML (UTF-8 text): {reason}. Fix the syntax."
        ) from None
    except RecursionError:
        raise ConfigError(
            f"Config file {path} nests tables or arrays too deeply to read; a coldkit config "
            "is a few levels deep. Fix the file."
        ) from None


def write_toml(path: Path, data: dict[str, Any]) -> None:
    write_text_atomic(path, tomli_w.dumps(data))


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides; values are parsed as TOML, else taken as strings."""
    for override in overrides:
        key, separator, raw = override.partition("=")
        if not separator or not key.strip():
            raise ConfigError(
                f"Cannot read override {override!r}. Write it as section.key=value, "
                "e.g. --set train.steps=100."
            )
        try:
            value = tomllib.loads(f"value = {raw.strip()}")["value"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        target = data
        *parents, leaf = key.strip().split(".")
        for parent in parents:
            child = target.setdefault(parent, {})
            if not isinstance(child, dict):
                raise ConfigError(f"Override {override!r}: {parent!r} is not a section.")
            target = child
        target[leaf] = value
    return data


def format_validation_error(error: ValidationError, prefix: str = "") -> str:
    """One line per problem, naming the key in dotted form."""
    lines = []
    for problem in error.errors():
        location = ".".join(str(part) for part in problem["loc"])
        location = f"{prefix}{location}" if location else prefix.rstrip(".") or "(top level)"
        if problem["type"] == "extra_forbidden":
            lines.append(f"unknown key {location!r}")
        elif problem["type"] == "missing":
            lines.append(f"missing required key {location!r}")
        else:
            lines.append(f"{location}: {problem['msg']} (got {problem.get('input')!r})")
    return "; ".join(lines)


def _valid_keys(model: type[BaseModel]) -> str:
    return ", ".join(sorted(model.model_fields))


def resolve_plugin(
    registry: Registry, kind: Kind, section: PluginSection, where: str
) -> ResolvedPlugin:
    try:
        record = registry.get(kind, section.name)
    except PluginError as exc:
        raise ConfigError(f"{where}.name: {exc}") from None
    try:
        params = record.params_model.model_validate(section.plugin_params())
        _require_finite(params.model_dump(mode="python"), where)
    except ValidationError as exc:
        raise ConfigError(
            f"Invalid parameters for {kind} {section.name!r} in [{where}]: "
            f"{format_validation_error(exc, where + '.')}. Valid keys for {section.name!r}: "
            f"name, {_valid_keys(record.params_model)}."
        ) from None
    for location, reference in dataset_references(params, where):
        section = PluginSection.model_validate({**reference.params, "name": reference.name})
        resolve_plugin(registry, "dataset", section, location)
    return ResolvedPlugin(record, params)


def _require_finite(value: Any, where: str) -> None:
    """Refuse inf and NaN in a plugin's parameters (sigma = inf passes most ``gt=0`` checks)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where} = {value} is not a finite number; give a finite value.")
    if isinstance(value, dict):
        for key, item in value.items():
            _require_finite(item, f"{where}.{key}" if isinstance(key, str) else where)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _require_finite(item, where)


def resolve_sampler(registry: Registry, name: str, where: str) -> PluginRecord:
    """The sampler registered as ``name``, or a :class:`ConfigError` listing the valid names."""
    try:
        return registry.get("sampler", name)
    except PluginError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def build_experiment(data: dict[str, Any], registry: Registry) -> Experiment:
    """Validate raw config data and resolve every plugin it names."""
    config = _validated(data)
    if config.disable_plugins:
        try:
            registry = registry.without(config.disable_plugins, "disable_plugins in the config")
        except PluginError as exc:
            raise ConfigError(f"disable_plugins: {exc}") from None
    run_time = _run_time_plugins(config, registry)
    return Experiment(
        config=config,
        dataset=resolve_plugin(registry, "dataset", config.dataset, "dataset"),
        degradation=replace(
            resolve_plugin(registry, "degradation", config.degradation, "degradation"),
            path_noise=config.degradation.path_noise,
        ),
        restorer=resolve_plugin(registry, "restorer", config.restorer, "restorer"),
        **run_time,
        disabled_plugins=tuple(registry.disabled),
        registry=registry,
    )


def reconfigured(experiment: Experiment, data: dict[str, Any]) -> Experiment:
    """``experiment`` with its config replaced by ``data`` (validated), for a run already opened
    (:meth:`coldkit.api.Run.generate`): the model's plugins (dataset, degradation, restorer), as
    resolved, and the registry are the experiment's own; the samplers, the evaluation dataset
    and the prior, which a generation may change, are resolved from ``data``. The caller makes
    sure ``data`` leaves the model's sections as they are."""
    config = _validated(data)
    registry = experiment.registry if experiment.registry is not None else Registry.discover()
    return replace(experiment, config=config, **_run_time_plugins(config, registry))


def _validated(data: dict[str, Any]) -> ExperimentConfig:
    """Raw config data as an :class:`ExperimentConfig`, or a :class:`ConfigError` naming each
    problem."""
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            f"Invalid config: {format_validation_error(exc)}. Top-level keys: "
            f"{_valid_keys(ExperimentConfig)}; see docs/configuration.md for every section."
        ) from None


def _run_time_plugins(config: ExperimentConfig, registry: Registry) -> dict[str, Any]:
    """The plugins of the sections a run's use may change (the samplers, the evaluation
    dataset, the prior), as :class:`Experiment` fields."""
    sampler = resolve_sampler(registry, config.evaluate.sampler, "evaluate.sampler")
    direct_sampler = resolve_sampler(registry, "direct", "evaluate.sampler")
    evaluate_dataset = None
    if config.evaluate.dataset is not None:
        evaluate_dataset = resolve_plugin(
            registry, "dataset", config.evaluate.dataset, "evaluate.dataset"
        )
    prior, generate_sampler = None, None
    if config.generate is not None:
        prior = resolve_plugin(registry, "prior", config.generate.prior, "generate.prior")
        generate_sampler = resolve_sampler(registry, config.generate.sampler, "generate.sampler")
    return {
        "sampler": sampler, "direct_sampler": direct_sampler,
        "evaluate_dataset": evaluate_dataset, "prior": prior,
        "generate_sampler": generate_sampler,
    }


def load_experiment(path: Path, registry: Registry, overrides: list[str] = ()) -> Experiment:
    """Read a TOML experiment file, apply ``--set`` overrides, validate and resolve plugins."""
    data = apply_overrides(read_toml(path), list(overrides))
    return build_experiment(data, registry)
