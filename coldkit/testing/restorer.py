"""The restorer contract: :func:`check_restorer`, and the context restorers are built for."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from coldkit.plugins.compat import RestorerContext, as_build_context
from coldkit.protocols import BuildContext
from coldkit.runtime.acceleration import names_float32_layers
from coldkit.testing._common import (
    _generator,
    _max_difference,
    _mixed_levels,
    _named,
    make_test_images,
)

#: The context :func:`check_restorer` and :func:`check_plugin` build restorers for by default.
DEFAULT_RESTORER_CONTEXT = BuildContext(image_size=16, channels=3, steps=10)


def check_restorer(
    factory_or_module: object,
    context: BuildContext | RestorerContext | None = None,
    *,
    seed: int = 0,
    batch: int = 4,
    atol: float = 1e-5,
) -> list[str]:
    """Run the restorer contract on a restorer ``R(x_t, t) ≈ x0``.

    ``factory_or_module`` is a ``torch.nn.Module`` (it is copied, never changed) or a function
    that builds one from a :class:`coldkit.protocols.BuildContext`, e.g.
    ``lambda context: MyNet(MyNet.Params(), context=context)``. ``context`` defaults to
    :data:`DEFAULT_RESTORER_CONTEXT` (3 channels, 16x16 images, T = 10); any
    :class:`~coldkit.protocols.BuildContext` with channels, image size and T set
    (:func:`coldkit.testing.build_context`) is handed to the factory as it is. The inputs are
    ``batch`` images of that shape with levels spread over ``0 .. T``. A deprecated
    :class:`~coldkit.plugins.compat.RestorerContext` is still taken, for one release.

    Checks, in order:

    * interface -- a ``torch.nn.Module`` with at least one trainable parameter;
    * shape, dtype, finite -- ``R(x_t, t)`` has the shape and dtype of ``x_t``, no NaN or inf;
    * deterministic in eval mode -- two calls give the same output;
    * mixed levels -- in a batch with mixed ``t``, each sample's output equals its output alone
      (each sample uses its own ``t``; samples do not mix);
    * gradients -- after ``loss.backward()`` every parameter with ``requires_grad`` has a finite
      gradient (``None`` means the forward pass never uses it), and at least one is non-zero;
    * time conditioning -- the same ``x`` at ``t = 1`` and ``t = T`` gives different outputs. A
      network that starts as the identity (a zero-initialised output layer, like the built-in
      ``unet`` with ``residual = true``) ignores ``t`` until it is trained, so if the output does
      not depend on ``t``, every all-zero parameter (of the checked copy) is set to small seeded values
      and the check is repeated; only a network that still ignores ``t`` then fails;
    * float32 layers (only for a restorer with ``float32_layers()``) -- it returns a non-empty
      list of the restorer's own submodules (they stay float32 under autocast).
    """
    context = DEFAULT_RESTORER_CONTEXT if context is None else as_build_context(context)
    if None in (context.channels, context.image_size, context.steps):
        raise ValueError("check_restorer needs a context with channels, image_size and steps set")
    module = _build(factory_or_module, context)
    label = _named(module, "restorer")
    _check_interface(module, label)
    passed = ["interface", *_check_float32_layers(module, label)]

    x = make_test_images(batch, context.image_size, context.channels, seed)
    t = _mixed_levels(context.steps, batch, seed)
    module.eval()
    with torch.no_grad():
        out = _check_output(module, label, context, x, t)
        passed.append("shape, dtype, finite")
        _check_deterministic(module, label, x, t, out, atol)
        passed.append("deterministic in eval mode")
        _check_mixed_levels(module, label, x, t, out, atol)
        passed.append("mixed levels")

    _check_gradients(module, label, context, x, t, seed)
    passed.append("gradients reach every parameter")
    _check_time_conditioning(module, label, context, x, seed)
    passed.append("time conditioning")
    return passed


def _build(factory_or_module: object, context: BuildContext) -> object:
    """A copy of the module, or what the factory builds for ``context``."""
    if isinstance(factory_or_module, nn.Module):
        return copy.deepcopy(factory_or_module)
    assert callable(factory_or_module), (
        "check_restorer takes a torch.nn.Module or a function context -> module, got "
        f"{type(factory_or_module).__name__}"
    )
    return factory_or_module(context)


def _check_interface(module: object, label: str) -> None:
    """A ``torch.nn.Module`` with at least one trainable parameter."""
    assert isinstance(module, nn.Module), (
        f"{label}: a restorer must be a torch.nn.Module (coldkit trains its parameters, keeps an "
        f"EMA copy and saves its state_dict), got {type(module).__name__}"
    )
    trainable = [name for name, p in module.named_parameters() if p.requires_grad]
    assert trainable, f"{label}: has no trainable parameters, so there is nothing to train"


def _check_float32_layers(module: nn.Module, label: str) -> list[str]:
    """``float32_layers()``, where the restorer has it, names some of its own submodules; the
    check's name if it ran."""
    if not names_float32_layers(module):
        return []
    layers = list(module.float32_layers())  # type: ignore[operator]
    assert layers, f"{label}: float32_layers() returned nothing; drop the method or name layers"
    own = {id(sub) for sub in module.modules()}
    strangers = [type(layer).__name__ for layer in layers if id(layer) not in own]
    assert not strangers, (
        f"{label}: float32_layers() returned modules that are not the restorer's own submodules "
        f"({', '.join(strangers)}); return layers of this module (e.g. [self.stem, self.head])"
    )
    return ["float32 layers are its own"]


