"""benchmarks.defaults: every switch off against the defaults, on the tiny experiment."""

from __future__ import annotations

from benchmarks import defaults
from benchmarks.defaults import Timing, report


def test_the_three_cases_are_timed_and_the_defaults_are_the_configs_own(tiny_config):
    timings = defaults.measure(tiny_config, steps=1, rounds=2, threads=1)
    assert [t.case for t in timings] == ["before", "switches off", "defaults"]
    assert all(t.per_step > 0 and t.first_step > 0 for t in timings)
    by_case = {t.case: t for t in timings}
    assert by_case["switches off"].switches == "compile off, channels-last off, autocast off"
    assert "train.auto: bf16 off" in by_case["defaults"].switches  # auto, with its reasons


def test_the_report_gives_the_ratios_and_the_job_time():
    timings = [Timing("before", "all off", 1.0, 0.2, 100), Timing("switches off", "all off", 1.0,
               0.1, 100), Timing("defaults", "bf16", 2.0, 0.05, 100)]
    text = report(timings, steps=10, rounds=3, threads=1)
    assert "| defaults | bf16 | 2.00 | 50.0 | 0.50 | 0.25 | 7 |" in text
    assert "takes 0.64 of its time with every switch off" in text  # (2 + 99 * 0.05) / (1 + 9.9)
