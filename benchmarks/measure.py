"""The measurements. Each function returns plain numbers; :mod:`benchmarks.report` writes them."""

from __future__ import annotations

import contextlib
import copy
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.settings import Settings
from benchmarks.timing import interleaved_medians, synchronizer, timed
from coldkit.config import TrainSection
from coldkit.plugins import Registry
from coldkit.data.splits import DatasetReader
from coldkit.protocols import BuildContext
from coldkit.testing import make_test_images, measure_cost_ratio, serve_test_params
from coldkit.training.trainer import Trainer

PAPER_KERNEL_SIZE, PAPER_SIGMA = 11, 7.0


# ------------------------------------------------------------------------------ components
#: Parameters a degradation is measured with instead of its defaults: morph's cost does not
#: depend on its target, so it reads one that is always there.
MEASURED_PARAMS = {"morph": {"target": "synthetic"}}


def degradation(registry: Registry, name: str, **params):
    record = registry.get("degradation", name)
    context = BuildContext(data=DatasetReader(registry, 32))  # for those that read data (morph)
    built = record.build({**MEASURED_PARAMS.get(name, {}), **params}, context)
    return serve_test_params(built)  # paired's y comes from the data: test images stand in


def small_unet(registry: Registry, channels: int, size: int, steps: int, device: torch.device):
    record = registry.get("restorer", "unet")
    context = BuildContext(image_size=size, channels=channels, steps=steps)
    return record.build({"preset": "small"}, context).to(device)


def full_levels(level: int, images: Tensor) -> Tensor:
    return torch.full((images.shape[0],), level, dtype=torch.long, device=images.device)


# ----------------------------------------------------------------- D(x0, T) : D(x0, 1)
@dataclass
class CostRow:
    name: str
    steps: int
    batch: int
    size: int
    ratio: float | None
    error: str | None = None


def degradation_costs(registry: Registry, s: Settings, device: torch.device) -> list[CostRow]:
    """The ratio for every registered degradation with default params, plus blur at T = 200."""
    cases = [(name, {}) for name in registry.names("degradation")]
    cases.append(("blur", {"steps": 200}))
    rows = []
    for name, params in cases:
        for batch in s.cost_batches:
            for size in s.cost_sizes:
                rows.append(cost_row(registry, name, params, batch, size, s, device))
    return rows


def cost_row(
    registry: Registry, name: str, params: dict, batch: int, size: int, s: Settings,
    device: torch.device,
) -> CostRow:
    try:
        d = degradation(registry, name, **params)
        ratio = measure_cost_ratio(
            d, batch=batch, size=size, channels=s.channels, repeats=s.cost_repeats, device=device
        )
        return CostRow(name, d.steps, batch, size, ratio)
    except Exception as exc:  # a third-party plugin that fails at these sizes is reported, not fatal
        steps = params.get("steps", 0)
        return CostRow(name, steps, batch, size, None, f"{type(exc).__name__}: {exc}")


# ------------------------------------------------------- blur against the sequential reference
def paper_kernel(size: int = PAPER_KERNEL_SIZE, sigma: float = PAPER_SIGMA) -> Tensor:
    """The normalised 2-D Gaussian ``g(x) g(y)``, ``g(x) ∝ exp(-x² / 2σ²)``, shape (size, size)."""
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


def sequential_blur(x0: Tensor, t: int, kernel: Tensor) -> Tensor:
    """The paper's D(x0, t) as the official code applies it: ``t`` depthwise convolutions with
    circular padding, one after another."""
    channels, pad = x0.shape[1], kernel.shape[-1] // 2
    weight = kernel.to(x0).expand(channels, 1, *kernel.shape).contiguous()
    x = x0
    for _ in range(t):
        x = F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="circular"), weight, groups=channels)
    return x


