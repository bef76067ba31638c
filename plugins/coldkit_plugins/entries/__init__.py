"""What the ``coldkit`` entry points of the built-in plugins load: parameters and hooks only.

Each module here holds one plugin's parameter models and its ``register_*`` hook, and registers
its components by path (``"coldkit_plugins.blur:Blur"``), so ``coldkit list-*``, ``plugins`` and
``validate`` import neither torch nor the components. A component's module is imported the first
time a run builds it. Third-party plugins can register the same way (docs/plugins.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from coldkit.hookspecs import Register


@dataclass(frozen=True)
class Listing:
    """One component as ``list-*`` shows it, and the path it is imported from when built."""

    name: str
    description: str
    target: str
    params: type[BaseModel] | None = None

    def register(self, register: Register) -> None:
        """Register the component by path with its name, description and parameter model."""
        register(self.target, name=self.name, description=self.description, params=self.params)
