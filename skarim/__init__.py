"""skarim: radio-interferometric imaging with a learned deconvolver.

The data flow, one subpackage per stage (docs/architecture.md draws it):

1. read -- :mod:`skarim.io`: Measurement Set -> Stokes I visibilities in bounded row chunks
   (:mod:`skarim.io.ms_read`), and the run's Zarr store (:mod:`skarim.io.store`);
2. grid -- :mod:`skarim.imaging`: WSClean's weighting and ducc0 w-gridding per (channel,
   tile) into the store (:mod:`skarim.imaging.grid`), exact residuals
   (:mod:`skarim.imaging.residual`);
3. operator -- :mod:`skarim.deconv.operator`: the per-tile measurement operator in PyTorch;
4. deconvolve -- :mod:`skarim.deconv`: the RIM (then a Hogbom polish) per tile window, inside
   exact major cycles (:mod:`skarim.deconv.major_cycle`);
5. restore and write -- :mod:`skarim.restore` and :mod:`skarim.io.fits`: clean beam
   (:mod:`skarim.beam`), restored image, FITS cubes.

:mod:`skarim.run` schedules the stages' tasks on Dask; :mod:`skarim.config` holds the typed
run configuration; :mod:`skarim.cli` is the ``skarim`` command; :mod:`skarim.sim` simulates
observations and :mod:`skarim.train` trains the RIM on simulated problems.
"""

__version__ = "0.1.0"
"""The package version; ``pyproject.toml`` reads it from here (not from the installed
metadata, whose lookup costs 0.03 s of every command)."""

__all__ = ["__version__"]
