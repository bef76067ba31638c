"""benchmarks.defaults: every switch off against the defaults, on the tiny experiment."""

from __future__ import annotations

from benchmarks import defaults
from benchmarks.defaults import Timing, report


def test_the_three_cases_are_timed_and_the_defaults_are_the_configs_own(tiny_config):
    timings = defaults.measure(tiny_config, steps=1, rounds=2, threads=1, peak_size=64)
    assert [t.case for t in timings] == ["before", "switches off", "defaults"]
    assert all(t.per_step > 0 and t.first_step > 0 for t in timings)
    by_case = {t.case: t for t in timings}
    assert by_case["switches off"].switches == "compile off, channels-last off, autocast off"
    assert "train.auto: bf16 off" in by_case["defaults"].switches  # auto, with its reasons
    # One network: the same FLOPs per step in every case, measured against a float32 peak.
    assert len({t.flops for t in timings}) == 1 and timings[0].flops > 0
    assert all(t.precision == "float32" and t.peak > 0 and t.utilisation > 0 for t in timings)


def test_before_is_the_network_before_standardize_input(tmp_path):
    from coldkit.config import write_toml
    from tests.conftest import tiny_experiment

    config = tmp_path / "standardised.toml"
    write_toml(config, tiny_experiment(restorer={"standardize_input": True}))
    with defaults.contextlib.ExitStack() as stack:
        built = defaults.trainers(config, 1, stack)
        assert built["before"].restorer.input_stats is None
        assert built["switches off"].restorer.input_stats is not None
        assert built["defaults"].restorer.input_stats is not None


def test_utilisation_is_achieved_flops_over_the_peak_of_the_precision():
    timing = Timing("defaults", "bf16", 1.0, 0.5, 100, "bf16", flops=2e9, peak=8e9)
    assert timing.utilisation == 0.5  # 2 GFLOP in 0.5 s = 4 GFLOP/s of 8
    assert Timing("x", "off", 1.0, 0.5, 100).utilisation == 0.0  # not measured
    text = report([Timing("before", "off", 1.0, 1.0, 100), Timing("switches off", "off", 1.0,
                   1.0, 100), timing], steps=1, rounds=1, threads=1)
    assert "| 4.0 | 50.0 % of 8 (bf16) |" in text


def test_the_report_gives_the_ratios_and_the_job_time():
    timings = [Timing("before", "all off", 1.0, 0.2, 100), Timing("switches off", "all off", 1.0,
               0.1, 100), Timing("defaults", "bf16", 2.0, 0.05, 100)]
    text = report(timings, steps=10, rounds=3, threads=1)
    assert "| defaults | bf16 | 2.00 | 50.0 | 0.50 | 0.25 | 7 | 0.0 | — |" in text
    assert "takes 0.64 of its time with every switch off" in text  # (2 + 99 * 0.05) / (1 + 9.9)
