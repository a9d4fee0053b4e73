"""``python -m skarim``: the same as the ``skarim`` console script."""

from skarim.cli.app import main

main()
