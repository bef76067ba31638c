"""coldkit-swirl: an example third-party coldkit plugin.

* ``swirl`` -- a degradation that twists the image about its centre, more with every level;
* ``swirl-cnn`` -- a small time-conditioned convolutional restorer;
* ``stride-2`` -- Algorithm 2 taking two levels per restorer call;
* ``swirl-pca`` -- a prior for generation, with the swirl's random centres;
* ``stripes`` -- a dataset made from a seed (nothing to download).

Registered by path through the ``coldkit`` entry-point group (see ``pyproject.toml`` and
:mod:`coldkit_swirl.plugin`, which imports no torch); written only against coldkit's public API
(plugin API 4).
"""

__version__ = "0.1.0"
