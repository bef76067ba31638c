"""The training loop: L1/L2 restoration loss at a random level per sample, Adam, EMA, clipping,
gradient accumulation, atomic checkpoints with exact resume, a step and a wall-clock budget."""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coldkit.runtime import acceleration
from coldkit.data.augment import apply_augmentation, augmentation_enabled, draw_augmentation
from coldkit.data.batches import InMemoryBatches, TrainingBatches
from coldkit.data.quantize import draw_share, quantize_samples
from coldkit.data.served import served_rows
from coldkit.runs.checkpoint import check_trained_for, keep_copy, load_checkpoint, save_atomic
from coldkit.config import TrainSection
from coldkit.runtime.distributed import SINGLE_PROCESS, Cluster, check_batch_split
from coldkit.errors import CheckpointError, TrainingError
from coldkit.path_noise import mean_params, mean_path
from coldkit.protocols import Degradation


@dataclass
class TrainState:
    """Where training stands: what a checkpoint stores besides the weights."""

    step: int = 0
    elapsed_seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    #: The step of the checkpoint kept as healthy (``checkpoints/healthy.pt``), if any.
    healthy_step: int | None = None


#: A checkpoint is healthy when the loss of the step after it (the first loss its weights
#: produce) is finite and at most this many times the run's first loss (that of the untrained
#: model): weights that a too-large step already ruined give a far larger loss, then NaN.
HEALTHY_LOSS_FACTOR = 2.0


@dataclass(frozen=True)
class StepReport:
    """What the progress display receives after each optimizer step.

    ``loss`` is the mean loss since the previous report that carried one: the losses are read
    from the device only every ``train.log_every`` steps (and before each checkpoint), so a GPU
    is never stalled by the display; between those steps it is None.
    """

    step: int
    total_steps: int
    loss: float | None
    elapsed_seconds: float


class ExponentialMovingAverage:
    """EMA of a model's weights, with the usual warm-up so early averages are not stale.

    One multi-tensor ``lerp`` over all parameters per update (not a Python loop of small ops).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self._averages = list(self.model.parameters())
        self._buffers = list(self.model.buffers())

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        if self._averages:
            torch._foreach_lerp_(self._averages, list(model.parameters()), 1.0 - decay)
        for average, current in zip(self._buffers, model.buffers()):
            average.copy_(current)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = state["updates"]


def restoration_loss(
    prediction: Tensor, target: Tensor, kind: str, berhu_threshold: float = 0.1
) -> Tensor:
    """The paper's L1 loss, L2, or the reverse Huber ("berHu") loss.

    berHu is |e| for errors up to the threshold c and (e² + c²) / 2c beyond (continuous, with a
    continuous slope at c): confident pixels are fitted as sharply as with L1, while pixels the
    restorer cannot know are pulled towards their mean as with L2. Along Algorithm 2's path that
    mean adds less invented detail at each step (docs/recipe.md).
    """
    if kind == "l1":
        return F.l1_loss(prediction, target)
    if kind == "l2":
        return F.mse_loss(prediction, target)
    error = (prediction - target).abs()
    c = berhu_threshold
    return torch.where(error <= c, error, (error * error + c * c) / (2 * c)).mean()


#: Device types where Adam runs as one fused kernel over all parameters (torch's ``fused=True``).
FUSED_ADAM_DEVICES = ("cpu", "cuda")


def adam(model: nn.Module, lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam over ``model``'s parameters, fused where torch has the kernel for ``device``.

    The fused kernel updates every parameter in one pass instead of torch's per-parameter loop
    (on the ``small`` U-Net's 111 tensors, one CPU thread: 24.6 ms against 75.3 ms a step,
    docs/performance.md). Its arithmetic is the same up to float32 rounding: a deliberate change
    of float32 results (losses agree to about 1e-6; a weight whose gradient is near Adam's eps
    can move by a fraction of one step's update).
    """
    fused = device.type in FUSED_ADAM_DEVICES
    return torch.optim.Adam(model.parameters(), lr=lr, fused=fused or None)


def keep_fused(optimizer: torch.optim.Optimizer, device_type: str) -> None:
    """After ``load_state_dict`` (which restores the saved groups' flags): fused again where
    :func:`adam` fuses, whatever the checkpoint's optimizer was."""
    fused = device_type in FUSED_ADAM_DEVICES
    for group in optimizer.param_groups:
        group["fused"], group["foreach"] = (True, None) if fused else (None, group.get("foreach"))


