"""Writes the measurements as ``docs/performance.md``."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.measure import HELPS_BELOW, BlurRow, CostRow, SamplingRow, SwitchRow, TrainingResult
from benchmarks.settings import Settings

SECTIONS = (
    "## Machine",
    "## Goals",
    "## D(x0, T) : D(x0, 1) for every degradation",
    "## Blur against the sequential reference",
    "## Algorithm 2 sampling",
    "## Training step",
    "## Speed switches",
)


@dataclass
class Goal:
    what: str
    value: float
    limit: float
    at_most: bool  # True: value <= limit passes; False: value >= limit passes
    unit: str = ""

    @property
    def passed(self) -> bool:
        return self.value <= self.limit if self.at_most else self.value >= self.limit

    def row(self) -> str:
        sign = "≤" if self.at_most else "≥"
        verdict = "**PASS**" if self.passed else "**MISS**"
        return (f"| {self.what} | {self.value:.3g}{self.unit} | {sign} {self.limit:g}{self.unit} "
                f"| {verdict} |")


def goals(s: Settings, costs: list[CostRow], blur: list[BlurRow], sampling: list[SamplingRow],
          training: TrainingResult) -> list[Goal]:
    size, batch = s.cost_sizes[0], s.cost_batches[0]
    blur_cost = next(r for r in costs if r.name == "blur" and r.steps == 200
                     and r.batch == batch and r.size == size)
    at_50 = next(r for r in blur if r.steps == 50)
    times = {r.steps: r.seconds for r in sampling}
    return [
        Goal(f"blur D(x0, 200) : D(x0, 1) (batch {batch}, {size}×{size})", blur_cost.ratio,
             1.3, True),
        Goal(f"blur speed-up over the sequential reference at T = 50 (batch {s.reference_batch}, "
             f"{s.reference_size}×{s.reference_size})", at_50.speedup, 50, False, "×"),
        Goal(f"Algorithm 2 time T = 200 : T = 20 (batch {s.sampling_batch}, "
             f"{s.sampling_size}×{s.sampling_size})", times[200] / times[20], 10.5, True),
        Goal(f"share of a training step outside the restorer (batch {training.batch}, "
             f"{training.size}×{training.size})", 100 * training.outside_share, 3, True, " %"),
    ]


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    align = ["---"] + ["---:"] * (len(header) - 1)
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"] + [
        "| " + " | ".join(row) + " |" for row in rows
    ]


def machine_section(machine: dict[str, str], quick: bool) -> list[str]:
    run = "`python -m benchmarks.run --quick`" if quick else "`python -m benchmarks.run`"
    return [SECTIONS[0], "", f"Written by {run}; rerun it to measure your machine.", ""] + table(
        ["", "value"], [[key, value] for key, value in machine.items()]
    )


def goals_section(items: list[Goal]) -> list[str]:
    return [SECTIONS[1], ""] + table(
        ["goal", "measured", "target", "verdict"], []
    )[:2] + [goal.row() for goal in items]


def cost_section(s: Settings, rows: list[CostRow]) -> list[str]:
    lines = [
        SECTIONS[2], "",
        f"Every registered degradation with its default parameters (blur also at T = 200), "
        f"{s.channels}-channel test images from `coldkit.testing.make_test_images`. Measured with "
        f"`coldkit.testing.measure_cost_ratio`: D(x0, T) and D(x0, 1) timed in turn (the order "
        f"alternating), each timing repeating the call until it lasts 2 ms, params drawn once "
        f"outside the timing; the median of {s.cost_repeats} ratios. Near 1 means the cost does "
        f"not grow with t.", "",
    ]
    body = [
        [r.name, str(r.steps), str(r.batch), f"{r.size}×{r.size}",
         f"{r.ratio:.2f}" if r.ratio is not None else f"error: {r.error}"]
        for r in rows
    ]
    return lines + table(["degradation", "T", "batch", "size", "D(x0, T) : D(x0, 1)"], body)


def blur_section(s: Settings, rows: list[BlurRow]) -> list[str]:
    lines = [
        SECTIONS[3], "",
        f"D(x0, T) for a batch of {s.reference_batch} {s.channels}-channel "
        f"{s.reference_size}×{s.reference_size} images: coldkit's `blur` (one FFT pair with the "
        f"precomputed product of the per-step transfer functions) against the paper's definition "
        f"as the official code applies it, written in `benchmarks/measure.py`: T depthwise 11×11 "
        f"Gaussian convolutions (σ = 7) one after another, each `F.pad(mode=\"circular\")` then "
        f"`F.conv2d(groups=C)`. Median of {s.reference_repeats} interleaved timings after a "
        f"warm-up, each repeating the call to last about {1e3 * s.min_seconds:g} ms; the "
        f"difference is the largest absolute difference between the two float32 outputs (images "
        f"in [0, 1]). The last two columns are a diagnostic, not the goal: coldkit's blur again on one "
        f"thread, as is and with `torch.set_flush_denormal(True)` (which reaches only the calling "
        f"thread). Denormal float32 numbers, which x86 CPUs multiply several times slower, once "
        f"sat in the precomputed transfer functions of intermediate levels (T = 20 took 1.73 ms, "
        f"T = 50 was 42x the reference); coldkit now zeroes entries below 1e-12, and the two "
        f"columns staying close checks that none are left.", "",
    ]
    body = [
        [str(r.steps), f"{r.coldkit_ms:.3f}", f"{r.reference_ms:.3f}", f"{r.speedup:.1f}",
         f"{r.max_difference:.2e}", f"{r.one_thread_ms:.3f}", f"{r.flushed_ms:.3f}"]
        for r in rows
    ]
    header = ["T", "coldkit (ms)", "sequential reference (ms)", "speed-up (×)",
              "largest difference", "coldkit, 1 thread (ms)",
              "coldkit, 1 thread, denormals flushed (ms)"]
    return lines + table(header, body)


def sampling_section(s: Settings, rows: list[SamplingRow]) -> list[str]:
    lines = [
        SECTIONS[4], "",
        f"Algorithm 2 (the `improved` sampler) from D(x0, T) back to t = 0 with the `small` U-Net "
        f"(untrained: the cost does not depend on the weights), blur with T steps, a batch of "
        f"{s.sampling_batch} {s.channels}-channel {s.sampling_size}×{s.sampling_size} images. "
        f"Whole-call time, median of {s.sampling_repeats} runs (levels interleaved, after a "
        f"warm-up). The restorer is wrapped in a timer (synchronising the GPU around each call); "
        f"the share outside it is 1 − restorer time / whole time: the degradations, the update "
        f"and Python.", "",
    ]
    first = rows[0].seconds
    body = [
        [str(r.steps), f"{r.seconds:.3f}", f"{1e3 * r.seconds / r.steps:.2f}",
         f"{r.seconds / first:.2f}", f"{100 * r.outside_share:.1f}"]
        for r in rows
    ]
    return lines + table(
        ["T", "time (s)", "per step (ms)", f"time : time at T = {rows[0].steps}",
         "outside the restorer (%)"],
        body,
    )


def training_section(s: Settings, r: TrainingResult) -> list[str]:
    lines = [
        SECTIONS[5], "",
        f"`coldkit.training.trainer.Trainer.train_step` (unchanged: blur with default params, L1 loss, Adam, "
        f"gradient clipping 1.0, EMA 0.995 every step) on the `small` U-Net, a batch of "
        f"{r.batch} {s.channels}-channel {r.size}×{r.size} images drawn from "
        f"{s.train_images} in-memory test images. Median of {s.train_repeats} steps after 2 "
        f"warm-up steps. Interleaved with each step, the restorer's forward (with the loss), "
        f"backward and `optimizer.step()` are timed separately on a fixed batch; everything else "
        f"in the step (sampling the batch, degrading it, zeroing and clipping gradients, the EMA, "
        f"Python) is *outside the restorer*: its share is the median over the steps of "
        f"1 − (forward + backward + optimizer) / step, each step against the parts timed right "
        f"after it, so the machine's speed swings between steps cancel. FLOPs: "
        f"`torch.utils.flop_counter.FlopCounterMode` over one forward+backward (it counts matrix "
        f"multiplies and convolutions). The peak is "
        f"a timed float32 `torch.mm` of two {s.matmul_size}×{s.matmul_size} matrices (median of "
        f"{s.matmul_repeats} timings of about {1e3 * s.min_seconds:g} ms) in the same run. "
        f"Memory: {r.memory_kind}"
        + (" (the whole process up to the end of the training section; the value before it is "
           "shown too)." if r.memory_kind.startswith("max RSS") else "."),
        "",
    ]
    body = [
        ["time per step (ms)", f"{r.step_ms:.1f}"],
        ["images per second", f"{r.images_per_second:.0f}"],
        ["forward + loss (ms)", f"{r.forward_ms:.1f}"],
        ["backward (ms)", f"{r.backward_ms:.1f}"],
        ["optimizer step (ms)", f"{r.optimizer_ms:.1f}"],
        ["outside the restorer (%)", f"{100 * r.outside_share:.1f}"],
        ["FLOPs per step (GFLOP)", f"{r.step_flops / 1e9:.3f}"],
        ["achieved (GFLOP/s)", f"{r.achieved_flops_per_second / 1e9:.2f}"],
        ["matmul peak (GFLOP/s)", f"{r.matmul_flops_per_second / 1e9:.2f}"],
        ["FLOP utilisation (%)", f"{100 * r.utilisation:.1f}"],
        ["peak memory (MiB)", f"{r.peak_memory_mib:.0f}"],
        ["peak memory before the training section (MiB)", f"{r.memory_before_mib:.0f}"],
    ]
    return lines + table(["", "value"], body)


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _number(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "–" if value is None else f"{scale * value:.{digits}f}"


def switches_section(s: Settings, device: str, rows: list[SwitchRow]) -> list[str]:
    skipped = "" if s.switch_compile else (
        " `compile` was not measured in this run (`--quick` leaves it out: compiling the small "
        "U-Net takes minutes on a CPU); the full run measures it."
    )
    lines = [
        SECTIONS[6], "",
        f"The `[train]` and `[sampling]` switches (`coldkit.runtime.acceleration`, "
        f"[configuration.md](configuration.md)), each on against all off on {device}: "
        f"`Trainer.train_step` as in the training-step section (batch {s.train_batch}, "
        f"{s.train_size}×{s.train_size}), and Algorithm 2 at T = {min(s.sampling_levels)} as in "
        f"the sampling section (batch {s.sampling_batch}). Medians of {s.switch_repeats} "
        f"interleaved timings after the first call and 2 warm-up steps; the first training step "
        f"and the first sampling call with the switch on are shown apart (they include compiling, "
        f"for `compile`). *on : off* below {HELPS_BELOW:g} counts as helping. The largest "
        f"difference is between the images sampled with the switch on and off (the U-Net's "
        f"weights perturbed by N(0, 0.02²) noise, so that it does not return its input). *Default* says "
        f"whether `auto` (the default of every switch) turns it on on this device and CPU for "
        f"a 4,000-step training run, from `coldkit.runtime.auto.choices`.{skipped}", "",
    ]
    body = []
    for r in rows:
        if r.error is not None:
            body.append([r.name, f"`{r.key}`", f"not measured: {r.error}"] + ["–"] * 8
                        + ["on" if r.on_by_default else "off"])
            continue
        body.append([
            r.name, f"`{r.key}`", _number(r.train_off_ms), _number(r.train_on_ms),
            _ratio(r.train_ratio), _number(r.first_step_s, digits=2),
            _number(r.sample_off_s, 1e3), _number(r.sample_on_s, 1e3), _ratio(r.sample_ratio),
            _number(r.first_sample_s, digits=2), f"{r.sample_difference:.1e}",
            "on" if r.on_by_default else "off",
        ])
    header = ["switch", "config", "train step off (ms)", "on (ms)", "on : off",
              "first step on (s)", "Algorithm 2 off (ms)", "on (ms)", "on : off",
              "first call on (s)", "largest difference", "default"]
    lines += table(header, body)
    lines += ["", *switch_verdicts(device, rows)]
    return lines


def switch_verdicts(device: str, rows: list[SwitchRow]) -> list[str]:
    """One line per switch: whether it helps here and whether it is on by default."""
    lines = []
    for r in rows:
        if r.error is not None:
            verdict = "could not be measured here"
        else:
            helped = [what for what, yes in (("training", r.helps_training),
                                             ("sampling", r.helps_sampling)) if yes]
            verdict = f"helps {' and '.join(helped)}" if helped else "does not help"
        if (r.error is None and r.first_step_s is not None and r.first_step_s > 1.0
                and r.train_on_ms < r.train_off_ms):
            steps = r.first_step_s / ((r.train_off_ms - r.train_on_ms) / 1e3)
            verdict += (f" (its first training step took {r.first_step_s:.1f} s: it pays off "
                        f"after about {steps:.0f} steps)")
        default = "on by default" if r.on_by_default else "off by default"
        advice = ""
        if r.error is None and (r.helps_training or r.helps_sampling) and not r.on_by_default:
            advice = (" — measured to help but off by default: turn it on in your config, or in "
                      "`coldkit.runtime.auto` for this device type if this holds on a quiet "
                      "machine")
        elif r.error is None and r.on_by_default and not (r.helps_training or r.helps_sampling):
            advice = " — on by default but not measured to help here: check `coldkit.runtime.auto`"
        lines.append(f"* **{r.name}** on {device}: {verdict}; {default}{advice}.")
    return lines


def render(s: Settings, quick: bool, machine: dict[str, str], costs, blur, sampling,
           training, switches: list[SwitchRow] | None = None) -> str:
    parts = [
        ["# Performance", "",
         "What coldkit's cost goals ask and what this machine measured. Timings are wall-clock "
         "(`time.perf_counter`), medians of interleaved repeats; the numbers vary a few percent "
         "from run to run."],
        machine_section(machine, quick),
        goals_section(goals(s, costs, blur, sampling, training)),
        cost_section(s, costs),
        blur_section(s, blur),
        sampling_section(s, sampling),
        training_section(s, training),
    ]
    if switches is not None:
        parts.append(switches_section(s, machine.get("device", "this device"), switches))
    return "\n\n".join("\n".join(part) for part in parts) + "\n"
