"""The exception family of skarim.

Library code raises these; only the command-line interface turns them into one line on
stderr and exit status 2.
"""

__all__ = ["SkarimError", "InputError", "StoreMismatchError", "WeightsError", "DeviceError"]


class SkarimError(Exception):
    """Base class of every error skarim raises on purpose."""


class InputError(SkarimError):
    """The user's input (a Measurement Set, a flag, a config value) cannot be used."""


class StoreMismatchError(SkarimError):
    """A Zarr store belongs to another Measurement Set or another configuration."""


class WeightsError(SkarimError):
    """A RIM weights file is missing, corrupt or of the wrong shape."""


class DeviceError(SkarimError):
    """The compute device asked for is not available."""
