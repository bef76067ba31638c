"""What the ``coldkit`` entry points of the built-in plugins load: parameters and hooks only.

Each module here holds one plugin's parameter models and its ``register_*`` hook, and registers
its components by path (``"coldkit_plugins.blur:Blur"``), so ``coldkit list-*``, ``plugins`` and
``validate`` import neither torch nor the components. A component's module is imported the first
time a run builds it. Each states its components' name, description and parameters once, in a
:class:`coldkit.Listing`; third-party plugins register the same way (docs/plugins.md).
"""
