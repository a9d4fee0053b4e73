"""The ``skarim`` command line (:mod:`~skarim.cli.app`) and its demo (:mod:`~skarim.cli.demo`)."""
