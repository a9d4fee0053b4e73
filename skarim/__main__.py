"""``python -m skarim``: the same as the ``skarim`` console script."""

from skarim.cli import main

main()
