"""The CLI's one error wrapper (``cli.reported``): a ColdkitError becomes its message and exit 2,
never a traceback; an interruption says what was kept and exits 130, or goes through."""

from __future__ import annotations

import pytest
import typer

from coldkit.cli import reported
from coldkit.errors import ConfigError


def test_a_coldkit_error_is_its_message_and_exit_2(capsys):
    with pytest.raises(typer.Exit) as raised:
        with reported():
            raise ConfigError("Unknown key [degradation] x. Remove it.")
    assert raised.value.exit_code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Unknown key [degradation] x. Remove it." in err


def test_a_rank_that_does_not_speak_exits_2_silently(capsys):
    with pytest.raises(typer.Exit) as raised:
        with reported(speaks=False):
            raise ConfigError("said by rank 0 only")
    assert raised.value.exit_code == 2 and "said by rank 0" not in capsys.readouterr().err


def test_an_interruption_says_what_was_kept_and_exits_130(capsys):
    with pytest.raises(typer.Exit) as raised:
        with reported("the last checkpoint is kept."):
            raise KeyboardInterrupt
    assert raised.value.exit_code == 130
    assert "interrupted:" in capsys.readouterr().err


def test_without_a_message_an_interruption_goes_through_and_other_errors_too():
    with pytest.raises(KeyboardInterrupt):
        with reported():
            raise KeyboardInterrupt
    with pytest.raises(ValueError):
        with reported():
            raise ValueError("a bug is a traceback")
