"""The exception family of skarim.

Library code raises these; only the command-line interface turns them into one line on
stderr and exit status 2 (:class:`RunInterrupted`: 128 + the signal's number).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = [
    "SkarimError",
    "InputError",
    "StoreMismatchError",
    "WeightsError",
    "DeviceError",
    "RunInterrupted",
    "input_error",
]


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


class RunInterrupted(SkarimError):
    """A run stopped by SIGINT or SIGTERM; its message says what its store keeps.

    The command line ends with exit status 128 + the signal's number (130, 143), not 2.
    """


def input_error(
    exc: ValidationError, context: str, flags: Mapping[str, str] | None = None
) -> InputError:
    """One line naming the first invalid field of a pydantic ``ValidationError``.

    Parameters
    ----------
    exc : pydantic.ValidationError
        Raised while building a typed config.
    context : str
        What was being built, as the message's subject (``configuration``, ``cluster config
        pipelines/slurm.yaml``).
    flags : mapping
        Dotted field name to the command-line flag that sets it (``grid.cell_rad`` ->
        ``--scale``), named in the message of a missing field.

    Returns
    -------
    InputError
        ``missing --scale: give it on the command line or in the config`` for a missing
        field that a flag sets, else ``invalid <context> <field>: <reason>``.
    """
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    if err["type"] == "missing" and where in (flags or {}):
        return InputError(f"missing {flags[where]}: give it on the command line or in the config")
    msg = err["msg"].removeprefix("Value error, ")
    return InputError(f"invalid {context} {where}: {msg}" if where else msg)