def clip_gradients(model: nn.Module, max_norm: float) -> None:
    """``clip_grad_norm_``, without the rescaling pass when nothing needs clipping on a CPU.

    Scaling by the clamped factor 1.0 changes nothing, so skipping it is exact; on a CPU the
    norm is known at once, on a GPU reading it would stall the device, so there the scaling
    always runs (as ``clip_grad_norm_`` does).
    """
    gradients = [p.grad for p in model.parameters() if p.grad is not None]
    if not gradients:
        return
    total = nn.utils.get_total_norm(gradients, foreach=True)
    if total.device.type == "cpu" and float(total) <= max_norm:
        return
    nn.utils.clip_grads_with_norm_(model.parameters(), max_norm, total, foreach=True)


def budget_progress(step: int, elapsed_seconds: float, settings: TrainSection) -> float:
    """Share of the training budget used: ``max(step / steps, minutes / max_minutes)``, at most 1.

    Schedules run on this, not on the step count alone, so a run stopped by ``max_minutes`` on a
    slow machine still finishes its learning-rate decay.
    """
    progress = step / settings.steps if settings.steps > 0 else 1.0
    if settings.max_minutes is not None:
        progress = max(progress, elapsed_seconds / (settings.max_minutes * 60.0))
    return min(1.0, progress)


def learning_rate_factor(step: int, settings: TrainSection, progress: float | None = None) -> float:
    """Linear warm-up over ``warmup_steps``, then constant or cosine decay to 10%.

    The decay follows ``progress`` (see :func:`budget_progress`; by default ``step / steps``),
    counted from the end of the warm-up.
    """
    if settings.warmup_steps and step < settings.warmup_steps:
        return (step + 1) / settings.warmup_steps
    if settings.lr_schedule == "constant" or settings.steps <= settings.warmup_steps:
        return 1.0
    if progress is None:
        progress = step / settings.steps
    warmup_share = settings.warmup_steps / settings.steps
    after_warmup = min(1.0, max(0.0, (progress - warmup_share) / (1.0 - warmup_share)))
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * after_warmup))