@contextlib.contextmanager
def one_thread(flush_denormals: bool):
    """Diagnostic: one intra-op thread, denormal floats (slow on x86 CPUs) flushed to zero or not;
    ``set_flush_denormal`` reaches only the calling thread, hence one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.set_flush_denormal(flush_denormals)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
        torch.set_num_threads(threads)


@dataclass
class BlurRow:
    steps: int
    coldkit_ms: float
    reference_ms: float
    max_difference: float
    one_thread_ms: float  # diagnostic: coldkit on one thread,
    flushed_ms: float  # and with denormals flushed to zero

    @property
    def speedup(self) -> float:
        return self.reference_ms / self.coldkit_ms


def blur_against_reference(registry: Registry, s: Settings, device: torch.device) -> list[BlurRow]:
    x0 = make_test_images(s.reference_batch, s.reference_size, s.channels, device=device)
    kernel = paper_kernel()
    sync = synchronizer(device)
    rows = []
    with torch.no_grad():
        for steps in s.blur_levels:
            blur = degradation(registry, "blur", steps=steps, kernel_size=PAPER_KERNEL_SIZE,
                               sigma=PAPER_SIGMA, padding="circular")
            t = full_levels(steps, x0)
            ours = lambda: blur.degrade(x0, t, {})  # noqa: E731
            reference = lambda: sequential_blur(x0, steps, kernel)  # noqa: E731
            medians = interleaved_medians(
                {"coldkit": ours, "reference": reference}, sync, s.reference_repeats,
                s.min_seconds,
            )
            single, flushed = (one_thread_time(ours, flush, s, sync) for flush in (False, True))
            difference = float((ours().double() - reference().double()).abs().max())
            rows.append(BlurRow(steps, 1e3 * medians["coldkit"], 1e3 * medians["reference"],
                                difference, 1e3 * single, 1e3 * flushed))
    return rows


def one_thread_time(fn, flush_denormals: bool, s: Settings, sync) -> float:
    with one_thread(flush_denormals):
        return interleaved_medians({"fn": fn}, sync, s.reference_repeats, s.min_seconds)["fn"]


# ------------------------------------------------------------------- Algorithm 2 sampling
class TimedRestorer:
    """Wraps a restorer and adds up the seconds spent inside its calls."""

    def __init__(self, restorer, sync) -> None:
        self.restorer, self.sync, self.seconds = restorer, sync, 0.0

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        self.sync()
        start = time.perf_counter()
        out = self.restorer(x, t)
        self.sync()
        self.seconds += time.perf_counter() - start
        return out


@dataclass
class SamplingRow:
    steps: int
    seconds: float
    outside_share: float


def sampling(registry: Registry, s: Settings, device: torch.device) -> list[SamplingRow]:
    sampler = registry.get("sampler", "improved").component
    x0 = make_test_images(s.sampling_batch, s.sampling_size, s.channels, device=device)
    restorer = small_unet(registry, s.channels, s.sampling_size, max(s.sampling_levels), device)
    restorer.eval()
    sync = synchronizer(device)
    blurs = {steps: degradation(registry, "blur", steps=steps) for steps in s.sampling_levels}
    starts = {steps: blurs[steps].degrade(x0, full_levels(steps, x0), {}) for steps in blurs}

    def run(steps: int) -> tuple[float, float]:
        wrapped = TimedRestorer(restorer, sync)
        t = full_levels(steps, x0)
        seconds = timed(lambda: sampler(wrapped, blurs[steps], starts[steps], t, {}), sync)
        return seconds, 1.0 - wrapped.seconds / seconds

    with torch.no_grad():
        for steps in s.sampling_levels:  # warm-up: caches, allocator, kernels
            sampler(restorer, blurs[steps], starts[steps], full_levels(min(steps, 20), x0), {})
        runs: dict[int, list[tuple[float, float]]] = {steps: [] for steps in s.sampling_levels}
        for repeat in range(s.sampling_repeats):
            order = s.sampling_levels if repeat % 2 == 0 else tuple(reversed(s.sampling_levels))
            for steps in order:
                runs[steps].append(run(steps))
    return [
        SamplingRow(
            steps,
            statistics.median(r[0] for r in runs[steps]),
            statistics.median(r[1] for r in runs[steps]),
        )
        for steps in s.sampling_levels
    ]


# ------------------------------------------------------------------------ training step
@dataclass
class TrainingResult:
    batch: int
    size: int
    step_ms: float
    forward_ms: float
    backward_ms: float
    optimizer_ms: float
    step_flops: float
    matmul_flops_per_second: float
    peak_memory_mib: float
    memory_before_mib: float
    memory_kind: str
    # Median over the repeats of 1 − (forward + backward + optimizer) / step, each pair timed
    # back to back: a ratio within a pair, so the machine's speed swings between repeats cancel.
    outside_share: float

    @property
    def images_per_second(self) -> float:
        return self.batch / (self.step_ms / 1e3)


    @property
    def achieved_flops_per_second(self) -> float:
        return self.step_flops / (self.step_ms / 1e3)

    @property
    def utilisation(self) -> float:
        return self.achieved_flops_per_second / self.matmul_flops_per_second


def make_trainer(registry: Registry, s: Settings, device: torch.device, folder: Path,
                 **switches) -> Trainer:
    blur = degradation(registry, "blur")
    images = make_test_images(s.train_images, s.train_size, s.channels)
    restorer = small_unet(registry, s.channels, s.train_size, blur.steps, device)
    # Every switch off unless asked (steps=10**9 would make "auto" compile)
    settings = TrainSection(batch_size=s.train_batch, steps=10**9, **{**ALL_OFF, **switches})
    return Trainer(restorer, blur, images, settings, seed=0, device=device,
                   checkpoint_path=folder / "unused.pt")


def training_inputs(trainer: Trainer, batch: int) -> tuple[Tensor, Tensor, Tensor]:
    x0 = trainer.batches.images[:batch].to(trainer.device)  # InMemoryBatches
    t = torch.randint(1, trainer.degradation.steps + 1, (batch,)).to(trainer.device)
    return x0, t, trainer.degradation.degrade(x0, t, {})


def timed_parts(trainer: Trainer, x0: Tensor, t: Tensor, x_t: Tensor, sync) -> tuple[float, ...]:
    """Seconds of the restorer's forward (with the loss), backward and optimizer step."""
    trainer.optimizer.zero_grad(set_to_none=True)
    sync()
    start = time.perf_counter()
    loss = trainer.loss(trainer.restorer(x_t, t), x0)
    sync()
    forwarded = time.perf_counter()
    loss.backward()
    sync()
    backwarded = time.perf_counter()
    trainer.optimizer.step()
    sync()
    return forwarded - start, backwarded - forwarded, time.perf_counter() - backwarded


