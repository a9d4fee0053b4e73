"""Where the command's messages go: one stderr console, and log records that never wrap in files.

In a terminal the ``skarim`` logger writes through rich (time, level, the message wrapped to
the terminal's width). When stderr is a file or a pipe it writes each record as one plain
line, ``2026-12-01 10:00:00 INFO     message``, however long: off a terminal rich would wrap
every record at 80 columns.
"""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

__all__ = ["ERR", "setup_logging"]

ERR = Console(stderr=True)
"""The console of error lines, progress bars and, in a terminal, log records."""

_PLAIN_FORMAT = "%(asctime)s %(levelname)-8s %(message)s"
_PLAIN_DATE = "%Y-%m-%d %H:%M:%S"


def setup_logging(quiet: bool) -> None:
    """Send the ``skarim`` logger to stderr (once per process) at INFO, or WARNING if ``quiet``.

    Parameters
    ----------
    quiet : bool
        Warnings and errors only.
    """
    log = logging.getLogger("skarim")
    if not log.handlers:
        handler: logging.Handler
        if ERR.is_terminal:
            handler = RichHandler(console=ERR, show_path=False, show_time=True, markup=False)
            handler.setFormatter(logging.Formatter("%(message)s"))
        else:
            handler = logging.StreamHandler()  # sys.stderr
            handler.setFormatter(logging.Formatter(_PLAIN_FORMAT, _PLAIN_DATE))
        log.addHandler(handler)
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False