class Trainer:
    """Trains a restorer to invert a degradation.

    ``images`` is a tensor of training images held in memory, or a :class:`TrainingBatches`
    source (e.g. one that streams a large folder). Under torchrun (``cluster``) every rank draws
    the same global batch of ``settings.batch_size`` and trains on its share; the gradients are
    averaged by DistributedDataParallel, and only rank 0 writes checkpoints. ``notify`` receives
    the one line said if ``torch.compile`` fails and training goes on eagerly (else a warning).
    """

    def __init__(
        self,
        restorer: nn.Module,
        degradation: Degradation,
        images: Tensor | TrainingBatches,
        settings: TrainSection,
        seed: int,
        device: torch.device,
        checkpoint_path: Path,
        cluster: Cluster = SINGLE_PROCESS,
        trained_for: dict | None = None,
        healthy_path: Path | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        check_batch_split(settings.batch_size, cluster)
        self.batches = images if not isinstance(images, Tensor) else InMemoryBatches(images)
        if len(self.batches) == 0:
            raise ValueError("no training images")
        self.restorer = restorer.to(device)
        self.cluster = cluster
        self.degradation = degradation
        self.settings = settings
        self.device = device
        self.checkpoint_path = checkpoint_path
        #: Where the last healthy checkpoint is kept (None: only the last one is kept).
        self.healthy_path = healthy_path
        #: The step of ``checkpoints/last.pt`` (None: none yet), and whether its health (the
        #: loss of the step after it) is still to be seen.
        self._saved: int | None = None
        self._unconfirmed = False
        #: What the weights are trained for (T, degradation, restorer, input shape), recorded in
        #: each checkpoint and checked on resume (:func:`coldkit.runs.folder.trained_for`).
        self.trained_for = trained_for
        self.optimizer = adam(self.restorer, settings.lr, device)
        self.ema = (
            ExponentialMovingAverage(self.restorer, settings.ema_decay)
            if settings.ema_decay > 0
            else None
        )
        # Speed switches (compile, channels-last, autocast) after the EMA copy: it stays plain.
        self.switches = acceleration.resolve(
            settings, device, "train", settings.steps, restorer=self.restorer
        )
        acceleration.prepare_model(self.restorer, self.switches, notify)
        self.scaler = acceleration.grad_scaler(self.switches)
        self.network = _distributed(self.restorer, cluster, device)  # after the switches
        # One CPU generator draws indices, levels and degradation parameters: same seed, same run.
        self.generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.state = TrainState()

    @property
    def model_for_inference(self) -> nn.Module:
        """The EMA weights if an EMA is kept, else the raw weights."""
        return self.ema.model if self.ema is not None else self.restorer

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> None:
        """Write the checkpoint (rank 0 only: every rank holds the same state)."""
        if not self.cluster.is_main:
            return
        self._check_finite_weights()
        save_atomic(
            {
                "model": self.restorer.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(),
                "torch_rng": torch.get_rng_state(),
                "step": self.state.step,
                "elapsed_seconds": self.state.elapsed_seconds,
                "losses": self.state.losses,
                "grad_scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                "trained_for": self.trained_for,
                "healthy_step": self.state.healthy_step,
            },
            self.checkpoint_path,
        )
        self._saved, self._unconfirmed = self.state.step, True

    def _confirm_healthy(self, first: int, values: list[float]) -> None:
        """Keep the last checkpoint as healthy when the loss of the step after it is sane
        (``values`` are the finite losses of steps ``first, first + 1, ...``)."""
        saved = self._saved
        if not self._unconfirmed or saved is None or self.healthy_path is None:
            return
        index = saved + 1 - first
        if not 0 <= index < len(values) or not self.cluster.is_main:
            return
        self._unconfirmed = False
        reference = (self.state.losses or values)[0]
        if values[index] <= HEALTHY_LOSS_FACTOR * reference and self.checkpoint_path.is_file():
            keep_copy(self.checkpoint_path, self.healthy_path)
            self.state.healthy_step = saved

    def _check_finite_weights(self) -> None:
        """Refuse to checkpoint weights that hold NaN or inf (a loss can still be finite one
        step after the weights blew up): the last checkpoint stays the last finite one."""
        norms = torch._foreach_norm([p.detach().float() for p in self.restorer.parameters()])
        if norms and not bool(torch.isfinite(torch.stack(norms)).all()):
            raise self._diverged(f"the weights became NaN or inf by step {self.state.step}")

    def _diverged(self, what: str) -> TrainingError:
        """The error for a run that diverged: what is kept, and the command that recovers."""
        folder = self.checkpoint_path.parent.parent
        saved = self._saved if self.checkpoint_path.exists() else None
        healthy = self.state.healthy_step if self.healthy_path is not None else None
        if saved is None:
            kept, back_to = "no checkpoint was written yet, so the rerun starts from scratch", 0
        elif self.healthy_path is None or healthy == saved:
            known = " was followed by a sane loss and" if healthy == saved else ""
            kept = (f"the last checkpoint ({self.checkpoint_path}, step {saved}){known} is kept; "
                    "the rerun restarts from it")
            back_to = saved
        else:
            where = (f"the last healthy one (step {healthy}, followed by a sane loss) is kept in "
                     f"{self.healthy_path}" if healthy is not None else
                     "no checkpoint was followed by a sane loss, so restart from scratch")
            kept = (f"the last checkpoint (step {saved}) is kept, but its finite weights may "
                    f"already be ruined by the same step size; {where}")
            back_to = healthy if healthy is not None else 0
        lower = f"{min(self.settings.lr / 10, 1e-4):g}"
        return TrainingError(
            f"Training stopped: {what}. Nothing non-finite was saved: {kept}. Go back to a "
            f"healthy state with a lower train.lr: `coldkit run {folder} --from-step {back_to} "
            f"--set train.lr={lower}` (or set train.grad_clip, e.g. --set train.grad_clip=1; "
            "both may change on resume; --from-step 0 starts over)."
        )

    def resume(self) -> bool:
        """Load the checkpoint if there is one; return whether training resumed."""
        if not self.checkpoint_path.exists():
            return False
        state = load_checkpoint(self.checkpoint_path)
        if self.trained_for is not None:
            check_trained_for(self.checkpoint_path, state, self.trained_for)
        try:
            self.restorer.load_state_dict(state["model"])
            if self.ema is not None and state.get("ema") is not None:
                self.ema.load_state_dict(state["ema"])
            self.optimizer.load_state_dict(state["optimizer"])
            keep_fused(self.optimizer, device_type=self.device.type)
            if self.scaler.is_enabled() and state.get("grad_scaler") is not None:
                self.scaler.load_state_dict(state["grad_scaler"])
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise CheckpointError(
                f"Checkpoint {self.checkpoint_path} does not fit this experiment's model "
                f"({first_line}). The config was changed after the checkpoint was written: "
                "restore the original config, or run into a new folder with --out."
            ) from None
        try:
            self.generator.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
        except (RuntimeError, KeyError, TypeError) as exc:
            raise CheckpointError(
                f"Checkpoint {self.checkpoint_path} is not a coldkit checkpoint (its random "
                f"state is missing or malformed: {type(exc).__name__}). Move it away to restart "
                "training from scratch, or restore it from a backup."
            ) from None
        healthy = state.get("healthy_step")
        if self.healthy_path is None or not self.healthy_path.is_file():
            healthy = None
        healthy = healthy if isinstance(healthy, int) and not isinstance(healthy, bool) else None
        self.state = TrainState(
            state["step"], float(state.get("elapsed_seconds", 0.0)),
            list(state.get("losses", [])), healthy,
        )
        # The next loss says whether the resumed checkpoint is healthy.
        self._saved, self._unconfirmed = self.state.step, True
        self.batches.resume_at(self.state.step * self.settings.accumulate)
        return True

    # ------------------------------------------------------------------ training
    @property
    def progress(self) -> float:
        """Share of the step-or-time budget used (see :func:`budget_progress`)."""
        return budget_progress(self.state.step, self.state.elapsed_seconds, self.settings)

    def stopped_by(self) -> str | None:
        """Which limit ended training: ``"steps"``, ``"max_minutes"``, or None if budget is left."""
        if self.state.step >= self.settings.steps:
            return "steps"
        if not self.budget_left():
            return "max_minutes"
        return None

    def budget_left(self) -> bool:
        settings = self.settings
        if self.state.step >= settings.steps:
            return False
        if settings.max_minutes is not None:
            return self.state.elapsed_seconds < settings.max_minutes * 60
        return True

    def draw_batch(self) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """This rank's share of one global batch: ``x0``, levels ``t`` and degradation params.

        The levels and parameters are drawn for the whole global batch from the shared seeded
        generator, so every rank's generator stays in step and N processes train on exactly
        the draws one process would.
        """
        settings, device = self.settings, self.device
        batch = self.batches.draw(settings.batch_size, self.generator, self.cluster)
        share = self.cluster.share(settings.batch_size)
        x0 = batch.x0.to(device, non_blocking=True)
        if x0.dtype == torch.uint8:  # streamed images stay uint8 until they reach the device
            x0 = x0.float().div_(255.0)
        served = batch.params
        if augmentation_enabled(settings.augment):
            drawn = draw_augmentation(settings.augment, settings.batch_size, self.generator)
            mine = {key: value[share] for key, value in drawn.items()}
            x0 = apply_augmentation(x0, mine)
            if served is not None:  # a pair moves together: the twin gets the same augmentation
                served = {key: apply_augmentation(value.to(device), mine)
                          for key, value in served.items()}
        like = x0 if not self.cluster.enabled else batch.global_like
        steps = self.degradation.steps
        t = torch.randint(1, steps + 1, (settings.batch_size,), generator=self.generator)
        params = self.degradation.sample_params(like, self.generator)
        if self.cluster.enabled:
            params = {key: value[share].to(device) for key, value in params.items()}
        params = {**params, **served_rows(self.degradation, x0, served)}  # rows: this rank's
        return x0, t[share].to(device), params

    def train_step(self) -> Tensor:
        """One optimizer step over ``accumulate`` micro-batches; returns the mean loss as a
        detached 0-d tensor on the device (reading it would wait for the device)."""
        settings = self.settings
        self.restorer.train()
        for group in self.optimizer.param_groups:
            group["lr"] = settings.lr * learning_rate_factor(
                self.state.step, settings, self.progress
            )
        self.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.device)
        for micro_batch in range(settings.accumulate):
            x0, t, params = self.draw_batch()
            level = self.jittered(t)
            x_t = self.as_files_hold(self.degradation.degrade(x0, level, params))
            # DDP all-reduces gradients on the last micro-batch only.
            last = micro_batch == settings.accumulate - 1
            with _gradient_sync(self.network, last):
                loss = self.objective_loss(self.network(x_t, t), x0, level, params)
                self.scaler.scale(loss / settings.accumulate).backward()
            total += loss.detach()
        if settings.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            clip_gradients(self.restorer, settings.grad_clip)
        self.scaler.step(self.optimizer)  # optimizer.step(), unless fp16 gradients overflowed
        self.scaler.update()
        self.state.step += 1
        if self.ema is not None and self.state.step % settings.ema_every == 0:
            self.ema.update(self.restorer)
        return total / settings.accumulate

    def jittered(self, t: Tensor) -> Tensor:
        """The levels to degrade at: ``t`` moved by up to ``train.level_jitter`` steps (uniform)
        for a ``train.level_jitter_share`` of the samples, drawn for the global batch from the
        run's generator, clamped to ``1 .. T``; ``t`` itself (nothing drawn) when it is off."""
        jitter = self.settings.level_jitter
        if jitter == 0:
            return t
        size = self.settings.batch_size
        offsets = torch.randint(-jitter, jitter + 1, (size,), generator=self.generator)
        chosen = draw_share(size, self.settings.level_jitter_share, self.generator)
        if chosen is not None:
            offsets = torch.where(chosen, offsets, 0)
        offsets = offsets[self.cluster.share(size)].to(t.device)
        return (t + offsets).clamp(1, self.degradation.steps)

    def as_files_hold(self, x_t: Tensor) -> Tensor:
        """``x_t`` quantised (straight-through) to ``train.quantize_inputs`` bits for a
        ``train.quantize_share`` of the samples drawn from the run's generator; unchanged (and
        nothing drawn) when the option is off."""
        bits = self.settings.quantize_inputs
        if bits is None:
            return x_t
        size = self.settings.batch_size
        chosen = draw_share(size, self.settings.quantize_share, self.generator)
        if chosen is not None:  # drawn for the global batch: every rank's generator stays in step
            chosen = chosen[self.cluster.share(size)]
        return quantize_samples(x_t, bits, chosen)

    def loss(self, prediction: Tensor, x0: Tensor) -> Tensor:
        """The run's restoration loss (``train.loss``, ``train.berhu_threshold``)."""
        return restoration_loss(prediction, x0, self.settings.loss, self.settings.berhu_threshold)

    def objective_loss(
        self, prediction: Tensor, x0: Tensor, level: Tensor, params: dict[str, Tensor]
    ) -> Tensor:
        """``train.objective``: the loss between the estimate and ``x0`` (``image``), or between
        both re-degraded to the level they came from, without path noise (``soft``: Soft Score
        Matching, Daras et al. 2022). Where re-degrading is the identity the two are equal."""
        if self.settings.objective == "image":
            return self.loss(prediction, x0)
        mean, drawn = mean_path(self.degradation), mean_params(params)
        return self.loss(mean.degrade(prediction, level, drawn), mean.degrade(x0, level, drawn))

    def fit(self, on_step: Callable[[StepReport], None] | None = None) -> TrainState:
        """Train until ``steps`` or ``max_minutes`` is reached, checkpointing along the way.

        Losses stay on the device until a log step, a checkpoint or the end, then are read in
        one transfer and checked: a NaN or inf loss raises :class:`TrainingError` naming its
        step, before any checkpoint holding its weights could be written.
        """
        settings = self.settings
        wrote_final = True
        pending: list[Tensor] = []
        while self.budget_left():
            started = time.perf_counter()
            pending.append(self.train_step())
            step = self.state.step
            checkpoint_now = step % settings.checkpoint_every == 0
            loss = None
            if checkpoint_now or step % settings.log_every == 0:
                loss = self._read_losses(pending)
            self.state.elapsed_seconds += time.perf_counter() - started
            # Ranks must stop at the same step: they all follow rank 0's clock.
            self.state.elapsed_seconds = self.cluster.broadcast_value(self.state.elapsed_seconds)
            if not self.budget_left() and pending:
                loss = self._read_losses(pending)
            wrote_final = False
            if checkpoint_now:
                self.save_checkpoint()
                wrote_final = True
            if on_step is not None:
                on_step(StepReport(step, settings.steps, loss, self.state.elapsed_seconds))
        self._read_losses(pending)
        if not wrote_final or not self.checkpoint_path.exists():
            self.save_checkpoint()
        return self.state

    def _read_losses(self, pending: list[Tensor]) -> float | None:
        """Move the pending per-step losses to ``state.losses``; return their mean."""
        if not pending:
            return None
        values = self.cluster.mean(torch.stack(pending).float()).cpu().tolist()
        pending.clear()
        first = self.state.step - len(values) + 1
        for offset, value in enumerate(values):
            if not math.isfinite(value):
                raise self._diverged(f"the training loss became {value} at step {first + offset}")
        self._confirm_healthy(first, values)
        self.state.losses.extend(values)
        return sum(values) / len(values)


def _distributed(restorer: nn.Module, cluster: Cluster, device: torch.device) -> nn.Module:
    """The restorer wrapped in DistributedDataParallel under torchrun, else itself."""
    if not cluster.enabled:
        return restorer
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(restorer, device_ids=device_ids)


def _gradient_sync(network: nn.Module, sync: bool):  # type: ignore[no-untyped-def]
    """DDP's ``no_sync`` for all but the last micro-batch; nothing to do without DDP."""
    if sync or not hasattr(network, "no_sync"):
        return contextlib.nullcontext()
    return network.no_sync()
