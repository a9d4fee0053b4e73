"""skarim: radio-interferometric imaging with a learned deconvolver.

The data flow, one module per stage:

1. :mod:`skarim.io.ms_read`     -- Measurement Set -> Stokes I visibilities in bounded row chunks
2. :mod:`skarim.imaging.grid`     -- ducc0 w-gridding per (channel, tile) into the Zarr store
3. :mod:`skarim.deconv.operator` -- the differentiable per-tile measurement operator (PyTorch)
4. :mod:`skarim.deconv.major_cycle` -- the RIM (:mod:`skarim.deconv.rim`) per tile, in major cycles
5. :mod:`skarim.io.fits`    -- FITS cubes with Astropy
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("skarim")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
