"""Issue 29, item 6: a T whose tables do not fit under the process's address-space limit
(``ulimit -v``) is refused before anything is written, with the largest T that fits, even where
the machine has the memory free."""

from __future__ import annotations

import pytest

import coldkit.runs.cost as cost
from coldkit.config import build_experiment
from coldkit.errors import ConfigError
from coldkit.plugins import Registry
from tests.conftest import tiny_experiment

resource = pytest.importorskip("resource")


def _vm_size() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize")


def test_a_t_past_the_address_space_limit_is_refused_with_the_largest_t(monkeypatch):
    limit = _vm_size() + 2 * 1024**3  # 2 GiB left to map: T = 10^6 needs far more
    monkeypatch.setattr(cost.resource, "getrlimit",
                        lambda which: (limit, resource.RLIM_INFINITY) if which ==
                        resource.RLIMIT_AS else resource.getrlimit(which))
    experiment = build_experiment(
        tiny_experiment(degradation={"name": "blur", "steps": 10**6, "kernel_size": 5,
                                     "sigma": 1.0}),
        Registry.discover(),
    )
    with pytest.raises(ConfigError, match=r"T up to about [\d,]+ fits") as raised:
        cost.check_before_writing(experiment)
    assert "degradation.steps" in str(raised.value)
    assert cost.address_space_left() <= 2 * 1024**3
