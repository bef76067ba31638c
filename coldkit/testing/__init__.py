"""Contract checks for every kind of plugin: run them on your own plugin (like scikit-learn's
``check_estimator``).

One line per kind -- :func:`check_degradation`, :func:`check_restorer`, :func:`check_sampler`,
:func:`check_dataset`, :func:`check_prior` -- plus :func:`check_generation` (an oracle restorer
and an oracle prior returning the true ``D(x0, T; params)`` with its params give back x0 through
generation and restore) -- or one for a whole installed distribution::

    from coldkit.testing import check_plugin

    def test_my_plugins():
        check_plugin("my-dist")

The degradation checks in detail::

    from coldkit.testing import check_degradation

    def test_my_degradation_follows_the_contract():
        check_degradation(MyDegradation(MyDegradation.Params()))

:func:`check_degradation` runs every check below and returns a :class:`ContractReport`; each check
is also a function of its own. A failed check raises :class:`AssertionError` with a message that
says what is wrong and how it was found. The checks:

* :func:`check_interface` -- the protocol's attributes are there (``name``, ``steps`` ...);
* :func:`check_identity_at_zero` -- ``D(x0, 0) == x0`` exactly;
* :func:`check_params` -- ``sample_params`` returns batch-first tensors, the same for the same seed;
* :func:`check_deterministic` -- the same params give the same output;
* :func:`check_mixed_levels` -- a batch with mixed ``t`` equals its samples degraded one at a time;
* :func:`check_preserves_tensor` -- shape, dtype and device of ``x0`` are kept;
* :func:`check_finite` -- no NaN or inf at any level, values within ``DEGRADED_RANGE``;
* :func:`check_grows_with_t` -- on average ``D(x0, t)`` moves away from ``x0`` as ``t`` grows;
* :func:`check_cost` -- ``D(x0, T)`` costs at most a few times ``D(x0, 1)`` (no loop over ``t``).

A component that takes a build context (``def __init__(self, params, *, context)``) is built in
a test with :func:`build_context`, which sets every field a run sets (image size, channels, T,
split, device, seed, the run's degradation for a prior) and reads datasets through the installed
plugins or through a fake ``load_dataset`` you give it.

By default the checks use small seeded colour images from :func:`make_test_images` (3 channels,
so a degradation that only touches colour is seen to act).
"""

from __future__ import annotations

from coldkit.testing._common import WithParams, build_context, make_test_images, serve_test_params
from coldkit.testing.dataset import SPLIT_NAMES  # noqa: F401  (public before; not in __all__)
from coldkit.testing.dataset import check_dataset
from coldkit.testing.degradation import (
    ContractReport,
    check_cost,
    check_degradation,
    check_deterministic,
    check_finite,
    check_grows_with_t,
    check_identity_at_zero,
    check_interface,
    check_mixed_levels,
    check_params,
    check_preserves_tensor,
    measure_cost_ratio,
)
from coldkit.testing.generation import OraclePrior, check_generation
from coldkit.testing.plugin import PluginReport, check_plugin
from coldkit.testing.prior import check_prior
from coldkit.testing.restorer import DEFAULT_RESTORER_CONTEXT, check_restorer
from coldkit.testing.sampler import builtin_degradations, check_sampler

__all__ = [
    "DEFAULT_RESTORER_CONTEXT",
    "ContractReport",
    "OraclePrior",
    "PluginReport",
    "WithParams",
    "build_context",
    "builtin_degradations",
    "check_cost",
    "check_dataset",
    "check_degradation",
    "check_deterministic",
    "check_finite",
    "check_generation",
    "check_grows_with_t",
    "check_identity_at_zero",
    "check_interface",
    "check_mixed_levels",
    "check_params",
    "check_plugin",
    "check_prior",
    "check_preserves_tensor",
    "check_restorer",
    "check_sampler",
    "make_test_images",
    "measure_cost_ratio",
    "serve_test_params",
]
