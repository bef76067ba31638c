"""Parameter models plugins reuse, without torch (an entry-point module may import them).

* :class:`DatasetRef` -- a registered dataset named in a plugin's parameters (name + params),
  resolved with the config before any command writes anything;
* :class:`SplitParams` -- a dataset's split keys (validation and test fractions, split seed,
  limit), as every built-in dataset takes them; :func:`coldkit.data.take_split` applies them;
* :class:`MixtureParams`, :class:`PcaMixtureParams` -- the keys of the mixture priors of
  :mod:`coldkit.blocks` (the built-in ``gmm`` and ``pca-gmm`` take them).

Subclass them in your own ``Params`` and add your keys.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator


class DatasetRef(BaseModel):
    """A registered dataset named by a plugin's parameters: its ``name`` (or qualified name) and
    its ``params`` (the keys its own config section takes).

    Declare a parameter of this type and coldkit resolves it with the config, before any
    command writes anything: an unknown name or a bad key is the same config error (exit code
    2) as in ``[dataset]``. In TOML either a name or a table::

        target = "fashion-mnist"
        target = { name = "image-folder", params = { path = "data/celeba" } }

    Read it with :meth:`BuildContext.load_dataset` (``context.load_dataset(self.params.target)``).
    A reference without params is written back as its bare name.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="a registered dataset's name")
    params: dict[str, Any] = Field(
        default_factory=dict, description="that dataset's parameters, as in its own section"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_serializer(mode="wrap")
    def _as_name(self, handler: Any) -> Any:
        return self.name if not self.params else handler(self)


def dataset_references(params: BaseModel, where: str) -> list[tuple[str, DatasetRef]]:
    """Every :class:`DatasetRef` in a validated parameter model (in nested models, lists and
    dicts too), with its dotted location below ``where``."""
    found: list[tuple[str, DatasetRef]] = []

    def walk(value: Any, location: str) -> None:
        if isinstance(value, DatasetRef):
            found.append((location, value))
        elif isinstance(value, BaseModel):
            for key in type(value).model_fields:
                walk(getattr(value, key), f"{location}.{key}")
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{location}.{key}")
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                walk(item, f"{location}.{index}")

    walk(params, where)
    return found


class SplitParams(BaseModel):
    """How a dataset is split: fractions of held-out images and the permutation's seed."""

    model_config = ConfigDict(extra="forbid")

    val_fraction: float = Field(0.0, ge=0.0, lt=1.0, description="share held out for validation")
    test_fraction: float = Field(
        0.1, ge=0.0, lt=1.0, description="share held out for testing (no official test set)"
    )
    split_seed: int = Field(0, description="seed of the split permutation")
    limit: int | None = Field(None, ge=1, description="keep at most this many images per split")


class MixtureParams(BaseModel):
    """Parameters of a Gaussian mixture prior (:func:`coldkit.blocks.fit_mixture`)."""

    model_config = ConfigDict(extra="forbid")

    components: int = Field(10, ge=1, description="number of Gaussian components")
    covariance: Literal["full", "diag"] = Field("full", description="covariance of each component")
    noise: float = Field(
        0.0, ge=0.0, description="std of Gaussian noise added to every pixel of a drawn x_T"
    )
    temperature: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="scales each component's spread when drawing (1 = as fitted): below 1 "
        "draws stay nearer the component means, trading a little diversity for fidelity",
    )


class PcaMixtureParams(MixtureParams):
    """Parameters of :class:`coldkit.blocks.PcaMixturePrior`."""

    components: int = Field(20, ge=1, description="number of Gaussian components")
    dims: int = Field(32, ge=1, description="at most this many principal components are kept")
    rank_tolerance: float = Field(
        1e-4,
        ge=0.0,
        lt=1.0,
        description="components whose singular value is below this fraction of the largest "
        "are dropped: rounding noise, not structure",
    )


def parameter_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of each key of a ``Params`` model (``list-* --json``), with nested models
    (a :class:`DatasetRef`, your own sub-models) written out in place of pydantic's ``$ref``."""
    schema = model.model_json_schema()
    definitions = schema.get("$defs", {})

    def inline(node: Any, seen: tuple[str, ...] = ()) -> Any:
        if isinstance(node, list):
            return [inline(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        reference = node.get("$ref", "")
        name = reference.rpartition("/")[2]
        if reference.startswith("#/$defs/") and name in definitions and name not in seen:
            rest = {key: value for key, value in node.items() if key != "$ref"}
            return {**inline(definitions[name], (*seen, name)), **inline(rest, seen)}
        return {key: inline(value, seen) for key, value in node.items() if key != "$defs"}

    return inline(schema.get("properties", {}))


__all__ = [
    "DatasetRef",
    "MixtureParams",
    "PcaMixtureParams",
    "SplitParams",
    "dataset_references",
    "parameter_schema",
]
