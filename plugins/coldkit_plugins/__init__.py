"""coldkit's built-in plugins, written only against coldkit's public API.

Each module is one plugin, registered through the ``coldkit`` entry-point group in
``pyproject.toml`` exactly as a third-party package registers its own.
"""
