"""The registry of tile deconvolvers: the RIM in the RIM's cycles, the Hogbom polish after."""

from __future__ import annotations

from skarim.config import DeconvConfig
from skarim.deconv.deconvolver import DECONVOLVERS, PHASES, phase_deconvolver
from skarim.deconv.device import select_device
from skarim.deconv.hogbom_deconvolver import HogbomPolish
from skarim.deconv.rim_deconvolver import RimDeconvolver


def test_each_phase_takes_its_registered_deconvolver():
    deconv, cpu = DeconvConfig(major_cycles=2, polish_cycles=1), select_device("cpu")
    assert set(PHASES.values()) <= set(DECONVOLVERS)
    assert [type(phase_deconvolver(c, deconv, cpu)) for c in (1, 2, 3)] == [
        RimDeconvolver,
        RimDeconvolver,
        HogbomPolish,
    ]
    rim = phase_deconvolver(1, deconv, cpu)
    assert rim.skip_sigma == deconv.skip_sigma and rim.device == cpu.device
    assert phase_deconvolver(2, deconv, cpu).model is rim.model  # loaded once per process
