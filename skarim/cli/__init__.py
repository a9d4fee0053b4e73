"""The ``skarim`` command line."""
