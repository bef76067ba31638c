"""The schema of an exported model's manifest (``coldkit_model.json``): types and limits.

A model folder comes from someone else, so its manifest is validated as strictly as a config
before anything in it is used: every field has a type and a range, no unknown key is accepted
(in the restorer context either), the files it lists are the model's own tensor files under
plain relative paths inside the folder, each with a sha256, and the plugin names, packages and
versions it carries are plain names (a package name as PyPI spells one), so that printing them
as a ``pip install`` command can never print anything else. :func:`validate_manifest` returns
the problems found, each naming its field.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

#: A package name as the packaging specification allows one (PEP 508).
DISTRIBUTION_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,98}[A-Za-z0-9])?$"
#: A version as a package index shows one (PEP 440 characters), at most 64 characters.
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.+!_-]{0,63}$"
#: A plugin or component name (an entry-point name may hold almost any character): printable
#: text without control characters or backticks, at most 200 characters; messages quote it.
NAME_PATTERN = r"^[^\x00-\x1f\x7f`]{1,200}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
#: The files a manifest may list: the weights, and the priors fitted for generation.
WEIGHTS_FILE = "model.safetensors"
PRIORS_FOLDER = "priors"
TENSORS_SUFFIX = ".safetensors"
#: Limits of the restorer context (the cost checks bound T and the image size further).
MAX_CHANNELS = 64
MAX_IMAGE_SIZE = 65_536
MAX_STEPS = 10**9
MAX_FILES = 100
MAX_TEXT = 1_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ManifestContext(_Strict):
    """``restorer_context``: the model's input shape and T."""

    channels: int = Field(ge=1, le=MAX_CHANNELS)
    image_size: int = Field(ge=1, le=MAX_IMAGE_SIZE)
    steps: int = Field(ge=1, le=MAX_STEPS)


class ManifestPlugin(_Strict):
    """One plugin the model needs: what ``coldkit export`` records about it."""

    name: str = Field(pattern=NAME_PATTERN)
    plugin: Optional[str] = Field(default=None, pattern=NAME_PATTERN)
    distribution: Optional[str] = Field(default=None, pattern=DISTRIBUTION_PATTERN)
    version: Optional[str] = Field(default=None, pattern=VERSION_PATTERN)


class ManifestSchema(_Strict):
    """``coldkit_model.json`` as ``coldkit export`` writes it (format version 1)."""

    format: Literal["coldkit-model"]
    format_version: int = Field(ge=1)
    coldkit_version: Optional[str] = Field(default=None, pattern=VERSION_PATTERN)
    torch_version: Optional[str] = Field(default=None, pattern=VERSION_PATTERN)
    exported_at: Optional[str] = Field(default=None, max_length=64)
    exported_from: Optional[str] = Field(default=None, max_length=MAX_TEXT)
    step: int = Field(ge=0, le=10**12)
    restorer_context: ManifestContext
    plugins: dict[Literal["dataset", "degradation", "restorer", "sampler", "prior"],
                  ManifestPlugin] = Field(default_factory=dict)
    #: Datasets the components read through their build context (a degradation's target ...),
    #: each with the plugin that serves it; absent in manifests written before it was recorded.
    data_plugins: list[ManifestPlugin] = Field(default_factory=list, max_length=MAX_FILES)
    files: dict[str, str] = Field(max_length=MAX_FILES)
    config: dict[str, Any]
    training_source: Optional[str] = Field(default=None, max_length=MAX_TEXT)
    metrics: Any = None


def validate_manifest(data: Any) -> list[str]:
    """What is wrong with a manifest's data, one line per problem naming its field (empty:
    valid)."""
    try:
        manifest = ManifestSchema.model_validate(data)
    except ValidationError as exc:
        return [
            f"{'.'.join(str(part) for part in error['loc']) or 'the manifest'}: {error['msg']}"
            for error in exc.errors()[:5]
        ]
    problems = [problem for name, digest in manifest.files.items()
                if (problem := _file_problem(name, digest))]
    if WEIGHTS_FILE not in manifest.files:
        problems.append(f"files: {WEIGHTS_FILE} is not listed with its sha256")
    return problems


def _file_problem(name: str, digest: str) -> str | None:
    """Why ``name`` cannot be one of the model's files, or None."""
    if not re.fullmatch(SHA256_PATTERN, digest):
        return f"files.{name[:80]}: {digest[:80]!r} is not a sha256 (64 hex digits)"
    path = PurePosixPath(name)
    inside = (
        not path.is_absolute() and "\\" not in name and len(name) <= 300
        and all(part not in ("", ".", "..") for part in name.split("/"))
    )
    allowed = name == WEIGHTS_FILE or (
        len(path.parts) == 2 and path.parts[0] == PRIORS_FOLDER and path.suffix == TENSORS_SUFFIX
    )
    if not inside or not allowed:
        return (
            f"files: {name[:80]!r} is not one of a model's files ({WEIGHTS_FILE}, "
            f"{PRIORS_FOLDER}/NAME{TENSORS_SUFFIX}) inside its folder"
        )
    return None


__all__ = [
    "DISTRIBUTION_PATTERN",
    "ManifestContext",
    "ManifestPlugin",
    "ManifestSchema",
    "VERSION_PATTERN",
    "validate_manifest",
]
