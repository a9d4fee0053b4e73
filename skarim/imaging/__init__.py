"""Imaging: visibility weighting, gridding with ducc0, prediction and exact residuals.

- :mod:`~skarim.imaging.wgridder`: the one wrapper of ``ducc0.wgridder`` and its conventions;
- :mod:`~skarim.imaging.weighting`: natural, uniform and Briggs weights as WSClean computes them;
- :mod:`~skarim.imaging.weight_cells`: the occupied cells of a weight grid, kept sparse;
- :mod:`~skarim.imaging.plan`: output channels, facets and channels per batch;
- :mod:`~skarim.imaging.grid`: dirty images and PSFs per (channel, tile) into the store;
- :mod:`~skarim.imaging.residual`: model -> visibilities -> residual image.
"""
