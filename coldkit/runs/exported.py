"""An exported model folder (``coldkit export``): weights others can load, without pickle.

The folder holds ``model.safetensors`` (the EMA weights), ``coldkit_model.json`` (the manifest:
everything needed to rebuild the model and its degradation, the plugins it needs with their
versions, and a sha256 of every tensor file), ``config.toml`` (the resolved config), a model card
``README.md``, and, when the run fitted a prior for generation, ``priors/<name>.safetensors``.

:func:`coldkit.runs.opened.open_run` opens such a folder as it opens a run folder; this module
reads and checks it. A manifest that is missing or unreadable, a listed file that is missing
(a truncated copy) and a file whose sha256 differs (a tampered or damaged copy) are refused with a
:class:`CheckpointError`; a plugin that is not installed, with a :class:`PluginError` naming the
package to install. ``hf://OWNER/NAME`` names a folder on the Hugging Face Hub, fetched with
``huggingface_hub`` (the optional ``hub`` extra).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import load_file

from coldkit.errors import CheckpointError, ConfigError, PluginError
from coldkit.plugins import Registry
from coldkit.runs.checkpoint import check_trained_for
from coldkit.runs.manifest import validate_manifest
from coldkit.runtime.files import is_regular_file

MANIFEST_FILE = "coldkit_model.json"
WEIGHTS_FILE = "model.safetensors"
MODEL_CARD_FILE = "README.md"
MODEL_FORMAT = "coldkit-model"
MODEL_FORMAT_VERSION = 1
#: The key of the weights file's metadata that records what the model was trained for.
TRAINED_FOR_KEY = "coldkit_trained_for"
PRIORS_FOLDER = "priors"
#: A manifest is a few kilobytes; anything far larger is not one.
MAX_MANIFEST_BYTES = 16 * 2**20
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
    def data_plugins(self) -> list[dict[str, Any]]:
        """``{name, plugin, distribution, version}`` of every dataset the components read
        (empty for a manifest written before coldkit recorded them)."""
        return [dict(entry) for entry in self.data.get("data_plugins") or []]

    @property
    def files(self) -> dict[str, str]:
        """Relative path -> sha256 of every tensor file in the folder."""
        return dict(self.data["files"])


def is_exported(root: Path) -> bool:
    """Whether ``root`` looks like an exported model folder (either of its two key files, as
    anything: a link or special file there is refused when the folder is read)."""
    return os.path.lexists(root / MANIFEST_FILE) or os.path.lexists(root / WEIGHTS_FILE)


def sha256_of(path: Path) -> str:
    """The file's sha256 as hex, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(root: Path) -> Manifest:
    """The folder's manifest, validated (:mod:`coldkit.runs.manifest`), with every listed file a
    regular file inside the folder that matches its sha256."""
    data = _read_manifest_data(root)
    version = data.get("format_version")
    newer = isinstance(version, int) and not isinstance(version, bool)
    if newer and version > MODEL_FORMAT_VERSION:
        raise CheckpointError(
            f"{root} was exported by a newer coldkit (format {version}). "
            "Upgrade coldkit: `pip install -U coldkit`."
        )
    problems = validate_manifest(data)
    if problems:
        raise CheckpointError(
            f"{root / MANIFEST_FILE} is not a valid coldkit model manifest "
            f"({'; '.join(problems)}), so nothing in the folder was loaded. Export the model "
            "again with `coldkit export`, or get the folder again from its source."
        )
    manifest = Manifest(root, data)
    _check_files(manifest)
    return manifest


def _read_manifest_data(root: Path) -> dict[str, Any]:
    """The manifest's JSON object: a regular file of bounded size, parsed without recursing
    without bound."""
    path = root / MANIFEST_FILE
    problem = None
    if not is_regular_file(path):
        problem = "it is missing, a symbolic link or not a regular file"
    elif path.stat().st_size > MAX_MANIFEST_BYTES:
        problem = f"it is larger than {MAX_MANIFEST_BYTES // 2**20} MiB"
    else:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            reason = reason.splitlines()[0] if reason else type(exc).__name__
            problem = f"it cannot be read: {reason}"
        else:
            if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
                problem = f"it is not a {MODEL_FORMAT} manifest"
    if problem is not None:
        raise CheckpointError(
            f"{root} is an incomplete exported model: {MANIFEST_FILE} {problem}. Copy or "
            "download the whole folder again, or export it again with `coldkit export`."
        )
    return data


