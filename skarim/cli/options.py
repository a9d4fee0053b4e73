"""Typer options whose ``--help`` shows the default a user gets, shared by the commands."""

from __future__ import annotations

from typing import Any

import typer
from pydantic import BaseModel

__all__ = ["opt", "shown"]


def opt(help_text: str, default: str | None = None, *names: str) -> Any:
    """A typer option whose ``--help`` entry ends with ``[default: (default)]``, if given."""
    return typer.Option(*names, help=help_text, show_default=default or False)


def shown(model: type[BaseModel], field: str) -> str:
    """The default of a config field as ``--help`` shows it."""
    default = model.model_fields[field].default
    return str(getattr(default, "value", default))
