"""User-facing errors: the CLI prints them as one paragraph and exits with code 2."""

from __future__ import annotations


class ColdkitError(Exception):
    """A problem the user can fix (bad config, unknown plugin, missing data, broken checkpoint).

    The message names the problem and the fix; the CLI shows it without a traceback.
    """


class ConfigError(ColdkitError):
    """The experiment configuration is invalid."""


class PluginError(ColdkitError):
    """A plugin could not be found, loaded or registered."""


class DataError(ColdkitError):
    """A dataset could not be loaded."""


class CheckpointError(ColdkitError):
    """A checkpoint or run folder cannot be used."""


class TrainingError(ColdkitError):
    """Training cannot go on (e.g. the loss became NaN); the last good checkpoint is kept."""


class ParamsError(ColdkitError):
    """A degradation's random parameters cannot be known where they are needed (generating from
    a prior that does not return them, restoring a file degraded with an unknown draw)."""


class WriteError(ColdkitError):
    """A file could not be written (full disk, read-only folder, a link where a file belongs)."""
