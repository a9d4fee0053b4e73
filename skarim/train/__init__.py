"""Training the RIM on simulated imaging problems.

:mod:`~skarim.train.problems` draws the problems, :mod:`~skarim.train.trainer` runs
``skarim train`` (resumable, with validation against classical baselines).
"""
