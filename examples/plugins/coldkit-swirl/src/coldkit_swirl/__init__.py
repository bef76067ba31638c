"""coldkit-swirl: an example third-party coldkit plugin.

* ``swirl`` -- a degradation that twists the image about its centre, more with every level;
* ``swirl-cnn`` -- a small time-conditioned convolutional restorer;
* ``stride-2`` -- Algorithm 2 taking two levels per restorer call.

Registered through the ``coldkit`` entry-point group (see ``pyproject.toml`` and
:mod:`coldkit_swirl.plugin`); written only against coldkit's public API.
"""

__version__ = "0.1.0"
