"""Errors caused by user input.

Every error a user can fix (a malformed architecture string, a bad flag value, missing or corrupt
data, an unreadable checkpoint) is raised as a :class:`UserError` subclass whose message is one
line saying what is wrong and what to do. The command-line entry points catch ``UserError``, print
``error: <message>`` to stderr and exit with status 2 (no traceback).
"""


class UserError(Exception):
    """Base class of errors the user can fix; the message is a single line."""

    exit_code = 2


class ArcError(UserError, ValueError):
    """A malformed architecture string."""


class DataError(UserError):
    """Missing, unreadable or corrupt dataset files."""


class ConfigError(UserError, ValueError):
    """A bad configuration or flag value."""


class CheckpointError(UserError):
    """An unreadable or incompatible checkpoint."""