def _check_output(
    module: nn.Module, label: str, context: BuildContext, x: Tensor, t: Tensor
) -> Tensor:
    """``R(x_t, t)`` is a tensor with the shape and dtype of ``x_t``, all finite; returns it."""
    out = module(x, t)
    assert isinstance(out, Tensor), (
        f"{label}: R(x_t, t) must return a tensor, got {type(out).__name__}"
    )
    assert out.shape == x.shape, (
        f"{label}: output shape {tuple(out.shape)} != input shape {tuple(x.shape)} "
        f"(context: {context}); R(x_t, t) estimates x0, an image like x_t"
    )
    assert out.dtype == x.dtype, (
        f"{label}: {x.dtype} input came back as {out.dtype}; return the input's dtype"
    )
    bad = int((~torch.isfinite(out)).sum())
    assert bad == 0, f"{label}: R(x_t, t) has {bad} NaN or inf values"
    return out


def _check_deterministic(
    module: nn.Module, label: str, x: Tensor, t: Tensor, out: Tensor, atol: float
) -> None:
    """In eval mode a second call on the same input gives ``out`` again."""
    again = module(x, t)
    difference = _max_difference(out, again)
    assert difference <= atol, (
        f"{label}: in eval mode two calls on the same input differ by up to {difference:.3g}; "
        "a restorer must be deterministic in eval mode (no sampling, dropout only in training)"
    )


def _check_mixed_levels(
    module: nn.Module, label: str, x: Tensor, t: Tensor, out: Tensor, atol: float
) -> None:
    """Each sample's output in the mixed-level batch ``out`` equals its output alone."""
    for index in range(x.shape[0]):
        alone = module(x[index : index + 1], t[index : index + 1])
        difference = _max_difference(out[index : index + 1], alone)
        assert difference <= atol * 10, (
            f"{label}: sample {index} at t = {int(t[index])} in a batch with levels "
            f"{t.tolist()} differs by {difference:.3g} from the same sample restored alone. "
            "Each sample must use its own t (not e.g. t[0] or t.max()), and samples must not "
            "mix in eval mode."
        )


def _check_gradients(
    module: nn.Module, label: str, context: BuildContext, x: Tensor, t: Tensor, seed: int
) -> None:
    """After ``loss.backward()`` every trainable parameter has a finite gradient, not all zero."""
    batch = x.shape[0]
    module.train()
    module.zero_grad(set_to_none=True)
    target = make_test_images(batch, context.image_size, context.channels, seed + 1)
    loss = (module(x, t) - target).square().mean()
    assert bool(torch.isfinite(loss)), f"{label}: the training loss is {float(loss)}"
    loss.backward()
    parameters = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
    missing = [name for name, p in parameters if p.grad is None]
    assert not missing, (
        f"{label}: no gradient reaches {len(missing)} parameter(s): "
        f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}. The forward pass never "
        "uses them: remove them, or set requires_grad=False if they are fixed."
    )
    bad_grads = [name for name, p in parameters if not bool(torch.isfinite(p.grad).all())]
    assert not bad_grads, (
        f"{label}: the gradients of {', '.join(bad_grads[:5])} hold NaN or inf (e.g. sqrt or log "
        "at 0, division by zero)"
    )
    assert any(bool(p.grad.abs().sum() > 0) for _, p in parameters), (
        f"{label}: every gradient is zero, so training cannot change the network"
    )
    module.zero_grad(set_to_none=True)


def _check_time_conditioning(
    module: nn.Module, label: str, context: BuildContext, x: Tensor, seed: int
) -> None:
    """The same ``x`` at ``t = 1`` and ``t = T`` gives different outputs, if need be after giving
    the all-zero parameters small seeded values."""
    batch = x.shape[0]
    low = 1 if context.steps > 1 else 0
    t_low = torch.full((batch,), low, dtype=torch.long)
    t_high = torch.full((batch,), context.steps, dtype=torch.long)

    def time_effect(network) -> float:
        network.eval()
        with torch.no_grad():
            return _max_difference(network(x, t_low), network(x, t_high))

    effect = time_effect(module)
    perturbed: list[str] = []
    if effect == 0.0:
        perturbed = _perturb_zero_parameters(module, seed)
        if perturbed:
            effect = time_effect(module)
    assert effect > 0.0, (
        f"{label}: the output does not depend on t: the same images at t = {low} and "
        f"t = {context.steps} give the same output"
        + (
            f", even after giving its all-zero parameters ({', '.join(perturbed[:5])}) random "
            "values"
            if perturbed
            else ""
        )
        + ". A restorer must be conditioned on the level t (e.g. a time embedding)."
    )


def _perturb_zero_parameters(module: nn.Module, seed: int) -> list[str]:
    """Set every all-zero parameter to small seeded values; returns their names."""
    perturbed: list[str] = []
    generator = _generator(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.numel() and not bool(p.any()):
                noise = torch.randn(p.shape, generator=generator, dtype=torch.float32)
                p.copy_(0.02 * noise.to(p))
                perturbed.append(name)
    return perturbed