def step_flops(trainer: Trainer, x0: Tensor, t: Tensor, x_t: Tensor) -> float:
    trainer.optimizer.zero_grad(set_to_none=True)
    with FlopCounterMode(display=False) as counter:
        trainer.loss(trainer.restorer(x_t, t), x0).backward()
    trainer.optimizer.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def matmul_flops_per_second(
    s: Settings, device: torch.device, dtype: torch.dtype = torch.float32
) -> float:
    """FLOP/s of ``torch.mm`` of two ``s.matmul_size``-square matrices of ``dtype`` (median)."""
    n = s.matmul_size
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    seconds = interleaved_medians({"mm": lambda: torch.mm(a, b)}, synchronizer(device),
                                  s.matmul_repeats, s.min_seconds)["mm"]
    return 2 * n**3 / seconds


def peak_memory_mib(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "torch.cuda.max_memory_allocated"
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return (kib / 2**20 if sys.platform == "darwin" else kib / 2**10), "max RSS of the process"


def training_step(registry: Registry, s: Settings, device: torch.device) -> TrainingResult:
    sync = synchronizer(device)
    memory_before, _ = peak_memory_mib(device)
    with tempfile.TemporaryDirectory() as folder:
        trainer = make_trainer(registry, s, device, Path(folder))
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        x0, t, x_t = training_inputs(trainer, s.train_batch)
        for _ in range(2):  # warm-up
            trainer.train_step()
            timed_parts(trainer, x0, t, x_t, sync)
        steps, parts = [], []
        for _ in range(s.train_repeats):
            steps.append(timed(trainer.train_step, sync))
            parts.append(timed_parts(trainer, x0, t, x_t, sync))
        memory, memory_kind = peak_memory_mib(device)
        flops = step_flops(trainer, x0, t, x_t)
    forward, backward, optimizer = (statistics.median(p[i] for p in parts) for i in range(3))
    outside = statistics.median(1.0 - sum(p) / step for p, step in zip(parts, steps))
    return TrainingResult(
        s.train_batch, s.train_size, 1e3 * statistics.median(steps), 1e3 * forward,
        1e3 * backward, 1e3 * optimizer, flops, matmul_flops_per_second(s, device), memory,
        memory_before, memory_kind, outside,
    )


# ------------------------------------------------------------------------ speed switches
#: A switch "helps" where it takes at most this share of the time with it off.
HELPS_BELOW = 0.95
ALL_OFF = {"compile": False, "channels_last": False, "autocast": "off"}


@dataclass
class SwitchRow:
    name: str  # what is switched on, e.g. "autocast bf16"
    key: str  # the config line that turns it on
    on_by_default: bool  # whether "auto" turns it on on this device type
    train_off_ms: float | None = None
    train_on_ms: float | None = None
    first_step_s: float | None = None  # the first training step with it on (compiling, if any)
    sample_off_s: float | None = None
    sample_on_s: float | None = None
    first_sample_s: float | None = None
    sample_difference: float | None = None  # largest |on - off| of the sampled images
    error: str | None = None

    @property
    def train_ratio(self) -> float | None:
        return None if self.train_on_ms is None else self.train_on_ms / self.train_off_ms

    @property
    def sample_ratio(self) -> float | None:
        return None if self.sample_on_s is None else self.sample_on_s / self.sample_off_s

    @property
    def helps_training(self) -> bool:
        return self.train_ratio is not None and self.train_ratio <= HELPS_BELOW

    @property
    def helps_sampling(self) -> bool:
        return self.sample_ratio is not None and self.sample_ratio <= HELPS_BELOW


def switch_cases(s: Settings, device: torch.device) -> list[tuple[str, dict]]:
    cases = [("channels-last", {"channels_last": True}), ("autocast bf16", {"autocast": "bf16"})]
    if device.type == "cuda":
        cases.append(("autocast fp16", {"autocast": "fp16"}))
    if s.switch_compile:
        cases.append(("compile", {"compile": True}))
    return cases


def switches(registry: Registry, s: Settings, device: torch.device) -> list[SwitchRow]:
    """Each switch on against all off: a training step and Algorithm 2 at the lowest T."""
    from coldkit.runtime import acceleration, auto

    # "auto" for the README's main job (mnist_blur: 4,000 steps) on this device
    chosen = auto.defaults(device, steps=4000)
    rows = []
    for name, values in switch_cases(s, device):
        key, value = next(iter(values.items()))
        shown = str(value).lower() if isinstance(value, bool) else f'"{value}"'
        line = f"{key} = {shown}"
        row = SwitchRow(name, line, chosen[key] == value)
        resolved = acceleration.resolve(TrainSection(**{**ALL_OFF, **values}), device, "train")
        if resolved.notes:
            row.error = "; ".join(resolved.notes)
        else:
            try:
                switch_training(registry, s, device, values, row)
                switch_sampling(registry, s, device, resolved, row)
            except Exception as exc:  # reported on the page, not fatal
                row.error = f"{type(exc).__name__}: {str(exc)[:200]}"
        rows.append(row)
    return rows


def switch_training(registry: Registry, s: Settings, device: torch.device, values: dict,
                    row: SwitchRow) -> None:
    sync = synchronizer(device)
    with tempfile.TemporaryDirectory() as folder:
        trainers = {}
        for label, chosen in (("off", ALL_OFF), ("on", {**ALL_OFF, **values})):
            torch.manual_seed(0)
            trainers[label] = make_trainer(registry, s, device, Path(folder), **chosen)
        row.first_step_s = timed(trainers["on"].train_step, sync)
        for _ in range(2):  # warm-up
            trainers["off"].train_step()
            trainers["on"].train_step()
        times: dict[str, list[float]] = {"off": [], "on": []}
        for repeat in range(s.switch_repeats):
            for label in ("off", "on") if repeat % 2 == 0 else ("on", "off"):
                times[label].append(timed(trainers[label].train_step, sync))
    row.train_off_ms = 1e3 * statistics.median(times["off"])
    row.train_on_ms = 1e3 * statistics.median(times["on"])


def switch_sampling(registry: Registry, s: Settings, device: torch.device, switches,
                    row: SwitchRow) -> None:
    from coldkit.runtime import acceleration

    sampler = registry.get("sampler", "improved").component
    steps = min(s.sampling_levels)
    x0 = make_test_images(s.sampling_batch, s.sampling_size, s.channels, device=device)
    plain = small_unet(registry, s.channels, s.sampling_size, steps, device).eval()
    with torch.no_grad():  # untrained, the residual U-Net returns its input: perturb the weights
        generator = torch.Generator().manual_seed(0)
        for parameter in plain.parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            parameter.add_(0.02 * noise.to(parameter.device))
    switched = acceleration.prepare_model(copy.deepcopy(plain), switches).eval()
    blur = degradation(registry, "blur", steps=steps)
    t = full_levels(steps, x0)
    start = blur.degrade(x0, t, {})
    sync = synchronizer(device)
    models = {"off": plain, "on": switched}
    with torch.no_grad():
        row.first_sample_s = timed(lambda: sampler(switched, blur, start, t, {}), sync)
        outputs = {label: sampler(model, blur, start, t, {}) for label, model in models.items()}
        row.sample_difference = float((outputs["on"] - outputs["off"]).abs().max())
        times: dict[str, list[float]] = {"off": [], "on": []}
        for repeat in range(s.switch_repeats):
            for label in ("off", "on") if repeat % 2 == 0 else ("on", "off"):
                model = models[label]
                times[label].append(timed(lambda: sampler(model, blur, start, t, {}), sync))
    row.sample_off_s = statistics.median(times["off"])
    row.sample_on_s = statistics.median(times["on"])
