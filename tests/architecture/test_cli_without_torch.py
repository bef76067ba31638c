"""The CLI answers `--help` without importing torch (checked in a fresh interpreter); the
contract modules stay usable without it. No timing assertions: docs/performance.md has the times."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

PROBE = """
import sys
from coldkit.cli import app
try:
    app({args!r})
except SystemExit:
    pass
sys.stderr.write("TORCH_IMPORTED=%s\\n" % ("torch" in sys.modules))
"""


def _torch_imported(args: list[str]) -> bool:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True,
        timeout=120,
    )
    assert "TORCH_IMPORTED=" in result.stderr, result.stderr
    return "TORCH_IMPORTED=True" in result.stderr


@pytest.mark.parametrize("args", [["--help"], ["show-degradation", "--help"], ["run", "--help"]])
def test_help_does_not_import_torch(args: list[str]):
    assert not _torch_imported(args)


@pytest.mark.parametrize(
    "args",
    [
        ["list-degradations"],
        ["list-restorers", "--json"],
        ["list-samplers"],
        ["list-datasets", "--json"],
        ["list-priors"],
        ["plugins", "--json"],
        ["validate", str(EXAMPLES / "mnist_blur.toml")],
        ["validate", str(EXAMPLES / "fashion_to_mnist.toml")],
    ],
)
def test_listing_and_validating_do_not_import_torch(args: list[str]):
    """The built-ins register by path: names, descriptions and schemas without the components."""
    assert not _torch_imported(args)


def test_a_command_that_builds_components_still_gets_torch(tmp_path):
    out = tmp_path / "preview.png"
    assert _torch_imported(["show-degradation", "blur", "--out", str(out), "--images", "1"])


def test_contract_modules_import_without_torch_and_protocols_still_check():
    probe = """
import sys
import coldkit, coldkit.config, coldkit.errors, coldkit.hookspecs, coldkit.plugins
from coldkit.protocols import Dataset, Degradation, ImageSet
assert "torch" not in sys.modules, "torch imported"

class Shapes:
    name = "shapes"
    description = "a dataset without torch at import"
    def load(self, split):
        return ImageSet(images=None, source=split)

class NotADegradation:
    name = "x"

assert isinstance(Shapes(), Dataset)
assert not isinstance(NotADegradation(), Degradation)
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.strip() == "ok", result.stderr
