"""Exceptions raised on bad user input. Each message names the offending field or file."""


class TraflError(Exception):
    """Base class of every error trafl raises on purpose."""


class ConfigError(TraflError, ValueError):
    """A configuration field is unknown, of the wrong type or out of range."""


class CheckpointError(TraflError, OSError):
    """A model directory is missing, incomplete or malformed."""


class DataError(TraflError, ValueError):
    """A dataset file or column is missing or malformed."""
