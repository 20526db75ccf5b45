"""Errors that reach the user as one clear line."""


class HipaugError(Exception):
    """A user-facing error: the message is one line naming the file or parameter."""


class DataError(HipaugError):
    """A dataset folder, manifest or image file cannot be used."""


class ConfigError(HipaugError):
    """A configuration value, profile or command-line parameter is invalid."""
