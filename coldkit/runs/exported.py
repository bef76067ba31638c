"""An exported model folder (``coldkit export``): weights others can load, without pickle.

The folder holds ``model.safetensors`` (the EMA weights), ``coldkit_model.json`` (the manifest:
everything needed to rebuild the model and its degradation, the plugins it needs with their
versions, and a sha256 of every tensor file), ``config.toml`` (the resolved config), a model card
``README.md``, and, when the run fitted a prior for generation, ``priors/<name>.safetensors``.

:func:`coldkit.runs.folder.open_run` opens such a folder as it opens a run folder; this module
reads and checks it. A manifest that is missing or unreadable, a listed file that is missing
(a truncated copy) and a file whose sha256 differs (a tampered or damaged copy) are refused with a
:class:`CheckpointError`; a plugin that is not installed, with a :class:`PluginError` naming the
package to install. ``hf://OWNER/NAME`` names a folder on the Hugging Face Hub, fetched with
``huggingface_hub`` (the optional ``hub`` extra).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import load_file

from coldkit.errors import CheckpointError, ConfigError, PluginError
from coldkit.plugins import Registry

MANIFEST_FILE = "coldkit_model.json"
WEIGHTS_FILE = "model.safetensors"
MODEL_CARD_FILE = "README.md"
MODEL_FORMAT = "coldkit-model"
MODEL_FORMAT_VERSION = 1
HUB_PREFIX = "hf://"
#: What ``pip install`` names for the Hub support.
HUB_EXTRA = "coldkit[hub]"


@dataclass(frozen=True)
class Manifest:
    """``coldkit_model.json``, read and checked."""

    root: Path
    data: dict[str, Any]

    @property
    def config(self) -> dict[str, Any]:
        """The resolved experiment config the model was trained with."""
        return dict(self.data["config"])

    @property
    def restorer_context(self) -> dict[str, Any]:
        return dict(self.data["restorer_context"])

    @property
    def step(self) -> int:
        return int(self.data["step"])

    @property
    def plugins(self) -> dict[str, dict[str, Any]]:
        """Kind -> ``{name, plugin, distribution, version}`` of every plugin the model needs."""
        return dict(self.data.get("plugins") or {})

    @property
    def files(self) -> dict[str, str]:
        """Relative path -> sha256 of every tensor file in the folder."""
        return dict(self.data["files"])


def is_exported(root: Path) -> bool:
    """Whether ``root`` looks like an exported model folder (either of its two key files)."""
    return (root / MANIFEST_FILE).is_file() or (root / WEIGHTS_FILE).is_file()


def sha256_of(path: Path) -> str:
    """The file's sha256 as hex, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(root: Path) -> Manifest:
    """The folder's manifest, with every listed file present and matching its sha256."""
    path = root / MANIFEST_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"{root} is an incomplete exported model: {MANIFEST_FILE} cannot be read ({exc}). "
            "Copy or download the whole folder again, or export it again with `coldkit export`."
        ) from None
    required = ("format", "config", "restorer_context", "step", "files")
    if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT or any(
        key not in data for key in required
    ):
        raise CheckpointError(
            f"{path} is not a coldkit model manifest. Export the run again with `coldkit export`."
        )
    if int(data.get("format_version", 0)) > MODEL_FORMAT_VERSION:
        raise CheckpointError(
            f"{root} was exported by a newer coldkit (format {data['format_version']}). "
            "Upgrade coldkit: `pip install -U coldkit`."
        )
    manifest = Manifest(root, data)
    _check_files(manifest)
    return manifest


def _check_files(manifest: Manifest) -> None:
    """Refuse a missing listed file (truncated copy) or one whose sha256 differs (tampered)."""
    for name, expected in manifest.files.items():
        path = manifest.root / name
        if not path.is_file():
            raise CheckpointError(
                f"{manifest.root} is an incomplete exported model: {name} is missing. Copy or "
                "download the whole folder again."
            )
        if sha256_of(path) != expected:
            raise CheckpointError(
                f"{path} does not match the sha256 recorded in {MANIFEST_FILE}: the file was "
                "changed or damaged after export, so it was not loaded. Copy or download the "
                "folder again from its source."
            )


def check_plugins(manifest: Manifest, registry: Registry) -> None:
    """Refuse a model whose plugins are not installed, naming the package to install."""
    missing = []
    for kind, entry in manifest.plugins.items():
        name = str(entry.get("name"))
        if name not in registry.names(kind):  # type: ignore[arg-type]
            package = entry.get("distribution") or entry.get("plugin") or "?"
            version = entry.get("version")
            pin = f"{package}=={version}" if version else package
            missing.append(f"{kind} {name!r} (package {package}; `pip install {pin}`)")
    if missing:
        raise PluginError(
            f"The model in {manifest.root} needs plugins that are not installed: "
            f"{'; '.join(missing)}. Install them and try again (`coldkit plugins` lists what is "
            "installed)."
        )


def load_weights(manifest: Manifest) -> dict[str, Any]:
    """The restorer's state dict from ``model.safetensors`` (tensors only, no pickle)."""
    path = manifest.root / WEIGHTS_FILE
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error type for a damaged header
        raise CheckpointError(
            f"{path} cannot be read ({type(exc).__name__}: {exc}). Export the model again."
        ) from None


def locate(root: Path | str) -> Path:
    """A local folder as a Path; ``hf://OWNER/NAME`` downloaded from the Hugging Face Hub first
    (into its cache) with ``huggingface_hub``, which the ``hub`` extra installs."""
    text = str(root)
    if not text.startswith(HUB_PREFIX[:-1]):  # "hf:/": a Path collapses the double slash
        return Path(root)
    repo_id = text[len(HUB_PREFIX) - 1 :].strip("/")
    hub = import_hub()
    try:
        return Path(hub.snapshot_download(repo_id=repo_id))
    except Exception as exc:  # network, authentication, unknown repo: the Hub's own message
        raise ConfigError(
            f"Cannot download {repo_id!r} from the Hugging Face Hub ({type(exc).__name__}: "
            f"{exc}). Check the repo id and your connection (and `huggingface-cli login` for a "
            "private repo), or download the folder yourself and pass its path."
        ) from None


def import_hub() -> Any:
    """``huggingface_hub``, or a :class:`ConfigError` saying how to install it."""
    try:
        import huggingface_hub
    except ImportError:
        raise ConfigError(
            "The Hugging Face Hub needs the huggingface_hub package, which is not installed. "
            f"Run `pip install '{HUB_EXTRA}'` (or `pip install huggingface_hub`)."
        ) from None
    return huggingface_hub


__all__ = [
    "HUB_PREFIX",
    "MANIFEST_FILE",
    "MODEL_CARD_FILE",
    "MODEL_FORMAT",
    "MODEL_FORMAT_VERSION",
    "Manifest",
    "WEIGHTS_FILE",
    "check_plugins",
    "import_hub",
    "is_exported",
    "load_weights",
    "locate",
    "read_manifest",
    "sha256_of",
]