def _check_files(manifest: Manifest) -> None:
    """Refuse a listed file that is missing (truncated copy), not a regular file of the folder
    itself (a link, a device, a path that leaves the folder), or whose sha256 differs."""
    root = manifest.root.resolve()
    for name, expected in manifest.files.items():
        path = manifest.root / name
        if not path.exists() and not path.is_symlink():
            raise CheckpointError(
                f"{manifest.root} is an incomplete exported model: {name} is missing. Copy or "
                "download the whole folder again."
            )
        if not is_regular_file(path) or path.resolve() != root / name:
            raise CheckpointError(
                f"{path} is a symbolic link or not a regular file of the model folder, so it "
                "was not read: a model folder holds its own files. Copy the folder again "
                "without links (e.g. `cp -rL`), or get it again from its source."
            )
        if sha256_of(path) != expected:
            raise CheckpointError(
                f"{path} does not match the sha256 recorded in {MANIFEST_FILE}: the file was "
                "changed or damaged after export, so it was not loaded. Copy or download the "
                "folder again from its source."
            )


def check_model(manifest: Manifest, expected: dict[str, Any], image_size: int) -> None:
    """Refuse a manifest that does not describe the weights: its restorer context against its
    config, and what the model was trained for (``expected``, see
    :func:`coldkit.runs.folder.trained_for`) against the record ``coldkit export`` put into the
    hashed weights file (folders exported before that record existed carry none)."""
    context = manifest.restorer_context
    steps = expected["degradation"].get("steps")
    if context["image_size"] != image_size or (steps is not None and context["steps"] != steps):
        raise CheckpointError(
            f"{manifest.root / MANIFEST_FILE} contradicts itself: its restorer_context (T = "
            f"{context['steps']}, image size {context['image_size']}) differs from its config "
            f"(T = {steps}, image size {image_size}). The manifest was edited after export: "
            "get the folder again from its source."
        )
    path = manifest.root / WEIGHTS_FILE
    try:
        with safe_open(str(path), "pt") as weights:
            recorded = json.loads((weights.metadata() or {}).get(TRAINED_FOR_KEY) or "null")
    except Exception as exc:  # safetensors raises its own error type for a damaged header
        raise CheckpointError(
            f"{path} cannot be read ({type(exc).__name__}: {exc}). Export the model again."
        ) from None
    if isinstance(recorded, dict):
        check_trained_for(path, {"trained_for": recorded}, expected)


def check_plugins(manifest: Manifest, registry: Registry) -> None:
    """Refuse a model whose plugins are not installed, naming the package to install (the
    manifest's schema has checked that each is a plain package name and version)."""
    needed = [*manifest.plugins.items(), *(("dataset", e) for e in manifest.data_plugins)]
    missing = []
    for kind, entry in needed:
        name = str(entry.get("name"))
        if name not in registry.names(kind):  # type: ignore[arg-type]
            package, version = entry.get("distribution"), entry.get("version")
            if package:
                pin = f"{package}=={version}" if version else package
                missing.append(f"{kind} {name!r} (package {package}; `pip install {pin}`)")
            else:
                missing.append(f"{kind} {name!r} (plugin {entry.get('plugin') or '?'!r})")
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


def working_folder(root: Path) -> Path:
    """Where a command that reads a model writes what it makes by default (its log, caches such
    as a judge's classifier or a fitted prior, generated images): the run folder itself, or, for
    an exported model folder, which stays as it was exported, a folder of the user's cache
    directory (``$XDG_CACHE_HOME/coldkit/models/NAME-HASH``, by default under ``~/.cache``)."""
    if not is_exported(root):
        return root
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    resolved = root.resolve()
    digest = hashlib.sha256(os.fsencode(resolved)).hexdigest()[:12]
    return base / "coldkit" / "models" / f"{resolved.name[:100]}-{digest}"


def shipped_prior(root: Path | None, name: str) -> Path | None:
    """An exported model's fitted prior ``priors/NAME.safetensors``, where its manifest lists it
    (with a sha256, checked when the model was opened); None otherwise: an unlisted file in a
    model folder is never loaded."""
    if root is None:
        return None
    listed = Path(PRIORS_FOLDER) / f"{name}.safetensors"
    files = _read_manifest_data(root).get("files")
    return root / listed if isinstance(files, dict) and listed.as_posix() in files else None


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
    "TRAINED_FOR_KEY",
    "check_model",
    "check_plugins",
    "import_hub",
    "is_exported",
    "load_weights",
    "locate",
    "read_manifest",
    "shipped_prior",
    "working_folder",
    "sha256_of",
]
