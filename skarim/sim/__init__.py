"""Simulated observations: antenna layouts, uv tracks, sky models and Measurement Sets.

:mod:`~skarim.sim.layouts`, :mod:`~skarim.sim.uvcoverage`, :mod:`~skarim.sim.sky`,
:mod:`~skarim.sim.simulate` (``skarim simulate``).
"""
